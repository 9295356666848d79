// Package oauth is mcpguard's built-in OAuth 2.1 authorization server: the
// part of the MCP authorization specification that lets a client knowing
// only an MCP server's URL (Claude, VS Code, the TypeScript SDK client, the
// Go SDK client) sign a person in and obtain a token for that server.
//
// It is small and composed like ory/fosite: every piece of state lives in a
// [store.OAuthStore] (so that replicas share it and a restart loses
// nothing), passwords are argon2id (package authn/password), second factors
// TOTP or backup codes (package authn/totp), and the server itself keeps
// only bounded caches.
//
// # Endpoints
//
// [Server.Handler] serves, under Config.Issuer:
//
//	GET  /.well-known/oauth-authorization-server   RFC 8414 metadata (also at the path-inserted form for an issuer with a path)
//	GET  /.well-known/openid-configuration         the same document, plus the OIDC discovery fields that hold
//	GET  /.well-known/jwks.json                    the public keys that verify access tokens
//	GET  /oauth/authorize                          starts a sign-in
//	POST /oauth/login, /oauth/mfa, /oauth/consent  the sign-in pages' forms
//	GET  /oauth/static/style.css                   the pages' only asset
//	POST /oauth/token                              authorization_code, refresh_token, client_credentials
//	POST /oauth/register                           dynamic client registration (RFC 7591), only when enabled
//	POST /oauth/revoke                             token revocation (RFC 7009)
//	POST /oauth/introspect                         token introspection (RFC 7662), for confidential clients
//
// Every other path is a 404.
//
// # The authorization code flow
//
//  1. The client sends the person to /oauth/authorize with its client_id,
//     redirect_uri, a PKCE S256 code_challenge, the resource (RFC 8707)
//     it wants a token for, scope and state.
//  2. The client and redirect URI are checked first. Until both are known
//     good, every error is an HTML page: mcpguard never redirects to a URI
//     it has not matched against the client's registration, so it cannot
//     be used as an open redirector. Later errors go back to the client
//     with error, error_description, state and iss.
//  3. The validated request is sealed (AES-256-GCM, see below) into a
//     ten-minute transaction cookie with a fresh CSRF token, and the person
//     signs in with a password, then a TOTP or backup code if they enrolled
//     one, then consents, unless they consented to these scopes for this
//     client before. A sealed login-session cookie (at most 12 hours after
//     the password was entered) skips the password on later sign-ins, never
//     MFA the session has not passed.
//  4. mcpguard redirects (303) to the redirect URI with a single-use code
//     (32 random bytes, stored only as its SHA-256 digest, valid for at most
//     60 seconds), state and iss (RFC 9207).
//  5. The client redeems the code at /oauth/token with the PKCE verifier and
//     receives a short-lived ES256 JWT access token (RFC 9068, typ
//     "at+jwt") whose audience is the resource, and a refresh token.
//
// # Scopes and roles
//
// Each [Scope] grants one role, and only if the person holds it
// (Config.HasRole, which knows role inheritance): a token narrows what the
// person's roles allow and never widens it. Scopes the person may not have
// are dropped silently and the token response's scope says what was
// granted. The access token's "roles" claim holds the roles of its granted
// scopes; resource servers must not add others (guard.Principal's
// ScopeLimited). On every refresh the roles are recomputed from the user as
// stored now, so a role taken away is gone from the next access token.
// [StepUp] turns a refusal that a larger scope would lift into a step-up
// challenge (MCP's "insufficient_scope" flow).
//
// # Clients
//
// Clients are pre-registered (`mcpguard clients add`), registered
// dynamically (RFC 7591, when Config.DynamicRegistration is set, bounded by
// Config.MaxDynamicClients), or identified by the https URL of a Client ID
// Metadata Document (when Config.ClientIDMetadataDocuments is set). Such a
// document is fetched with a client (package internal/safehttp) that checks
// the address it actually dials and refuses loopback, private, link-local
// and other non-public addresses (SSRF, DNS rebinding), follows no
// redirect, reads at most 16 KiB within 5 seconds, and must carry a
// client_id equal to its URL; validated documents are cached (bounded LRU,
// Cache-Control max-age clamped to between one minute and a day). Such
// clients are public. The consent page shows the redirect URI's host, and
// warns when a URL-identified client only redirects to this computer.
//
// Redirect URIs must be https, or http on a loopback host, and never carry
// a fragment; they are matched exactly, with one exception that OAuth 2.1
// (§8.4.2) and RFC 8252 (§7.3) require: a registered http URI on a loopback
// IP literal (127.0.0.1 or [::1]) matches the same URI with any port,
// since native clients listen on whatever port is free.
//
// # Security properties
//
//   - PKCE S256 is required of every client; "plain" is refused.
//   - Codes are single-use and bound to client, redirect URI, PKCE
//     challenge, resource and user. A code redeemed twice revokes the
//     refresh-token family its first redemption created, and (through
//     Config.RevokeAccessToken) the access token that redemption issued,
//     whose jti is derived from the family. Access tokens minted by
//     refreshes in between cannot be named and simply expire within
//     AccessTokenTTL.
//   - Refresh tokens rotate on every use; presenting a rotated one again
//     revokes its whole family ("refresh token reuse detected").
//   - Access tokens carry the resource as audience (RFC 8707) and are
//     signed with the newest ES256 key of the store that may sign now.
//     [RotateSigningKey] publishes a new key ahead of the time it starts
//     signing, and retired keys verify until their tokens have expired;
//     [Server.ReloadKeys] (and a re-read at most a minute old) makes a
//     rotation by another replica or the CLI take effect.
//   - Secrets (codes, refresh tokens, client secrets) are stored as SHA-256
//     digests and compared in constant time; no secret is ever logged,
//     audited or echoed in an error.
//   - Passwords: one generic "Invalid username or password" for unknown
//     users (which still cost one argon2id verification), wrong passwords
//     and locked accounts; per-user lockout after Login.MaxFailures
//     failures (password or MFA), per-source throttling through
//     Config.Lockout, and at most Login.MaxMFAAttempts wrong codes per
//     sign-in. TOTP codes are accepted once (store.AdvanceMFAStep), backup
//     codes once (store.UseBackupCode).
//   - Sign-in state is held in sealed cookies: AES-256-GCM under a key
//     derived with HKDF-SHA256 from Config.SessionKey, the purpose of each
//     value ("transaction", "session") authenticated as additional data so
//     that one cannot stand in for the other. The login session is bound to
//     the user's password hash: changing the password ends every session.
//     Cookies are HttpOnly, SameSite=Lax, Path=/, and with
//     Config.SecureCookies Secure and "__Host-" prefixed.
//   - Every form carries a CSRF token bound to the transaction cookie, and
//     a POST with an Origin other than the issuer's (or "null"), or marked
//     cross-site by Sec-Fetch-Site, is refused.
//   - Pages are server-rendered with html/template, load nothing but
//     /oauth/static/style.css, and are served with a Content-Security-Policy
//     of default-src 'none' whose form-action names only 'self' and the
//     validated redirect URI's origin (browsers apply form-action to the
//     redirect a form's response makes), frame-ancestors 'none', and
//     Referrer-Policy same-origin.
//   - Every request body is bounded to 64 KiB and every field by length;
//     repeated parameters are refused.
//   - Every sign-in success and failure, MFA failure, consent, code and
//     token issued or refused, refresh replay, revocation and registration
//     is recorded to Config.Audit (methods "oauth/authorize", "oauth/login",
//     "oauth/mfa", "oauth/consent", "oauth/token", "oauth/revoke",
//     "oauth/introspect", "oauth/register"). A success that cannot be
//     audited is not granted.
package oauth
