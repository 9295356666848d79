package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"github.com/mcpguard/mcpguard/oauth"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

type discard struct{}

func (discard) Record(context.Context, *guard.Record) error { return nil }

// setupTest runs setupOAuth for base on a fresh store.
func setupTest(t *testing.T, mutate func(*config.Config)) (*resourceServer, *guard.Guard, store.Store, *config.Config) {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if mutate != nil {
		mutate(cfg)
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g, _, rbac, err := buildGuard(ctx, cfg, st, config.Resolver{Env: func(string) (string, bool) { return "", false }}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Audit = discard{}
	rs, err := setupOAuth(ctx, cfg, "https://mcp.example", st, g, rbac, config.Resolver{Env: func(string) (string, bool) { return "", false }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs, g, st, cfg
}

// signWith signs claims with the authorization server's stored key.
func signWith(t *testing.T, st store.Store, claims map[string]any) string {
	t.Helper()
	keys, err := st.ListSigningKeys(context.Background())
	if err != nil || len(keys) == 0 {
		t.Fatalf("signing keys: %v", err)
	}
	block, _ := pem.Decode(keys[0].PrivateKeyPEM)
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, priv, keys[0].ID, claims)
}

func sign(t *testing.T, key any, kid string, claims map[string]any) string {
	t.Helper()
	return signTyped(t, key, kid, "at+jwt", claims)
}

func signTyped(t *testing.T, key any, kid, typ string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(iss, aud string, extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": iss, "aud": aud, "sub": "alice", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": "j-" + aud}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// The resource server accepts the built-in authorization server's tokens
// only for this resource, marks them scope-limited, and refuses tokens for
// another audience or from another issuer.
func TestOwnTokensAudienceAndIssuer(t *testing.T) {
	_, g, st, _ := setupTest(t, nil)
	ctx := context.Background()
	bearer := func(tok string) guard.Credential { return guard.Credential{Kind: guard.Bearer, Secret: tok} }
	good := signWith(t, st, claims("https://mcp.example", "https://mcp.example/mcp", map[string]any{"scope": "mcp:read", "roles": []string{"viewer"}, "permissions": []string{"tools:call:*"}}))
	p, err := g.Authenticator.Authenticate(ctx, bearer(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != guard.MethodOAuth || !p.ScopeLimited || !slices.Equal(p.Scopes, []string{"mcp:read"}) || p.Permissions != nil {
		t.Fatalf("principal = %+v", p)
	}
	for name, tok := range map[string]string{
		"another resource":  signWith(t, st, claims("https://mcp.example", "https://other.example/mcp", nil)),
		"resource prefix":   signWith(t, st, claims("https://mcp.example", "https://mcp.example/mcp/x", nil)),
		"issuer of another": signWith(t, st, claims("https://evil.example", "https://mcp.example/mcp", nil)),
	} {
		if _, err := g.Authenticator.Authenticate(ctx, bearer(tok)); !errors.Is(err, guard.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// A JWT of the right key, issuer and audience but not typed as an
	// access token (RFC 9068) is refused.
	keys0, _ := st.ListSigningKeys(ctx)
	block, _ := pem.Decode(keys0[0].PrivateKeyPEM)
	priv, _ := x509.ParsePKCS8PrivateKey(block.Bytes)
	if _, err := g.Authenticator.Authenticate(ctx, bearer(signTyped(t, priv, keys0[0].ID, "JWT", claims("https://mcp.example", "https://mcp.example/mcp", nil)))); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Errorf("typ JWT: err = %v", err)
	}
	// A token signed by another key under our issuer.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys, _ := st.ListSigningKeys(ctx)
	forged := sign(t, other, keys[0].ID, claims("https://mcp.example", "https://mcp.example/mcp", nil))
	if _, err := g.Authenticator.Authenticate(ctx, bearer(forged)); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Errorf("forged: err = %v", err)
	}
	// The challenge names the metadata and the default scopes.
	if g.HTTP.ResourceMetadataURL != "https://mcp.example/.well-known/oauth-protected-resource/mcp" ||
		!slices.Equal(g.HTTP.ChallengeScopes, []string{"mcp:read", "mcp:tools"}) || g.HTTP.StepUp == nil {
		t.Fatalf("HTTP options = %+v", g.HTTP)
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	idp := "https://idp.example"
	rs, _, _, cfg := setupTest(t, func(c *config.Config) {
		c.Auth.Providers = []config.ProviderConfig{{Name: "okta", Issuer: idp, JWKSURL: "https://idp.example/jwks"}}
	})
	mux := http.NewServeMux()
	rs.mount(mux, cfg)
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != 200 {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		servers, _ := json.Marshal(m["authorization_servers"])
		methods, _ := json.Marshal(m["bearer_methods_supported"])
		if m["resource"] != "https://mcp.example/mcp" || string(servers) != `["https://mcp.example","https://idp.example"]` || string(methods) != `["header"]` {
			t.Fatalf("%s: %v", path, m)
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/oauth-authorization-server", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"issuer":"https://mcp.example"`) {
		t.Fatalf("AS metadata: %d %s", rec.Code, rec.Body)
	}
}

// An external identity provider's JWTs are verified with its JWKS, must be
// issued for this resource, and have their groups mapped to roles.
func TestExternalProviderJWKS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "idp1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer jwks.Close()
	_, g, _, _ := setupTest(t, func(c *config.Config) {
		c.OAuth.Enabled = false
		c.Auth.Providers = []config.ProviderConfig{{Name: "corp", Issuer: "https://idp.example", JWKSURL: jwks.URL,
			Claims: config.ClaimsConfig{Roles: "groups"}, RoleMap: map[string][]string{"eng": {"developer"}}}}
	})
	ctx := context.Background()
	tok := sign(t, key, "idp1", claims("https://idp.example", "https://mcp.example/mcp", map[string]any{"groups": []string{"eng", "sales"}}))
	p, err := g.Authenticator.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: tok})
	if err != nil {
		t.Fatal(err)
	}
	rbac, _ := authz.NewRBAC(Policy(config.Default()))
	if p.Method != guard.MethodJWT || p.ScopeLimited || !slices.Equal(p.Roles, []string{"developer"}) ||
		!rbac.Authorize(ctx, p, guard.Action{Method: "tools/call", Target: "execute_sql"}).Allowed {
		t.Fatalf("principal = %+v", p)
	}
	wrongAud := sign(t, key, "idp1", claims("https://idp.example", "https://other.example/mcp", nil))
	if _, err := g.Authenticator.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: wrongAud}); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("a token for another resource: %v", err)
	}
	if g.HTTP.StepUp != nil || g.HTTP.ResourceMetadataURL == "" {
		t.Fatalf("with the built-in server off: %+v", g.HTTP)
	}
}

// Signing-key rotation: the new key is published before it signs; a token
// signed before the rotation verifies after it; a token of the retired key
// is refused once its grace (the token lifetime) is over.
func TestSigningKeyRotation(t *testing.T) {
	rs, g, st, _ := setupTest(t, nil)
	ctx := context.Background()
	bearer := func(tok string) guard.Credential { return guard.Credential{Kind: guard.Bearer, Secret: tok} }
	now := time.Now()
	long := func() map[string]any {
		c := claims("https://mcp.example", "https://mcp.example/mcp", nil)
		c["exp"] = now.Add(48 * time.Hour).Unix() // outlives the grace, to test the key, not exp
		return c
	}
	before := signWith(t, st, long())
	oldKeys, _ := st.ListSigningKeys(ctx)

	k, err := oauthRotate(ctx, st, 10*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.syncKeys(ctx); err != nil {
		t.Fatal(err)
	}
	vks, _ := rs.as.VerificationKeys(ctx)
	if len(vks) != 2 || !slices.ContainsFunc(vks, func(v oauthKey) bool { return v.ID == k.ID }) {
		t.Fatalf("the new key is not published before it signs: %v", vks)
	}
	if _, err := g.Authenticator.Authenticate(ctx, bearer(before)); err != nil {
		t.Fatalf("a token signed before the rotation: %v", err)
	}
	// The new key signs only once its publication delay is over.
	if st2, _ := st.ListSigningKeys(ctx); st2[0].ID != k.ID || !st2[0].CreatedAt.After(now) {
		t.Fatalf("keys = %+v", st2)
	}
	// After the retirement plus the token lifetime, the old key is gone.
	rs.as = mustServerAt(t, st, now.Add(10*time.Minute+15*time.Minute+2*time.Minute))
	if err := rs.syncKeys(ctx); err != nil {
		t.Fatal(err)
	}
	vks, _ = rs.as.VerificationKeys(ctx)
	if len(vks) != 1 || vks[0].ID != k.ID || vks[0].ID == oldKeys[0].ID {
		t.Fatalf("after the grace: %v", vks)
	}
	if _, err := g.Authenticator.Authenticate(ctx, bearer(before)); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("a token of a retired key after its grace: %v", err)
	}
}

type oauthKey = oauth.VerificationKey

var oauthRotate = oauth.RotateSigningKey

// mustServerAt is an authorization server on st whose clock reads at.
func mustServerAt(t *testing.T, st store.Store, at time.Time) *oauth.Server {
	t.Helper()
	s, err := oauth.New(context.Background(), oauth.Config{
		Issuer: "https://mcp.example", Resources: []string{"https://mcp.example/mcp"}, Store: st,
		Scopes: []oauth.Scope{{Name: "mcp:read", Role: "viewer"}}, HasRole: func([]string, string) bool { return true },
		SessionKey: make([]byte, 32), Audit: discard{}, Now: func() time.Time { return at },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Off loopback, the built-in authorization server needs https: over plain
// http it is not started (and so not advertised).
func TestAuthorizationServerNeedsHTTPS(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for base, want := range map[string]bool{"http://10.0.0.5:8080": false, "http://127.0.0.1:8080": true, "https://mcp.example": true} {
		g, _, rbac, err := buildGuard(ctx, cfg, st, config.Resolver{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		g.Audit = discard{}
		rs, err := setupOAuth(ctx, cfg, base, st, g, rbac, config.Resolver{}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if (rs.as != nil) != want || (g.HTTP.ResourceMetadataURL != "") != want {
			t.Errorf("%s: authorization server running = %v, want %v", base, rs.as != nil, want)
		}
	}
}
