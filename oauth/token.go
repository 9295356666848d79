package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safetext"
	"github.com/mcpguard/mcpguard/store"
)

// Token request bounds.
const (
	maxTokenField = 512 // codes and refresh tokens are 43 characters
)

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// grant is what a token is issued for.
type grant struct {
	subject, clientID, resource string
	scopes                      []string
	roles                       []string
	authTime, mfaTime           time.Time // zero for client_credentials
	jti                         string    // "" for a random one
	// newFamily, when set, is the family of a refresh token to create;
	// rotated is a refresh token the rotation already stored.
	newFamily string
	rotated   string
	// x5t is the thumbprint of the client certificate of the token
	// request's mutual-TLS connection (RFC 8705); "" when there was none.
	x5t string
}

// tokenError is an RFC 6749 §5.2 error of the token endpoint.
type tokenError struct {
	status            int
	code, description string
	subject           string // for the audit record, when known
}

func tokenErr(code, description string) *tokenError {
	return &tokenError{status: http.StatusBadRequest, code: code, description: description}
}

func unavailableErr(what string) *tokenError {
	return &tokenError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: what + " cannot be checked right now; try again"}
}

// readForm parses an application/x-www-form-urlencoded body of at most
// 64 KiB whose parameters each appear once (RFC 6749 §3.2).
func readForm(r *http.Request) *tokenError {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return tokenErr("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		return tokenErr("invalid_request", "the body must be a form of at most 64 KiB")
	}
	for name, v := range r.PostForm {
		if len(v) > 1 {
			return tokenErr("invalid_request", "parameter "+safetext.Printable(name, 64)+" is repeated")
		}
	}
	return nil
}

// ClientSubjectPrefix starts the subject of tokens a client obtains for
// itself (client_credentials): "client:" + client_id.
const ClientSubjectPrefix = "client:"

// clientRequest reads the form of a token or revocation request and
// authenticates its client; on failure it answers (and audits under
// method) and returns nil.
func (s *Server) clientRequest(w http.ResponseWriter, r *http.Request, method string) *client {
	cors(w)
	if e := readForm(r); e != nil {
		writeOAuthError(w, e.status, e.code, e.description)
		return nil
	}
	c, err := s.authenticateClient(r)
	if err != nil {
		s.audit(r, method, "", safetext.Printable(r.PostForm.Get("client_id"), 200), guard.AuthFailed, "client authentication failed")
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return nil
	}
	return c
}

// token is the token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	c := s.clientRequest(w, r, "oauth/token")
	if c == nil {
		return
	}
	gt := r.PostForm.Get("grant_type")
	var g *grant
	var e *tokenError
	switch gt {
	case "":
		e = tokenErr("invalid_request", "grant_type is required")
	case "authorization_code", "refresh_token", "client_credentials":
		if !slices.Contains(c.GrantTypes, gt) {
			e = tokenErr("unauthorized_client", "the client may not use the "+gt+" grant")
			break
		}
		switch gt {
		case "authorization_code":
			g, e = s.exchangeCode(r, c)
		case "refresh_token":
			g, e = s.refresh(r, c)
		default:
			g, e = s.clientCredentials(r, c)
		}
	default:
		e = tokenErr("unsupported_grant_type", "grant_type must be authorization_code, refresh_token or client_credentials")
	}
	if e != nil {
		s.audit(r, "oauth/token", e.subject, c.ID, guard.Denied, safetext.Printable(gt, 40)+": "+e.code+": "+e.description)
		writeOAuthError(w, e.status, e.code, e.description)
		return
	}
	if cert := guard.VerifiedClientCert(r); cert != nil {
		// RFC 8705 §3: bind the access token to the certificate of the
		// connection it was requested over.
		g.x5t = guard.CertThumbprint(cert)
	}
	resp, jti, err := s.issue(r.Context(), g)
	if err != nil {
		s.logger.Error("oauth: issue token", "err", err)
		s.audit(r, "oauth/token", g.subject, c.ID, guard.Failed, gt+": tokens could not be issued")
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "tokens cannot be issued right now; try again")
		return
	}
	msg := gt + ": access token " + jti + " issued for " + resp.Scope
	if resp.RefreshToken != "" {
		msg += " with a refresh token"
	}
	if g.x5t != "" {
		msg += ", bound to client certificate " + g.x5t
	}
	if s.audit(r, "oauth/token", g.subject, c.ID, guard.Allowed, msg) != nil {
		// Not handed out, so not usable: take back what was stored.
		if g.newFamily != "" {
			s.cfg.Store.RevokeRefreshFamily(r.Context(), g.newFamily, s.now())
		}
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "tokens cannot be issued right now; try again")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// exchangeCode is the authorization_code grant.
func (s *Server) exchangeCode(r *http.Request, c *client) (*grant, *tokenError) {
	f := r.PostForm
	code, verifier, redirect := f.Get("code"), f.Get("code_verifier"), f.Get("redirect_uri")
	switch {
	case code == "" || len(code) > maxTokenField:
		return nil, tokenErr("invalid_request", "code is required")
	case verifier == "":
		return nil, tokenErr("invalid_request", "code_verifier is required (PKCE)")
	case !verifierRE.MatchString(verifier):
		return nil, tokenErr("invalid_request", "code_verifier must be 43 to 128 unreserved characters")
	case redirect == "":
		return nil, tokenErr("invalid_request", "redirect_uri is required")
	}
	ctx := r.Context()
	now := s.now()
	ac, err := s.cfg.Store.ConsumeAuthCode(ctx, digest(code), now)
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		// A code redeemed twice was intercepted or replayed: what its first
		// redemption issued is revoked (OAuth 2.1 §4.1.3, RFC 9700
		// §4.5.3.1): the refresh-token family, and the access token, whose
		// jti derives from the family. Access tokens minted by refreshes in
		// between cannot be named; they expire within AccessTokenTTL.
		e := tokenErr("invalid_grant", "authorization code reuse detected; the tokens issued for it are revoked")
		if ac != nil {
			e.subject = ac.Subject
			if err := s.cfg.Store.RevokeRefreshFamily(ctx, ac.FamilyID, now); err != nil {
				s.logger.Error("oauth: revoke the family of a replayed code", "err", err)
			}
			if s.cfg.RevokeAccessToken != nil {
				if err := s.cfg.RevokeAccessToken(ctx, s.sealer.codeJTI(ac.FamilyID), now.Add(s.cfg.AccessTokenTTL+time.Minute)); err != nil {
					s.logger.Error("oauth: revoke the access token of a replayed code", "err", err)
				}
			}
		}
		return nil, e
	case errors.Is(err, store.ErrNotFound):
		return nil, tokenErr("invalid_grant", "unknown authorization code")
	case err != nil:
		s.logger.Error("oauth: consume code", "err", err)
		return nil, unavailableErr("the authorization code")
	}
	// The code is spent from here on, whatever the outcome: a wrong
	// verifier cannot be retried.
	var e *tokenError
	switch {
	case !now.Before(ac.ExpiresAt):
		e = tokenErr("invalid_grant", "the authorization code has expired")
	case subtle.ConstantTimeCompare([]byte(ac.ClientID), []byte(c.ID)) != 1:
		e = tokenErr("invalid_grant", "the authorization code was issued to another client")
	case redirect != ac.RedirectURI:
		e = tokenErr("invalid_grant", "redirect_uri does not match the authorization request's")
	case !pkceMatches(verifier, ac.CodeChallenge):
		e = tokenErr("invalid_grant", "code_verifier does not match the code_challenge")
	case f.Get("resource") != "" && f.Get("resource") != ac.Resource:
		e = tokenErr("invalid_target", "resource differs from the authorization request's")
	}
	if e != nil {
		e.subject = ac.Subject
		return nil, e
	}
	u, err := s.cfg.Store.GetUser(ctx, ac.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_grant", description: "the user no longer exists", subject: ac.Subject}
	case err != nil:
		s.logger.Error("oauth: read user", "err", err)
		return nil, unavailableErr("the user")
	}
	g := &grant{subject: ac.Subject, clientID: c.ID, resource: ac.Resource, authTime: ac.AuthTime, mfaTime: ac.MFATime, jti: s.sealer.codeJTI(ac.FamilyID)}
	// The user's roles may have changed since consent: narrow again.
	g.scopes = s.grantable(u.Roles, len(u.MFASecret) > 0, ac.Scopes)
	if len(g.scopes) == 0 {
		return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_scope", description: "the user no longer holds any of the granted scopes' roles", subject: ac.Subject}
	}
	g.roles = s.rolesOf(g.scopes)
	if slices.Contains(c.GrantTypes, "refresh_token") {
		g.newFamily = ac.FamilyID
	}
	return g, nil
}

// requestCertIs reports whether r's connection presented a verified
// client certificate with thumbprint x5t.
func requestCertIs(r *http.Request, x5t string) bool {
	cert := guard.VerifiedClientCert(r)
	return cert != nil && subtle.ConstantTimeCompare([]byte(guard.CertThumbprint(cert)), []byte(x5t)) == 1
}

// pkceMatches checks S256: BASE64URL(SHA256(verifier)) == challenge, in
// constant time.
func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// refresh is the refresh_token grant: the token rotates, the roles are
// recomputed from the user as stored now.
func (s *Server) refresh(r *http.Request, c *client) (*grant, *tokenError) {
	f := r.PostForm
	raw := f.Get("refresh_token")
	if raw == "" || len(raw) > maxTokenField {
		return nil, tokenErr("invalid_request", "refresh_token is required")
	}
	ctx := r.Context()
	now := s.now()
	old, err := s.cfg.Store.GetRefreshToken(ctx, digest(raw))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, tokenErr("invalid_grant", "unknown refresh token")
	case err != nil:
		s.logger.Error("oauth: read refresh token", "err", err)
		return nil, unavailableErr("the refresh token")
	case subtle.ConstantTimeCompare([]byte(old.ClientID), []byte(c.ID)) != 1:
		return nil, tokenErr("invalid_grant", "the refresh token was issued to another client")
	case !old.RevokedAt.IsZero():
		return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_grant", description: "the refresh token was revoked; sign in again", subject: old.Subject}
	case !old.UsedAt.IsZero():
		// Already rotated: whoever presents it now, the family is no
		// longer trustworthy (RFC 9700 §4.14.2).
		if err := s.cfg.Store.RevokeRefreshFamily(ctx, old.FamilyID, now); err != nil {
			s.logger.Error("oauth: revoke a replayed refresh token's family", "err", err)
		}
		return nil, errReuse(old.Subject)
	case !now.Before(old.ExpiresAt):
		return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_grant", description: "the refresh token has expired; sign in again", subject: old.Subject}
	case old.CertThumbprint != "" && !requestCertIs(r, old.CertThumbprint):
		// RFC 8705 §4: a bound refresh token needs its certificate too.
		return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_grant", description: "the refresh token is bound to a client certificate: present it over mutual TLS", subject: old.Subject}
	}
	// A narrower scope is allowed, a wider one is not. The new refresh
	// token keeps the original scope (RFC 6749 §6).
	scopes := old.Scopes
	if f.Get("scope") != "" {
		req := strings.Fields(f.Get("scope"))
		if len(req) == 0 || len(f.Get("scope")) > maxScopeParam {
			return nil, tokenErr("invalid_scope", "scope is empty or too long")
		}
		for _, sc := range req {
			if !slices.Contains(old.Scopes, sc) {
				return nil, tokenErr("invalid_scope", "a refresh may narrow the scope, not widen it")
			}
		}
		scopes = nil
		for _, sc := range req {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	if f.Get("resource") != "" && f.Get("resource") != old.Resource {
		return nil, tokenErr("invalid_target", "resource differs from the original grant's")
	}
	secret := randomToken(32)
	next := &store.RefreshToken{
		Hash: digest(secret), FamilyID: old.FamilyID, ClientID: old.ClientID, Subject: old.Subject, Scopes: old.Scopes,
		Resource: old.Resource, AuthTime: old.AuthTime, MFATime: old.MFATime, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
		CertThumbprint: old.CertThumbprint,
	}
	_, err = s.cfg.Store.RotateRefreshToken(ctx, digest(raw), next, now)
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		return nil, errReuse(old.Subject)
	case errors.Is(err, store.ErrRevoked):
		return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_grant", description: "the refresh token was revoked; sign in again", subject: old.Subject}
	case errors.Is(err, store.ErrNotFound):
		return nil, tokenErr("invalid_grant", "unknown refresh token")
	case err != nil:
		s.logger.Error("oauth: rotate refresh token", "err", err)
		return nil, unavailableErr("the refresh token")
	}
	// Roles come from the user as stored now: a role removed since the
	// sign-in is gone from the new access token.
	u, err := s.cfg.Store.GetUser(ctx, old.Subject)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.cfg.Store.RevokeRefreshFamily(ctx, old.FamilyID, now)
			return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_grant", description: "the user no longer exists", subject: old.Subject}
		}
		s.logger.Error("oauth: read user", "err", err)
		return nil, unavailableErr("the user")
	}
	g := &grant{subject: old.Subject, clientID: c.ID, resource: old.Resource, authTime: old.AuthTime, mfaTime: old.MFATime, rotated: secret}
	g.scopes = s.grantable(u.Roles, len(u.MFASecret) > 0, scopes)
	if len(g.scopes) == 0 {
		return nil, &tokenError{status: http.StatusBadRequest, code: "invalid_scope", description: "the user no longer holds any of the granted scopes' roles", subject: old.Subject}
	}
	g.roles = s.rolesOf(g.scopes)
	return g, nil
}

func errReuse(subject string) *tokenError {
	return &tokenError{status: http.StatusBadRequest, code: "invalid_grant", description: "refresh token reuse detected; the token family is revoked", subject: subject}
}

// clientCredentials is the client_credentials grant, for confidential
// clients: the token's subject is the client, its roles the client's own,
// narrowed by the requested scopes. No refresh token.
func (s *Server) clientCredentials(r *http.Request, c *client) (*grant, *tokenError) {
	if c.TokenEndpointAuthMethod == "none" || c.metadataDocument {
		return nil, tokenErr("unauthorized_client", "client_credentials needs a confidential client")
	}
	f := r.PostForm
	resource := s.cfg.Resources[0]
	if f.Get("resource") != "" {
		resource = f.Get("resource")
	}
	if !slices.Contains(s.cfg.Resources, resource) {
		return nil, tokenErr("invalid_target", "this server does not issue tokens for that resource")
	}
	requested, err := s.requestedScopes(f.Get("scope"), c.Scopes)
	if err != nil {
		return nil, tokenErr("invalid_scope", err.Error())
	}
	// A client acting for itself is named apart from users, so that a
	// client id equal to a user name shares neither rate limits, sessions
	// nor step-up lookups with that user.
	g := &grant{subject: ClientSubjectPrefix + c.ID, clientID: c.ID, resource: resource}
	g.scopes = s.grantable(c.Roles, false, requested)
	if len(g.scopes) == 0 {
		return nil, tokenErr("invalid_scope", "the client holds none of the requested scopes' roles")
	}
	g.roles = s.rolesOf(g.scopes)
	return g, nil
}

// accessClaims are the claims of an access token (RFC 9068).
type accessClaims struct {
	josejwt.Claims
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Roles    []string `json:"roles"`
	AuthTime int64    `json:"auth_time,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	// MFATime is when the person last passed their second factor (a
	// private claim: auth_time is the sign-in, which a step-up does not
	// repeat).
	MFATime int64 `json:"mfa_time,omitempty"`
	// Cnf binds the token to a client certificate (RFC 8705).
	Cnf *confirmation `json:"cnf,omitempty"`
}

// confirmation is the "cnf" claim of a certificate-bound token (RFC 8705
// §3.1).
type confirmation struct {
	X5tS256 string `json:"x5t#S256"`
}

// issue signs an access token for g and, for a new family, stores a
// refresh token. It returns the response and the access token's jti.
func (s *Server) issue(ctx context.Context, g *grant) (*tokenResponse, string, error) {
	now := s.now()
	jti := g.jti
	if jti == "" {
		jti = randomHex(16)
	}
	claims := accessClaims{
		Claims: josejwt.Claims{
			Issuer: s.cfg.Issuer, Subject: g.subject, Audience: josejwt.Audience{g.resource}, ID: jti,
			IssuedAt: josejwt.NewNumericDate(now), NotBefore: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(s.cfg.AccessTokenTTL)),
		},
		ClientID: g.clientID, Scope: strings.Join(g.scopes, " "), Roles: g.roles,
	}
	if claims.Roles == nil {
		claims.Roles = []string{}
	}
	if g.x5t != "" {
		claims.Cnf = &confirmation{X5tS256: g.x5t}
	}
	if !g.authTime.IsZero() {
		claims.AuthTime = g.authTime.Unix()
		claims.AMR = []string{"pwd"}
		if !g.mfaTime.IsZero() {
			claims.AMR = append(claims.AMR, "otp")
			claims.MFATime = g.mfaTime.Unix()
		}
	}
	signer, _ := s.keys.current(ctx)
	if signer == nil {
		return nil, "", errors.New("no signing key")
	}
	at, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return nil, "", err
	}
	resp := &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(s.cfg.AccessTokenTTL / time.Second), Scope: claims.Scope}
	switch {
	case g.rotated != "":
		resp.RefreshToken = g.rotated
	case g.newFamily != "":
		secret := randomToken(32)
		rt := &store.RefreshToken{Hash: digest(secret), FamilyID: g.newFamily, ClientID: g.clientID, Subject: g.subject,
			Scopes: g.scopes, Resource: g.resource, AuthTime: g.authTime, MFATime: g.mfaTime, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
			CertThumbprint: g.x5t}
		if err := s.cfg.Store.CreateRefreshToken(ctx, rt); err != nil {
			return nil, "", err
		}
		resp.RefreshToken = secret
	}
	return resp, jti, nil
}
