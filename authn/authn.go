// Package authn routes a presented credential to the authenticator that
// understands it. The methods themselves live in subpackages: authn/apikey
// and authn/jwt.
package authn

import (
	"context"
	"fmt"

	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/guard"
)

// Router is a guard.Authenticator over several methods. A credential that
// starts with the API-key prefix, or arrives in X-API-Key, goes to APIKeys;
// any other bearer token goes to JWT. A nil field disables its method.
type Router struct {
	APIKeys guard.Authenticator
	JWT     guard.Authenticator
}

// Authenticate implements guard.Authenticator.
func (r Router) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	if cred.Kind == guard.APIKeyHeader || apikey.LooksLikeKey(cred.Secret) {
		if r.APIKeys == nil {
			return nil, fmt.Errorf("%w: api key authentication is disabled", guard.ErrInvalidCredentials)
		}
		return r.APIKeys.Authenticate(ctx, cred)
	}
	if r.JWT == nil {
		return nil, fmt.Errorf("%w: bearer token is not an api key and jwt authentication is disabled", guard.ErrInvalidCredentials)
	}
	return r.JWT.Authenticate(ctx, cred)
}
