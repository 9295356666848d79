package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Metadata is the authorization server's RFC 8414 metadata.
func (s *Server) Metadata() *oauthex.AuthServerMeta {
	m := &oauthex.AuthServerMeta{
		Issuer:                                    s.cfg.Issuer,
		AuthorizationEndpoint:                     s.cfg.Issuer + "/oauth/authorize",
		TokenEndpoint:                             s.cfg.Issuer + "/oauth/token",
		JWKSURI:                                   s.cfg.Issuer + "/.well-known/jwks.json",
		RevocationEndpoint:                        s.cfg.Issuer + "/oauth/revoke",
		IntrospectionEndpoint:                     s.cfg.Issuer + "/oauth/introspect",
		ResponseTypesSupported:                    []string{"code"},
		ResponseModesSupported:                    []string{"query"},
		GrantTypesSupported:                       []string{"authorization_code", "refresh_token", "client_credentials"},
		TokenEndpointAuthMethodsSupported:         []string{"none", "client_secret_basic", "client_secret_post"},
		RevocationEndpointAuthMethodsSupported:    []string{"none", "client_secret_basic", "client_secret_post"},
		IntrospectionEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
		CodeChallengeMethodsSupported:             []string{"S256"},
		ClientIDMetadataDocumentSupported:         s.cfg.ClientIDMetadataDocuments,
	}
	for _, sc := range s.cfg.Scopes {
		m.ScopesSupported = append(m.ScopesSupported, sc.Name)
	}
	if s.cfg.DynamicRegistration {
		m.RegistrationEndpoint = s.cfg.Issuer + "/oauth/register"
	}
	return m
}

// serveMetadata serves the RFC 8414 document (also at the OpenID
// discovery path, with the OIDC fields that hold).
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	doc := map[string]any{}
	b, _ := json.Marshal(s.Metadata())
	json.Unmarshal(b, &doc)
	doc["authorization_response_iss_parameter_supported"] = true
	doc["service_documentation"] = "https://github.com/mcpguard/mcpguard#6-sign-in-with-oauth-no-key-to-paste"
	if strings.HasSuffix(r.URL.Path, "openid-configuration") {
		doc["subject_types_supported"] = []string{"public"}
		doc["id_token_signing_alg_values_supported"] = []string{"ES256"}
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	json.NewEncoder(w).Encode(doc)
}

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	var set jose.JSONWebKeySet
	for _, k := range s.keys.Load().public() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Key, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	json.NewEncoder(w).Encode(set)
}

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
	scopes, roles               []string
	authTime, mfaTime           time.Time
	familyID                    string // "" for no refresh token
	refreshExpiry               time.Time
	rotated                     string // the refresh token a rotation already stored
}

// token is the token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body must be an application/x-www-form-urlencoded form of at most 64 KiB")
		return
	}
	for name, v := range r.PostForm {
		if len(v) > 1 {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "parameter "+safeField(name)+" is repeated")
			return
		}
	}
	c, err := s.authenticateClient(r)
	if err != nil {
		s.audit(r, "oauth/token", "", safeField(r.PostFormValue("client_id")), guard.AuthFailed, "client authentication failed")
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	gt := r.PostFormValue("grant_type")
	if !slices.Contains(c.GrantTypes, gt) {
		s.audit(r, "oauth/token", "", c.ID, guard.Denied, "grant type not allowed to the client: "+safeField(gt))
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "the client may not use this grant type")
		return
	}
	var g *grant
	var code, reason string
	switch gt {
	case "authorization_code":
		g, code, reason = s.exchangeCode(r, c)
	case "refresh_token":
		g, code, reason = s.refresh(r, c)
	case "client_credentials":
		g, code, reason = s.clientCredentials(r, c)
	default:
		code, reason = "unsupported_grant_type", "grant_type must be authorization_code, refresh_token or client_credentials"
	}
	if g == nil {
		s.audit(r, "oauth/token", "", c.ID, guard.Denied, gt+": "+reason)
		status := http.StatusBadRequest
		if code == "temporarily_unavailable" {
			status = http.StatusServiceUnavailable
		}
		writeOAuthError(w, status, code, reason)
		return
	}
	resp, jti, err := s.issue(r, g)
	if err != nil {
		s.logger.Error("oauth: issue token", "err", err)
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "tokens cannot be issued right now; try again")
		return
	}
	s.audit(r, "oauth/token", g.subject, c.ID, guard.Allowed, gt+": access token "+jti+" issued for "+resp.Scope)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) exchangeCode(r *http.Request, c *client) (*grant, string, string) {
	code, verifier := r.PostFormValue("code"), r.PostFormValue("code_verifier")
	if code == "" || len(code) > 256 {
		return nil, "invalid_request", "code is required"
	}
	if verifier == "" {
		return nil, "invalid_request", "code_verifier is required (PKCE)"
	}
	if !verifierRE.MatchString(verifier) {
		return nil, "invalid_grant", "code_verifier must be 43 to 128 unreserved characters"
	}
	ctx := r.Context()
	ac, err := s.cfg.Store.ConsumeAuthCode(ctx, digest(code), s.now())
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		// A code redeemed twice was intercepted or replayed: what the first
		// redemption issued is revoked (RFC 9700 §4.5.3.1 is less strict;
		// OAuth 2.1 recommends it).
		s.cfg.Store.RevokeRefreshFamily(ctx, ac.FamilyID, s.now())
		return nil, "invalid_grant", "authorization code reuse detected; tokens issued from it are revoked"
	case errors.Is(err, store.ErrNotFound):
		return nil, "invalid_grant", "unknown authorization code"
	case err != nil:
		return nil, "temporarily_unavailable", "the code cannot be checked right now"
	}
	switch {
	case !s.now().Before(ac.ExpiresAt):
		return nil, "invalid_grant", "the authorization code has expired"
	case ac.ClientID != c.ID:
		return nil, "invalid_grant", "the code was issued to another client"
	case r.PostFormValue("redirect_uri") != "" && r.PostFormValue("redirect_uri") != ac.RedirectURI,
		r.PostFormValue("redirect_uri") == "" && len(c.RedirectURIs) > 1:
		return nil, "invalid_grant", "redirect_uri does not match the authorization request"
	case !pkceMatches(verifier, ac.CodeChallenge):
		return nil, "invalid_grant", "code_verifier does not match the code_challenge"
	case r.PostFormValue("resource") != "" && r.PostFormValue("resource") != ac.Resource:
		return nil, "invalid_target", "resource differs from the authorization request's"
	}
	u, err := s.cfg.Store.GetUser(ctx, ac.Subject)
	if err != nil {
		return nil, "invalid_grant", "the user no longer exists"
	}
	g := &grant{subject: ac.Subject, clientID: c.ID, resource: ac.Resource, authTime: ac.AuthTime, mfaTime: ac.MFATime, familyID: ac.FamilyID}
	g.scopes = s.grantable(u.Roles, ac.Scopes)
	g.roles = s.rolesOf(g.scopes)
	if slices.Contains(c.GrantTypes, "refresh_token") {
		g.refreshExpiry = s.now().Add(s.cfg.RefreshTokenTTL)
	} else {
		g.familyID = ""
	}
	return g, "", ""
}

// pkceMatches checks S256: BASE64URL(SHA256(verifier)) == challenge.
func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func (s *Server) refresh(r *http.Request, c *client) (*grant, string, string) {
	raw := r.PostFormValue("refresh_token")
	if raw == "" || len(raw) > 256 {
		return nil, "invalid_request", "refresh_token is required"
	}
	ctx := r.Context()
	old, err := s.cfg.Store.GetRefreshToken(ctx, digest(raw))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "invalid_grant", "unknown refresh token"
	case err != nil:
		return nil, "temporarily_unavailable", "the refresh token cannot be checked right now"
	case old.ClientID != c.ID:
		return nil, "invalid_grant", "the refresh token was issued to another client"
	}
	now := s.now()
	next := &store.RefreshToken{FamilyID: old.FamilyID, ClientID: c.ID, Subject: old.Subject, Resource: old.Resource,
		AuthTime: old.AuthTime, MFATime: old.MFATime, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL)}
	scopes := old.Scopes
	if req := strings.Fields(r.PostFormValue("scope")); len(req) > 0 {
		for _, sc := range req {
			if !slices.Contains(old.Scopes, sc) {
				return nil, "invalid_scope", "a refresh may narrow the scopes, not widen them"
			}
		}
		scopes = req
	}
	if res := r.PostFormValue("resource"); res != "" && res != old.Resource {
		return nil, "invalid_target", "resource differs from the original grant's"
	}
	if !now.Before(old.ExpiresAt) {
		return nil, "invalid_grant", "the refresh token has expired"
	}
	next.Scopes = scopes
	secret := randomToken(32)
	next.Hash = digest(secret)
	_, err = s.cfg.Store.RotateRefreshToken(ctx, digest(raw), next, now)
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		return nil, "invalid_grant", "refresh token reuse detected; the token family is revoked, sign in again"
	case errors.Is(err, store.ErrRevoked):
		return nil, "invalid_grant", "the refresh token was revoked; sign in again"
	case err != nil:
		return nil, "temporarily_unavailable", "the refresh token cannot be rotated right now"
	}
	u, err := s.cfg.Store.GetUser(ctx, old.Subject)
	if err != nil {
		s.cfg.Store.RevokeRefreshFamily(ctx, old.FamilyID, now)
		return nil, "invalid_grant", "the user no longer exists"
	}
	// Roles come from the user as they are now: a role removed since the
	// sign-in is gone from the new token.
	g := &grant{subject: old.Subject, clientID: c.ID, resource: old.Resource, authTime: old.AuthTime, mfaTime: old.MFATime}
	g.scopes = s.grantable(u.Roles, scopes)
	g.roles = s.rolesOf(g.scopes)
	g.familyID, g.refreshExpiry = "", time.Time{} // the rotated token is already stored
	g.rotated = secret
	return g, "", ""
}

func (s *Server) clientCredentials(r *http.Request, c *client) (*grant, string, string) {
	if c.TokenEndpointAuthMethod == "none" {
		return nil, "unauthorized_client", "client_credentials needs a confidential client"
	}
	resource := r.PostFormValue("resource")
	if resource == "" {
		resource = s.cfg.Resources[0]
	}
	if !slices.Contains(s.cfg.Resources, resource) {
		return nil, "invalid_target", "this server does not issue tokens for that resource"
	}
	cl := &client{OAuthClient: c.OAuthClient}
	requested, err := s.requestedScopes(r.PostFormValue("scope"), cl)
	if err != nil {
		return nil, "invalid_scope", err.Error()
	}
	g := &grant{subject: c.ID, clientID: c.ID, resource: resource, authTime: s.now()}
	g.scopes = s.grantable(c.Roles, requested)
	g.roles = s.rolesOf(g.scopes)
	return g, "", ""
}

// rolesOf returns the roles the scopes grant, in scope order.
func (s *Server) rolesOf(scopes []string) []string {
	var roles []string
	for _, sc := range s.cfg.Scopes {
		if slices.Contains(scopes, sc.Name) && !slices.Contains(roles, sc.Role) {
			roles = append(roles, sc.Role)
		}
	}
	return roles
}

// accessClaims are the claims of an access token (RFC 9068).
type accessClaims struct {
	josejwt.Claims
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Roles    []string `json:"roles"`
	AuthTime int64    `json:"auth_time,omitempty"`
	AMR      []string `json:"amr,omitempty"`
}

// issue signs an access token for g and, for a new family, stores a
// refresh token.
func (s *Server) issue(r *http.Request, g *grant) (*tokenResponse, string, error) {
	now := s.now()
	jti := randomHex(16)
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
	if !g.authTime.IsZero() {
		claims.AuthTime = g.authTime.Unix()
		claims.AMR = []string{"pwd"}
		if !g.mfaTime.IsZero() {
			claims.AMR = append(claims.AMR, "otp")
		}
	}
	ks := s.keys.Load()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ks.signing},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", ks.kid))
	if err != nil {
		return nil, "", err
	}
	at, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return nil, "", err
	}
	resp := &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(s.cfg.AccessTokenTTL / time.Second), Scope: claims.Scope}
	switch {
	case g.rotated != "":
		resp.RefreshToken = g.rotated
	case g.familyID != "":
		secret := randomToken(32)
		rt := &store.RefreshToken{Hash: digest(secret), FamilyID: g.familyID, ClientID: g.clientID, Subject: g.subject,
			Scopes: g.scopes, Resource: g.resource, AuthTime: g.authTime, MFATime: g.mfaTime, CreatedAt: now, ExpiresAt: g.refreshExpiry}
		if err := s.cfg.Store.CreateRefreshToken(r.Context(), rt); err != nil {
			return nil, "", err
		}
		resp.RefreshToken = secret
	}
	return resp, jti, nil
}

// parseOwnToken verifies an access token of this server (signature with
// any of its keys, issuer) and returns its claims; nil when it is not one.
func (s *Server) parseOwnToken(raw string) *accessClaims {
	if len(raw) > 16<<10 {
		return nil
	}
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return nil
	}
	for _, k := range s.keys.Load().public() {
		if k.ID != tok.Headers[0].KeyID {
			continue
		}
		var c accessClaims
		if tok.Claims(k.Key, &c) == nil && c.Issuer == s.cfg.Issuer {
			return &c
		}
	}
	return nil
}

// revoke is RFC 7009: a refresh token's family is revoked; an access
// token's jti goes on the revocation list. The answer is 200 whatever the
// token, so that it tells nothing.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body must be a form")
		return
	}
	c, err := s.authenticateClient(r)
	if err != nil {
		s.audit(r, "oauth/revoke", "", "", guard.AuthFailed, "client authentication failed")
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	raw := r.PostFormValue("token")
	ctx := r.Context()
	if rt, err := s.cfg.Store.GetRefreshToken(ctx, digest(raw)); err == nil && rt.ClientID == c.ID {
		if err := s.cfg.Store.RevokeRefreshFamily(ctx, rt.FamilyID, s.now()); err != nil {
			writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
			return
		}
		s.audit(r, "oauth/revoke", rt.Subject, c.ID, guard.Allowed, "refresh token family revoked")
	} else if at := s.parseOwnToken(raw); at != nil && at.ClientID == c.ID && s.cfg.RevokeAccessToken != nil {
		if err := s.cfg.RevokeAccessToken(ctx, at.ID, at.Expiry.Time()); err != nil {
			writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
			return
		}
		s.audit(r, "oauth/revoke", at.Subject, c.ID, guard.Allowed, "access token "+at.ID+" revoked")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// introspect is RFC 7662, for confidential clients and their own tokens.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body must be a form")
		return
	}
	c, err := s.authenticateClient(r)
	if err != nil || c.TokenEndpointAuthMethod == "none" {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "introspection needs a confidential client's credentials")
		return
	}
	inactive := map[string]any{"active": false}
	at := s.parseOwnToken(r.PostFormValue("token"))
	if at == nil || at.ClientID != c.ID || !s.now().Before(at.Expiry.Time()) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	if s.cfg.AccessTokenRevoked != nil {
		if revoked, err := s.cfg.AccessTokenRevoked(r.Context(), at.ID); err != nil || revoked {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active": true, "sub": at.Subject, "client_id": at.ClientID, "scope": at.Scope, "roles": at.Roles,
		"aud": at.Audience, "iss": at.Issuer, "exp": at.Expiry.Time().Unix(), "iat": at.IssuedAt.Time().Unix(),
		"jti": at.ID, "token_type": "Bearer",
	})
}
