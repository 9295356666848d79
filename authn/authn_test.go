package authn_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/mcpguard/mcpguard/authn"
	"github.com/mcpguard/mcpguard/guard"
)

// named answers with a principal naming itself, so a test sees the route.
type named string

func (n named) Authenticate(context.Context, guard.Credential) (*guard.Principal, error) {
	return &guard.Principal{Subject: string(n)}, nil
}

func jwtWithIssuer(iss string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(`{"iss":"`+iss+`","sub":"x"}`)) + ".c2ln"
}

func TestRouter(t *testing.T) {
	r := authn.Router{
		APIKeys: named("apikey"),
		JWT:     named("default-jwt"),
		Issuers: map[string]guard.Authenticator{"https://as.example": named("own-as"), "https://idp.example": named("idp")},
		Opaque:  named("introspect"),
	}
	for _, tc := range []struct {
		cred guard.Credential
		want string
	}{
		{guard.Credential{Kind: guard.APIKeyHeader, Secret: "anything"}, "apikey"},
		{guard.Credential{Kind: guard.Bearer, Secret: "mcp_0123456789abcdef_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "apikey"},
		{guard.Credential{Kind: guard.Bearer, Secret: jwtWithIssuer("https://as.example")}, "own-as"},
		{guard.Credential{Kind: guard.Bearer, Secret: jwtWithIssuer("https://idp.example")}, "idp"},
		{guard.Credential{Kind: guard.Bearer, Secret: jwtWithIssuer("https://other.example")}, "default-jwt"},
		{guard.Credential{Kind: guard.Bearer, Secret: "a.!!!.c"}, "default-jwt"},
		{guard.Credential{Kind: guard.Bearer, Secret: "opaque-token-value"}, "introspect"},
	} {
		p, err := r.Authenticate(context.Background(), tc.cred)
		if err != nil || p.Subject != tc.want {
			t.Errorf("%q routed to %v (%v), want %s", tc.cred.Secret, p, err, tc.want)
		}
	}
	// Disabled methods refuse as invalid credentials, never as internal errors.
	empty := authn.Router{}
	for _, secret := range []string{jwtWithIssuer("https://as.example"), "opaque"} {
		if _, err := empty.Authenticate(context.Background(), guard.Credential{Kind: guard.Bearer, Secret: secret}); !errors.Is(err, guard.ErrInvalidCredentials) {
			t.Errorf("%q: err = %v", secret, err)
		}
	}
}
