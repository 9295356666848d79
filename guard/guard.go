// Package guard is mcpguard's security pipeline for Model Context Protocol
// servers built with github.com/modelcontextprotocol/go-sdk.
//
// Every request passes the same four stages, in order:
//
//	authenticate → rate limit → authorize → audit → execute
//
// Each stage sits behind a small interface ([Authenticator], [Limiter],
// [Authorizer], [AuditSink]) so that a program can use mcpguard's
// implementations (packages authn/apikey, authn/jwt, ratelimit, authz, audit)
// or its own. A [Guard] joins the stages and applies them twice: as HTTP
// middleware in front of the streamable-HTTP transport (where a missing
// credential must become an HTTP 401 and a rate limit an HTTP 429), and as
// go-sdk receiving middleware on the [mcp.Server] (where every MCP method,
// tools/list as much as tools/call, is authorized and audited).
//
// A minimal secured server:
//
//	g := &guard.Guard{Authenticator: keys, Limiter: lim, Authorizer: rbac, Audit: sink}
//	server := mcp.NewServer(impl, nil)
//	server.AddReceivingMiddleware(g.MCPMiddleware())
//	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
//	http.ListenAndServe("127.0.0.1:8080", g.HTTPMiddleware(handler))
package guard

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"time"
)

// AuthMethod names how a [Principal] proved its identity.
type AuthMethod string

// The authentication methods mcpguard knows.
const (
	MethodAPIKey AuthMethod = "api_key"
	MethodJWT    AuthMethod = "jwt"
	// MethodOAuth is an access token issued by mcpguard's own
	// authorization server (package oauth).
	MethodOAuth AuthMethod = "oauth"
	// MethodAnonymous is a request without any credential, admitted only
	// when HTTPOptions.Anonymous is configured.
	MethodAnonymous AuthMethod = "anonymous"
	// MethodMTLS is a client certificate verified in the TLS handshake and
	// mapped to an identity (package authn/mtls).
	MethodMTLS AuthMethod = "mtls"
)

// Principal is the authenticated caller. One Principal flows through every
// stage of the pipeline; stages read it and never modify it.
type Principal struct {
	// Subject identifies the caller within its Issuer: an API key's name or
	// a JWT's "sub" claim.
	Subject string
	// Issuer is the JWT issuer, or "mcpguard" for API keys.
	Issuer string
	// Method is how the caller authenticated.
	Method AuthMethod
	// KeyID is the API key id, when Method is MethodAPIKey.
	KeyID string
	// TokenID is the JWT "jti", when present.
	TokenID string
	// ClientID is the OAuth client the credential was issued to, if any.
	ClientID string
	// Roles are the roles granted by the credential (before inheritance).
	Roles []string
	// Scopes are the OAuth scopes or API key scopes carried by the credential.
	Scopes []string
	// Permissions are permission patterns granted directly by the credential
	// (for example a JWT "permissions" claim), in addition to role grants.
	Permissions []string
	// Groups are the identity provider's groups of the caller (the claim a
	// JWT authenticator maps to roles), for attribute policies.
	Groups []string
	// AuthTime is when the caller last authenticated interactively (the
	// token's "auth_time"); zero when unknown.
	AuthTime time.Time
	// MFATime is when the caller last completed a second factor (TOTP);
	// zero when never or unknown. Step-up policies require it to be recent.
	MFATime time.Time
	// ExpiresAt is when the credential stops being valid; zero means never.
	ExpiresAt time.Time
	// PreviousSecret is true when an API key was presented with the secret
	// it had before its last rotation, during the rotation's grace period.
	// Audit records show it, so that the clients still using the old secret
	// can be found before the grace ends.
	PreviousSecret bool
	// ScopeLimited is true when Roles were already narrowed by the
	// credential's OAuth scopes when it was issued (tokens of mcpguard's own
	// authorization server). Authorizers must not grant such a principal
	// roles from elsewhere (authz.RBAC skips its Users map), or a token
	// could exceed the scopes its user consented to.
	ScopeLimited bool
	// BoundCertificate is the SHA-256 thumbprint (base64url, RFC 8705
	// "x5t#S256") of the client certificate the credential is bound to:
	// the token's "cnf" claim, or the certificate itself for MethodMTLS.
	// When set, the credential is accepted only over a TLS connection that
	// presented that certificate.
	BoundCertificate string
}

// ID returns a stable identifier for the principal, unique across issuers and
// methods. It keys rate limits and binds MCP sessions to their owner. The
// issuer is escaped so that no two (method, issuer, subject) triples share an
// ID: "jwt:https%3A%2F%2Fidp.example.com:alice".
func (p *Principal) ID() string {
	if p == nil {
		return ""
	}
	return string(p.Method) + ":" + url.QueryEscape(p.Issuer) + ":" + p.Subject
}

// HasRole reports whether the credential itself carries role r. Inheritance
// is the Authorizer's concern, not the Principal's.
func (p *Principal) HasRole(r string) bool { return slices.Contains(p.Roles, r) }

// CredentialKind says where a credential was presented.
type CredentialKind int

// Credential kinds.
const (
	// Bearer is "Authorization: Bearer <token>" over HTTP, or MCP_AUTH_TOKEN
	// on stdio. It may be an API key or a JWT.
	Bearer CredentialKind = iota + 1
	// APIKeyHeader is "X-API-Key: <key>" over HTTP, or MCP_API_KEY on stdio.
	APIKeyHeader
	// ClientCertificate is a client certificate verified in the TLS
	// handshake (mutual TLS); Certificate holds it and Secret is empty.
	ClientCertificate
)

// Credential is a secret presented by a caller. Its Secret must never be
// logged, audited or echoed in an error.
type Credential struct {
	Kind   CredentialKind
	Secret string
	// Certificate is the verified leaf certificate, for ClientCertificate.
	Certificate *x509.Certificate
}

// CertThumbprint returns the RFC 8705 "x5t#S256" thumbprint of cert: the
// unpadded base64url SHA-256 of its DER encoding.
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Authenticator turns a credential into a Principal.
//
// Errors: an invalid, expired or revoked credential yields an error wrapping
// [ErrInvalidCredentials] whose text says why in words safe to audit (it must
// never contain the credential). Any other error is an internal failure (for
// example the store is unreachable) and fails the request closed without
// counting as an authentication failure.
type Authenticator interface {
	Authenticate(ctx context.Context, cred Credential) (*Principal, error)
}

// ErrInvalidCredentials marks a credential that was presented and refused.
var ErrInvalidCredentials = errors.New("invalid credentials")

// ErrNoCredentials marks a request that presented no credential at all.
var ErrNoCredentials = errors.New("no credentials")
