package jwt

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/clocktest"
)

func newTestAuthenticator(t *testing.T, clock *clocktest.Clock, mutate func(*Config)) *Authenticator {
	t.Helper()
	cfg := Config{
		Issuer:    testIssuer,
		Audiences: []string{"other-service", testAudience},
		Keys:      staticKeys(testKeys()),
		Now:       clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func bearer(tok string) guard.Credential { return guard.Credential{Kind: guard.Bearer, Secret: tok} }

func TestAuthenticateValidTokens(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	now := clock.Now()
	a := newTestAuthenticator(t, clock, nil)

	tests := []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  any
		kid  string
	}{
		{"HS256", jose.HS256, k.hmac, "hs"},
		{"RS256", jose.RS256, k.rsa, "rs"},
		{"ES256", jose.ES256, k.ec, "es"},
		{"EdDSA", jose.EdDSA, k.ed, "ed"},
		{"RS256 without kid", jose.RS256, k.rsa, ""},
		{"EdDSA without kid", jose.EdDSA, k.ed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := sign(t, tt.alg, tt.key, tt.kid, claimsAt(now))
			p, err := a.Authenticate(context.Background(), bearer(tok))
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			want := guard.Principal{
				Subject:   "alice",
				Issuer:    testIssuer,
				Method:    guard.MethodJWT,
				TokenID:   "token-1",
				ExpiresAt: time.Unix(now.Add(time.Hour).Unix(), 0),
			}
			if p.Subject != want.Subject || p.Issuer != want.Issuer || p.Method != want.Method ||
				p.TokenID != want.TokenID || !p.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("principal = %+v, want %+v", *p, want)
			}
		})
	}
}

func TestAuthenticateRefusals(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	now := clock.Now()

	with := func(edit func(map[string]any)) map[string]any {
		c := claimsAt(now)
		edit(c)
		return c
	}
	rsaPEM := publicPEM(t, &k.rsa.PublicKey)
	rsOnly := func(c *Config) { c.Keys = []Key{{ID: "rs", Algorithm: "RS256", Key: &k.rsa.PublicKey}} }
	valid := sign(t, jose.RS256, k.rsa, "rs", claimsAt(now))
	parts := strings.Split(valid, ".")

	tests := []struct {
		name   string
		cfg    func(*Config)
		cred   guard.Credential
		reason string
	}{
		{"api key header", nil, guard.Credential{Kind: guard.APIKeyHeader, Secret: valid}, "jwt: not a bearer token"},
		{"empty", nil, bearer(""), "jwt: malformed token"},
		{"garbage", nil, bearer("not-a-jwt"), "jwt: malformed token"},
		{"bad base64", nil, bearer("a.b.c"), "jwt: malformed token"},
		{"five parts", nil, bearer(valid + ".x.y"), "jwt: malformed token"},
		{"oversized", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) {
			c["pad"] = strings.Repeat("x", maxTokenSize)
		}))), "jwt: token too large"},
		{"bad signature", nil, bearer(sign(t, jose.RS256, k.rsaOther, "rs", claimsAt(now))), "jwt: bad signature"},
		{"bad signature without kid", nil, bearer(sign(t, jose.RS256, k.rsaOther, "", claimsAt(now))), "jwt: bad signature"},
		{"tampered payload", nil, bearer(parts[0] + "." + strings.Split(unsigned(t, map[string]any{}, with(func(c map[string]any) {
			c["sub"] = "root"
		})), ".")[1] + "." + parts[2]), "jwt: bad signature"},
		{"wrong hmac secret", nil, bearer(sign(t, jose.HS256, []byte(strings.Repeat("k", 32)), "hs", claimsAt(now))), "jwt: bad signature"},
		{"alg none", nil, bearer(unsigned(t, map[string]any{"alg": "none", "kid": "rs"}, claimsAt(now))), "jwt: algorithm not allowed"},
		{"alg none without kid", nil, bearer(unsigned(t, map[string]any{"alg": "none"}, claimsAt(now))), "jwt: algorithm not allowed"},
		{"alg confusion RSA PEM as HMAC secret", rsOnly, bearer(sign(t, jose.HS256, rsaPEM, "rs", claimsAt(now))), "jwt: algorithm not allowed"},
		{"alg confusion without kid", rsOnly, bearer(sign(t, jose.HS256, rsaPEM, "", claimsAt(now))), "jwt: algorithm not allowed"},
		{"alg confusion with HS keys configured", nil, bearer(sign(t, jose.HS256, rsaPEM, "rs", claimsAt(now))), "jwt: algorithm not allowed"},
		{"key pinned to another alg", nil, bearer(sign(t, jose.ES256, k.ec, "rs", claimsAt(now))), "jwt: algorithm not allowed"},
		{"alg with no key", nil, bearer(sign(t, jose.ES384, k.ec384, "", claimsAt(now))), "jwt: algorithm not allowed"},
		{"unknown kid", nil, bearer(sign(t, jose.RS256, k.rsa, "nope", claimsAt(now))), "jwt: unknown key id"},
		{"wrong audience", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) {
			c["aud"] = "https://elsewhere.example.com"
		}))), "jwt: wrong audience"},
		{"wrong issuer", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) {
			c["iss"] = "https://evil.example.com/"
		}))), "jwt: wrong issuer"},
		{"expired", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) {
			c["exp"] = josejwt.NewNumericDate(now.Add(-31 * time.Second))
		}))), "jwt: token expired"},
		{"expired without leeway", func(c *Config) { c.Leeway = -1 }, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) {
			c["exp"] = josejwt.NewNumericDate(now.Add(-time.Second))
		}))), "jwt: token expired"},
		{"not yet valid", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) {
			c["nbf"] = josejwt.NewNumericDate(now.Add(5 * time.Minute))
		}))), "jwt: token not yet valid"},
		{"issued in the future", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) {
			c["iat"] = josejwt.NewNumericDate(now.Add(5 * time.Minute))
		}))), "jwt: token issued in the future"},
		{"missing exp", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { delete(c, "exp") }))), "jwt: missing exp claim"},
		{"missing sub", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { delete(c, "sub") }))), "jwt: missing sub claim"},
		{"missing aud", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { delete(c, "aud") }))), "jwt: missing aud claim"},
		{"empty aud", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { c["aud"] = []string{} }))), "jwt: missing aud claim"},
		{"missing iss", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { delete(c, "iss") }))), "jwt: missing iss claim"},
		{"exp not a number", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { c["exp"] = "tomorrow" }))), "jwt: malformed token"},
		{"sub not a string", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { c["sub"] = 42 }))), "jwt: malformed token"},
		{"exp overflowing", nil, bearer(sign(t, jose.RS256, k.rsa, "rs", with(func(c map[string]any) { c["exp"] = 1e300 }))), "jwt: malformed token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAuthenticator(t, clock, tt.cfg)
			p, err := a.Authenticate(context.Background(), tt.cred)
			if err == nil {
				t.Fatalf("Authenticate accepted the token: %+v", p)
			}
			if !errors.Is(err, guard.ErrInvalidCredentials) {
				t.Errorf("error %q does not wrap ErrInvalidCredentials", err)
			}
			if !strings.HasSuffix(err.Error(), tt.reason) {
				t.Errorf("error = %q, want reason %q", err, tt.reason)
			}
			if tt.cred.Secret != "" && strings.Contains(err.Error(), tt.cred.Secret) {
				t.Errorf("error contains the token")
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	now := clock.Now()
	expiredBy := func(d time.Duration) string {
		c := claimsAt(now.Add(-time.Hour))
		c["exp"] = josejwt.NewNumericDate(now.Add(-d))
		return sign(t, jose.ES256, k.ec, "es", c)
	}
	tests := []struct {
		name   string
		leeway time.Duration
		token  string
		ok     bool
	}{
		{"expired within default leeway", 0, expiredBy(20 * time.Second), true},
		{"expired beyond default leeway", 0, expiredBy(40 * time.Second), false},
		{"expired within custom leeway", 2 * time.Minute, expiredBy(90 * time.Second), true},
		{"no leeway", -1, expiredBy(time.Second), false},
		{"nbf within leeway", 0, func() string {
			c := claimsAt(now)
			c["nbf"] = josejwt.NewNumericDate(now.Add(20 * time.Second))
			c["iat"] = josejwt.NewNumericDate(now.Add(20 * time.Second))
			return sign(t, jose.ES256, k.ec, "es", c)
		}(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAuthenticator(t, clock, func(c *Config) { c.Leeway = tt.leeway })
			_, err := a.Authenticate(context.Background(), bearer(tt.token))
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// revocations is a RevocationChecker backed by a set, counting its calls.
type revocations struct {
	revoked map[string]bool
	err     error
	calls   atomic.Int32
}

func (r *revocations) TokenRevoked(_ context.Context, jti string) (bool, error) {
	r.calls.Add(1)
	return r.revoked[jti], r.err
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	now := clock.Now()
	withJTI := func(jti string) string {
		c := claimsAt(now)
		if jti == "" {
			delete(c, "jti")
		} else {
			c["jti"] = jti
		}
		return sign(t, jose.EdDSA, k.ed, "ed", c)
	}
	storeDown := errors.New("store unreachable")
	tests := []struct {
		name      string
		checker   *revocations
		token     string
		wantErr   error // nil: accepted
		wantCalls int32
	}{
		{"not revoked", &revocations{revoked: map[string]bool{"other": true}}, withJTI("live"), nil, 1},
		{"revoked", &revocations{revoked: map[string]bool{"dead": true}}, withJTI("dead"), guard.ErrInvalidCredentials, 1},
		{"checker error", &revocations{err: storeDown}, withJTI("live"), storeDown, 1},
		{"no jti skips the check", &revocations{err: storeDown}, withJTI(""), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAuthenticator(t, clock, func(c *Config) { c.Revocations = tt.checker })
			_, err := a.Authenticate(context.Background(), bearer(tt.token))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == storeDown && errors.Is(err, guard.ErrInvalidCredentials) {
				t.Errorf("checker failure %q counted as invalid credentials", err)
			}
			if tt.wantErr == guard.ErrInvalidCredentials && !strings.HasSuffix(err.Error(), "jwt: token revoked") {
				t.Errorf("err = %q, want token revoked", err)
			}
			if got := tt.checker.calls.Load(); got != tt.wantCalls {
				t.Errorf("checker called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestClaimsMapping(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	now := clock.Now()
	many := make([]any, 150)
	for i := range many {
		many[i] = fmt.Sprintf("r%d", i)
	}
	tests := []struct {
		name   string
		cfg    func(*Config)
		extra  map[string]any
		roles  []string
		scopes []string
		perms  []string
		client string
		groups []string
		auth   int64 // AuthTime, unix
		mfa    int64 // MFATime, unix
	}{
		{name: "nothing extra"},
		{name: "roles as array", extra: map[string]any{"roles": []string{"admin", "dev"}}, roles: []string{"admin", "dev"}},
		{name: "roles as string", extra: map[string]any{"roles": "admin  dev"}, roles: []string{"admin", "dev"}},
		{name: "non-string roles skipped", extra: map[string]any{"roles": []any{"admin", 7, nil, map[string]any{"x": 1}, "", "dev"}}, roles: []string{"admin", "dev"}},
		{name: "roles of wrong type ignored", extra: map[string]any{"roles": 12}},
		{name: "roles bounded", extra: map[string]any{"roles": many}, roles: func() []string {
			out := make([]string, maxClaimEntries)
			for i := range out {
				out[i] = fmt.Sprintf("r%d", i)
			}
			return out
		}()},
		{name: "scope string", extra: map[string]any{"scope": "read write"}, scopes: []string{"read", "write"}},
		{name: "scp array", extra: map[string]any{"scp": []string{"read", "write"}}, scopes: []string{"read", "write"}},
		{name: "scope preferred over scp", extra: map[string]any{"scope": "a", "scp": []string{"b"}}, scopes: []string{"a"}},
		{name: "permissions", extra: map[string]any{"permissions": []string{"tools:call:*"}}, perms: []string{"tools:call:*"}},
		{name: "client_id", extra: map[string]any{"client_id": "cli", "azp": "web"}, client: "cli"},
		{name: "azp", extra: map[string]any{"azp": "web"}, client: "web"},
		{name: "client_id not a string falls back to azp", extra: map[string]any{"client_id": 5, "azp": "web"}, client: "web"},
		{
			name: "custom claim names",
			cfg: func(c *Config) {
				c.RolesClaim = "https://example.com/roles"
				c.ScopeClaims = []string{"scopes"}
				c.PermissionsClaim = "perms"
				c.ClientIDClaims = []string{"cid"}
			},
			extra: map[string]any{
				"https://example.com/roles": []string{"ops"}, "roles": []string{"admin"},
				"scopes": "x", "scope": "y", "perms": "p:q", "cid": "c1", "client_id": "c2",
			},
			roles: []string{"ops"}, scopes: []string{"x"}, perms: []string{"p:q"}, client: "c1",
		},
		{
			name:   "role map translates groups and drops unmapped ones",
			cfg:    func(c *Config) { c.RoleMap = map[string][]string{"eng": {"developer"}, "sre": {"developer", "admin"}} },
			extra:  map[string]any{"roles": []string{"eng", "sales", "sre"}, "groups": []string{"all"}},
			roles:  []string{"developer", "admin"},
			groups: []string{"all", "eng", "sales", "sre"},
		},
		{name: "groups claim", extra: map[string]any{"groups": []string{"eng"}}, groups: []string{"eng"}},
		{name: "auth_time without a second factor", extra: map[string]any{"auth_time": 1700000000, "amr": []string{"pwd"}}, auth: 1700000000},
		{name: "amr names a second factor", extra: map[string]any{"auth_time": 1700000000, "amr": []string{"pwd", "otp"}}, auth: 1700000000, mfa: 1700000000},
		{name: "mfa_time from mcpguard's authorization server", cfg: func(c *Config) { c.Method = guard.MethodOAuth },
			extra: map[string]any{"auth_time": 1700000000, "mfa_time": 1700000500, "amr": []string{"pwd", "otp"}}, auth: 1700000000, mfa: 1700000500},
		{name: "mfa_time from another issuer is ignored", extra: map[string]any{"auth_time": 1700000000, "mfa_time": 1700000500, "amr": []string{"pwd", "otp"}}, auth: 1700000000, mfa: 1700000000},
		{name: "times from the future are ignored", cfg: func(c *Config) { c.Method = guard.MethodOAuth },
			extra: map[string]any{"auth_time": now.Add(time.Hour).Unix(), "mfa_time": now.Add(time.Hour).Unix(), "amr": []string{"otp"}}},
		{name: "malformed auth_time ignored", extra: map[string]any{"auth_time": "yesterday", "amr": []string{"mfa"}}},
		{
			name:  "scope-limited issuer: permissions claim ignored",
			cfg:   func(c *Config) { c.ScopeLimited = true },
			extra: map[string]any{"roles": []string{"viewer"}, "permissions": []string{"tools:call:*"}},
			roles: []string{"viewer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAuthenticator(t, clock, tt.cfg)
			c := claimsAt(now)
			for name, v := range tt.extra {
				c[name] = v
			}
			p, err := a.Authenticate(context.Background(), bearer(sign(t, jose.HS256, k.hmac, "hs", c)))
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			check := func(field string, got, want []string) {
				if len(got) != 0 || len(want) != 0 {
					if !slices.Equal(got, want) {
						t.Errorf("%s = %q, want %q", field, got, want)
					}
				}
			}
			check("Roles", p.Roles, tt.roles)
			check("Scopes", p.Scopes, tt.scopes)
			check("Permissions", p.Permissions, tt.perms)
			check("Groups", p.Groups, tt.groups)
			unix := func(t time.Time) int64 {
				if t.IsZero() {
					return 0
				}
				return t.Unix()
			}
			if unix(p.AuthTime) != tt.auth || unix(p.MFATime) != tt.mfa {
				t.Errorf("AuthTime, MFATime = %v, %v; want unix %d, %d", p.AuthTime, p.MFATime, tt.auth, tt.mfa)
			}
			if p.ClientID != tt.client {
				t.Errorf("ClientID = %q, want %q", p.ClientID, tt.client)
			}
			var probe Config
			if tt.cfg != nil {
				tt.cfg(&probe)
			}
			if p.ScopeLimited != probe.ScopeLimited || p.Method != cmp.Or(probe.Method, guard.MethodJWT) {
				t.Errorf("ScopeLimited = %v, Method = %q", p.ScopeLimited, p.Method)
			}
		})
	}
}

func TestSingleKeyWithoutID(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	a := newTestAuthenticator(t, clock, func(c *Config) {
		c.Keys = []Key{{Algorithm: "ES256", Key: &k.ec.PublicKey}}
	})
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"no kid", sign(t, jose.ES256, k.ec, "", claimsAt(clock.Now())), true},
		{"any kid", sign(t, jose.ES256, k.ec, "whatever", claimsAt(clock.Now())), true},
		{"other alg", sign(t, jose.EdDSA, k.ed, "", claimsAt(clock.Now())), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Authenticate(context.Background(), bearer(tt.tok))
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// SetKeys swaps the static keys: a token of a withdrawn key is refused, a
// token of an added key accepted, and no new algorithm can be introduced.
func TestSetKeys(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	a := newTestAuthenticator(t, clock, func(c *Config) {
		c.Keys = []Key{{ID: "old", Algorithm: "ES256", Key: &k.ec.PublicKey}}
		c.CacheSize = -1
	})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oldTok := sign(t, jose.ES256, k.ec, "old", claimsAt(clock.Now()))
	newTok := sign(t, jose.ES256, other, "new", claimsAt(clock.Now()))
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, bearer(newTok)); err == nil {
		t.Fatal("a token of an unknown key was accepted")
	}
	if err := a.SetKeys([]Key{{ID: "old", Algorithm: "ES256", Key: &k.ec.PublicKey}, {ID: "new", Algorithm: "ES256", Key: &other.PublicKey}}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{oldTok, newTok} {
		if _, err := a.Authenticate(ctx, bearer(tok)); err != nil {
			t.Fatalf("after adding a key: %v", err)
		}
	}
	if err := a.SetKeys([]Key{{ID: "new", Algorithm: "ES256", Key: &other.PublicKey}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, bearer(oldTok)); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("a token of a withdrawn key: %v", err)
	}
	if err := a.SetKeys([]Key{{ID: "h", Algorithm: "HS256", Key: k.hmac}}); err == nil {
		t.Fatal("SetKeys introduced HS256 to an ES256 authenticator")
	}
}

// With RequiredType, a token of another type from the same issuer and key
// (an ID token, say) is refused.
func TestRequiredType(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	a := newTestAuthenticator(t, clock, func(c *Config) { c.RequiredType = "at+jwt" })
	ctx := context.Background()
	signTyp := func(typ string) string {
		opts := (&jose.SignerOptions{}).WithHeader("kid", "hs")
		if typ != "" {
			opts = opts.WithType(jose.ContentType(typ))
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: k.hmac}, opts)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := josejwt.Signed(signer).Claims(claimsAt(clock.Now())).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for typ, ok := range map[string]bool{"at+jwt": true, "application/at+JWT": true, "JWT": false, "": false} {
		_, err := a.Authenticate(ctx, bearer(signTyp(typ)))
		if (err == nil) != ok {
			t.Errorf("typ %q: err = %v", typ, err)
		}
	}
}
