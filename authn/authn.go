// Package authn routes a presented credential to the authenticator that
// understands it. The methods themselves live in subpackages: authn/apikey,
// authn/jwt (JWTs of an identity provider, or of mcpguard's own
// authorization server) and authn/introspect (opaque tokens, RFC 7662).
package authn

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/guard"
)

// Router is a guard.Authenticator over several methods:
//
//   - a credential that starts with the API-key prefix, or arrives in
//     X-API-Key, goes to APIKeys;
//   - a JWT goes to the authenticator of its "iss" claim in Issuers, or to
//     JWT when no entry matches (the issuer is read, unverified, only to
//     choose; the chosen authenticator verifies it, issuer included);
//   - any other bearer token goes to Opaque (token introspection).
//
// A nil field disables its method.
type Router struct {
	APIKeys guard.Authenticator
	JWT     guard.Authenticator
	// Issuers maps a JWT issuer to the authenticator for its tokens: one
	// per trusted identity provider, and mcpguard's own authorization
	// server.
	Issuers map[string]guard.Authenticator
	// Opaque authenticates bearer tokens that are not JWTs.
	Opaque guard.Authenticator
}

// Invalidate makes every authenticator of r that caches credentials
// (apikey, jwt) forget them, after a revocation made by another process.
func (r Router) Invalidate() {
	all := []guard.Authenticator{r.APIKeys, r.JWT, r.Opaque}
	for _, a := range r.Issuers {
		all = append(all, a)
	}
	for _, a := range all {
		if inv, ok := a.(interface{ Invalidate() }); ok {
			inv.Invalidate()
		}
	}
}

// maxPeek bounds the JWT payload decoded to read its issuer.
const maxPeek = 16 << 10

// Authenticate implements guard.Authenticator.
func (r Router) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	if cred.Kind == guard.APIKeyHeader || apikey.LooksLikeKey(cred.Secret) {
		if r.APIKeys == nil {
			return nil, fmt.Errorf("%w: api key authentication is disabled", guard.ErrInvalidCredentials)
		}
		return r.APIKeys.Authenticate(ctx, cred)
	}
	iss, isJWT := peekIssuer(cred.Secret)
	if !isJWT {
		if r.Opaque == nil {
			return nil, fmt.Errorf("%w: bearer token is neither an api key nor a JWT", guard.ErrInvalidCredentials)
		}
		return r.Opaque.Authenticate(ctx, cred)
	}
	if a, ok := r.Issuers[iss]; ok && iss != "" {
		return a.Authenticate(ctx, cred)
	}
	if r.JWT == nil {
		return nil, fmt.Errorf("%w: the token's issuer is not trusted", guard.ErrInvalidCredentials)
	}
	return r.JWT.Authenticate(ctx, cred)
}

// peekIssuer reports whether token has the shape of a compact JWS and, if
// its payload decodes, returns its "iss" claim. Nothing is verified.
func peekIssuer(token string) (iss string, isJWT bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" || len(parts[1]) > maxPeek {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", true
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if dec.Decode(&claims) != nil {
		return "", true
	}
	return claims.Iss, true
}
