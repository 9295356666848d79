package introspect_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/introspect"
	"github.com/mcpguard/mcpguard/guard"
)

const (
	token = "opaque-SECRET-token-0123456789"
	// The client credentials hold characters that RFC 6749 §2.3.1's
	// form-urlencoding changes, so that a client skipping it is caught.
	clientID     = "mcp guard:1"
	clientSecret = "s3cr:t+/&é"
	issuer       = "https://sso.example"
	resource     = "https://mcp.example/mcp"
)

var epoch = time.Unix(1_800_000_000, 0)

// idp is a fake identity provider's introspection endpoint. It checks
// every request as a real provider would and answers with answer's
// status and body (a string is sent as is, anything else as JSON).
type idp struct {
	t      testing.TB
	calls  atomic.Int32
	answer func(token string) (status int, body any)
}

func (i *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.calls.Add(1)
	user, pass, ok := r.BasicAuth()
	// RFC 6749 §2.3.1: the client id and secret are form-urlencoded
	// before Basic encoding.
	user, err1 := url.QueryUnescape(user)
	pass, err2 := url.QueryUnescape(pass)
	if !ok || err1 != nil || err2 != nil || user != clientID || pass != clientSecret {
		i.t.Errorf("client authentication: Basic %q:%q", user, pass)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		i.t.Errorf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil || len(r.URL.Query()) != 0 {
		i.t.Errorf("form %v, query %q: the token must travel in the body", err, r.URL.RawQuery)
	}
	if r.PostForm.Get("token_type_hint") != "access_token" || len(r.PostForm["token"]) != 1 {
		i.t.Errorf("form %v", r.PostForm)
	}
	status, body := i.answer(r.PostForm.Get("token"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if s, ok := body.(string); ok {
		io.WriteString(w, s)
		return
	}
	json.NewEncoder(w).Encode(body)
}

// setup starts a fake provider answering with answer and returns an
// Authenticator for it whose clock reads *now. cfg, if given, is adjusted.
func setup(t testing.TB, answer func(string) (int, any), now *time.Time, adjust ...func(*introspect.Config)) (*introspect.Authenticator, *idp) {
	t.Helper()
	p := &idp{t: t, answer: answer}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	cfg := introspect.Config{
		URL: ts.URL, ClientID: clientID, ClientSecret: []byte(clientSecret),
		Issuer: issuer, Audiences: []string{"https://other.example", resource},
		Now: func() time.Time { return *now },
	}
	for _, f := range adjust {
		f(&cfg)
	}
	a, err := introspect.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, p
}

// active is an active answer for token, changed by extra: a nil value
// removes a member.
func active(now time.Time, extra map[string]any) map[string]any {
	m := map[string]any{
		"active": true, "sub": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"iss": issuer, "aud": []string{resource}, "client_id": "cli",
		"roles": []string{"developer", "auditor"}, "scope": "mcp:read mcp:tools", "token_type": "Bearer",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// only answers active(extra) for token and inactive for anything else.
func only(now *time.Time, extra map[string]any) func(string) (int, any) {
	return func(tok string) (int, any) {
		if tok != token {
			return 200, map[string]any{"active": false}
		}
		return 200, active(*now, extra)
	}
}

func bearer(s string) guard.Credential { return guard.Credential{Kind: guard.Bearer, Secret: s} }

func TestActiveToken(t *testing.T) {
	now := epoch
	a, _ := setup(t, only(&now, nil), &now)
	p, err := a.Authenticate(context.Background(), bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	want := guard.Principal{
		Subject: "alice", Issuer: issuer, Method: introspect.Method, ClientID: "cli",
		Roles: []string{"developer", "auditor"}, Scopes: []string{"mcp:read", "mcp:tools"},
		ExpiresAt: now.Add(time.Hour),
	}
	if p.Subject != want.Subject || p.Issuer != want.Issuer || p.Method != want.Method || p.ClientID != want.ClientID ||
		!slices.Equal(p.Roles, want.Roles) || !slices.Equal(p.Scopes, want.Scopes) || !p.ExpiresAt.Equal(want.ExpiresAt) ||
		p.KeyID != "" || p.TokenID != "" || p.Permissions != nil || p.ScopeLimited {
		t.Fatalf("principal\n%+v\nwant\n%+v", *p, want)
	}
	if introspect.Method != "introspection" || p.ID() != "introspection:https%3A%2F%2Fsso.example:alice" {
		t.Fatalf("ID %q", p.ID())
	}
}

// Claims come in more than one shape, and under configurable names.
func TestClaimShapes(t *testing.T) {
	now := epoch
	defRoles, defScopes := []string{"developer", "auditor"}, []string{"mcp:read", "mcp:tools"}
	for name, tc := range map[string]struct {
		extra         map[string]any
		adjust        func(*introspect.Config)
		roles, scopes []string
		clientID      string
		expiry        time.Time
	}{
		"roles as a string":  {extra: map[string]any{"roles": " a  b "}, roles: []string{"a", "b"}, scopes: defScopes},
		"scope as an array":  {extra: map[string]any{"scope": []any{"x", 7, "", nil, "y"}}, roles: defRoles, scopes: []string{"x", "y"}},
		"roles as a number":  {extra: map[string]any{"roles": 3}, scopes: defScopes},
		"no roles, no scope": {extra: map[string]any{"roles": nil, "scope": nil}},
		"aud as a string":    {extra: map[string]any{"aud": resource}, roles: defRoles, scopes: defScopes},
		"aud among others":   {extra: map[string]any{"aud": []string{"https://a.example", resource}}, roles: defRoles, scopes: defScopes},
		"no iss":             {extra: map[string]any{"iss": nil}, roles: defRoles, scopes: defScopes},
		"no client_id":       {extra: map[string]any{"client_id": nil}, roles: defRoles, scopes: defScopes, clientID: "-"},
		"past nbf":           {extra: map[string]any{"nbf": now.Add(-time.Minute).Unix()}, roles: defRoles, scopes: defScopes},
		"fractional exp": {
			extra: map[string]any{"exp": float64(now.Add(time.Hour).Unix()) + 0.5}, roles: defRoles, scopes: defScopes,
			expiry: now.Add(time.Hour + time.Second/2),
		},
		"custom claim names": {
			extra:  map[string]any{"groups": []string{"g1"}, "scp": []string{"s1"}},
			adjust: func(c *introspect.Config) { c.RolesClaim, c.ScopeClaim = "groups", "scp" },
			roles:  []string{"g1"}, scopes: []string{"s1"},
		},
	} {
		adjust := tc.adjust
		if adjust == nil {
			adjust = func(*introspect.Config) {}
		}
		a, _ := setup(t, only(&now, tc.extra), &now, adjust)
		p, err := a.Authenticate(context.Background(), bearer(token))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !slices.Equal(p.Roles, tc.roles) || !slices.Equal(p.Scopes, tc.scopes) {
			t.Errorf("%s: roles %q scopes %q, want %q %q", name, p.Roles, p.Scopes, tc.roles, tc.scopes)
		}
		if wantClient := map[bool]string{true: "", false: "cli"}[tc.clientID == "-"]; p.ClientID != wantClient {
			t.Errorf("%s: client id %q, want %q", name, p.ClientID, wantClient)
		}
		if p.Issuer != issuer || p.Subject != "alice" {
			t.Errorf("%s: issuer %q subject %q", name, p.Issuer, p.Subject)
		}
		if !tc.expiry.IsZero() && !p.ExpiresAt.Equal(tc.expiry) {
			t.Errorf("%s: expiry %v, want %v", name, p.ExpiresAt, tc.expiry)
		}
		if cap(p.Roles) != len(p.Roles) || cap(p.Scopes) != len(p.Scopes) {
			t.Errorf("%s: roles or scopes have spare capacity: appending would write into the cached Principal", name)
		}
	}
}

// Refused tokens: errors that wrap ErrInvalidCredentials, say why, and
// never contain the token.
func TestRefusals(t *testing.T) {
	now := epoch
	for name, tc := range map[string]struct {
		extra  map[string]any
		reason string
	}{
		"inactive":           {map[string]any{"active": false}, "token is not active"},
		"inactive, only":     {map[string]any{"active": false, "sub": nil, "exp": nil, "aud": nil}, "token is not active"},
		"wrong audience":     {map[string]any{"aud": "https://other.example/mcp"}, "wrong audience"},
		"audience prefix":    {map[string]any{"aud": resource + "/x"}, "wrong audience"},
		"audiences, none":    {map[string]any{"aud": []string{"https://x.example", "https://y.example"}}, "wrong audience"},
		"refresh token":      {map[string]any{"token_type": "refresh_token"}, "refresh token"},
		"no audience":        {map[string]any{"aud": nil}, "no aud"},
		"empty audiences":    {map[string]any{"aud": []string{}}, "no aud"},
		"wrong issuer":       {map[string]any{"iss": "https://evil.example"}, "wrong issuer"},
		"empty issuer":       {map[string]any{"iss": ""}, "wrong issuer"},
		"expired":            {map[string]any{"exp": now.Add(-time.Second).Unix()}, "token expired"},
		"expiring right now": {map[string]any{"exp": now.Unix()}, "token expired"},
		"no exp":             {map[string]any{"exp": nil}, "no exp"},
		"null exp":           {map[string]any{"exp": json.RawMessage("null")}, "no exp"},
		"no sub":             {map[string]any{"sub": nil}, "no sub"},
		"empty sub":          {map[string]any{"sub": ""}, "no sub"},
		"not yet valid":      {map[string]any{"nbf": now.Add(time.Minute).Unix()}, "not yet valid"},
	} {
		a, p := setup(t, only(&now, tc.extra), &now)
		for range 2 {
			_, err := a.Authenticate(context.Background(), bearer(token))
			if !errors.Is(err, guard.ErrInvalidCredentials) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%s: err = %v, want a refusal saying %q", name, err, tc.reason)
			} else if strings.Contains(err.Error(), token) {
				t.Errorf("%s: error %q contains the token", name, err)
			}
		}
		if n := p.calls.Load(); n != 2 {
			t.Errorf("%s: %d calls for two attempts: a refusal was cached", name, n)
		}
	}
}

// Credentials refused without asking the provider.
func TestRefusedLocally(t *testing.T) {
	now := epoch
	a, p := setup(t, only(&now, nil), &now)
	for name, cred := range map[string]guard.Credential{
		"api key header": {Kind: guard.APIKeyHeader, Secret: token},
		"empty":          bearer(""),
		"too large":      bearer(strings.Repeat("t", 16<<10+1)),
	} {
		if _, err := a.Authenticate(context.Background(), cred); !errors.Is(err, guard.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if n := p.calls.Load(); n != 0 {
		t.Fatalf("the provider was asked %d times", n)
	}
	if _, err := a.Authenticate(context.Background(), bearer(strings.Repeat("t", 16<<10))); !errors.Is(err, guard.ErrInvalidCredentials) || p.calls.Load() != 1 {
		t.Fatalf("a 16 KiB token was not sent: %v", err)
	}
}

func TestCache(t *testing.T) {
	now := epoch
	a, p := setup(t, only(&now, nil), &now)
	ctx := context.Background()
	first, err := a.Authenticate(ctx, bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(29 * time.Second)
	again, err := a.Authenticate(ctx, bearer(token))
	if err != nil || again != first {
		t.Fatalf("within the TTL: %v, same principal %v", err, again == first)
	}
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d calls within the cache TTL, want 1", n)
	}
	now = now.Add(time.Second) // 30 s: the entry is stale
	if _, err := a.Authenticate(ctx, bearer(token)); err != nil {
		t.Fatal(err)
	}
	if n := p.calls.Load(); n != 2 {
		t.Fatalf("%d calls once the cache TTL passed, want 2", n)
	}
	// Another token is another entry.
	if _, err := a.Authenticate(ctx, bearer(token+"x")); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("another token: %v", err)
	}
	if n := p.calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

// A token expiring before the TTL is not served from the cache past its
// expiry.
func TestCacheBoundedByExpiry(t *testing.T) {
	now := epoch
	exp := now.Add(10 * time.Second)
	a, p := setup(t, only(&now, map[string]any{"exp": exp.Unix()}), &now,
		func(c *introspect.Config) { c.CacheTTL = time.Hour })
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, bearer(token)); err != nil {
		t.Fatal(err)
	}
	now = exp.Add(-time.Second)
	if _, err := a.Authenticate(ctx, bearer(token)); err != nil || p.calls.Load() != 1 {
		t.Fatalf("before expiry: %v, %d calls", err, p.calls.Load())
	}
	now = exp
	if _, err := a.Authenticate(ctx, bearer(token)); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("at expiry: %v", err)
	}
	if p.calls.Load() != 2 {
		t.Fatalf("at expiry the cache answered: %d calls", p.calls.Load())
	}
}

func TestCacheDisabled(t *testing.T) {
	now := epoch
	a, p := setup(t, only(&now, nil), &now, func(c *introspect.Config) { c.CacheSize = -1 })
	for range 3 {
		if _, err := a.Authenticate(context.Background(), bearer(token)); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.calls.Load(); n != 3 {
		t.Fatalf("%d calls with the cache disabled, want 3", n)
	}
}

// Failures of the endpoint are internal errors: they fail the request
// closed without counting as bad credentials, are never cached, and never
// contain the token.
func TestEndpointFailures(t *testing.T) {
	now := epoch
	valid := active(now, nil)
	with := func(k string, v any) string {
		m := map[string]any{}
		for kk, vv := range valid {
			m[kk] = vv
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return string(b)
	}
	for name, answer := range map[string]func(string) (int, any){
		"500 echoing the token": func(tok string) (int, any) { return 500, "no such token: " + tok },
		"401":                   func(string) (int, any) { return 401, `{"error":"invalid_client"}` },
		"redirect":              func(string) (int, any) { return 307, "" },
		"malformed":             func(string) (int, any) { return 200, "{not json" },
		"empty":                 func(string) (int, any) { return 200, "" },
		"null":                  func(string) (int, any) { return 200, "null" },
		"array":                 func(string) (int, any) { return 200, `[{"active":true}]` },
		"no active member":      func(string) (int, any) { return 200, `{"sub":"alice"}` },
		"active as a string":    func(string) (int, any) { return 200, `{"active":"true"}` },
		"sub as a number":       func(string) (int, any) { return 200, with("sub", 42) },
		"exp as a string":       func(string) (int, any) { return 200, with("exp", "1900000000") },
		"exp out of range":      func(string) (int, any) { return 200, with("exp", 1e300) },
		"negative exp":          func(string) (int, any) { return 200, with("exp", -1) },
		"aud as a number":       func(string) (int, any) { return 200, with("aud", 5) },
		"aud of numbers":        func(string) (int, any) { return 200, with("aud", []int{5}) },
		"oversized": func(string) (int, any) {
			return 200, `{"active":true,"x":"` + strings.Repeat("a", 64<<10) + `"}`
		},
		"trailing garbage": func(string) (int, any) { return 200, `{"active":true} {}` },
	} {
		a, p := setup(t, answer, &now)
		for range 2 {
			_, err := a.Authenticate(context.Background(), bearer(token))
			switch {
			case err == nil:
				t.Errorf("%s: accepted", name)
			case errors.Is(err, guard.ErrInvalidCredentials):
				t.Errorf("%s: %v counts as bad credentials", name, err)
			case strings.Contains(err.Error(), token):
				t.Errorf("%s: error %q contains the token", name, err)
			}
		}
		if n := p.calls.Load(); n != 2 {
			t.Errorf("%s: %d calls for two attempts: a failure was cached", name, n)
		}
	}
}

// An answer just under MaxResponseBytes is read.
func TestMaxResponseBytes(t *testing.T) {
	now := epoch
	body, _ := json.Marshal(active(now, nil))
	a, _ := setup(t, func(string) (int, any) { return 200, string(body) }, &now,
		func(c *introspect.Config) { c.MaxResponseBytes = int64(len(body)) })
	if _, err := a.Authenticate(context.Background(), bearer(token)); err != nil {
		t.Fatalf("answer of exactly MaxResponseBytes: %v", err)
	}
	a, _ = setup(t, func(string) (int, any) { return 200, string(body) }, &now,
		func(c *introspect.Config) { c.MaxResponseBytes = int64(len(body)) - 1 })
	if _, err := a.Authenticate(context.Background(), bearer(token)); err == nil || errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("answer of MaxResponseBytes+1: %v", err)
	}
}

// Redirects are not followed: the token goes to the configured URL only.
func TestNoRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Write([]byte(`{"active":true}`))
	}))
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	// Even with a caller's client that would follow them.
	for _, client := range []*http.Client{nil, {}} {
		a, err := introspect.New(introspect.Config{URL: redirector.URL, ClientID: "c", Issuer: issuer, Audiences: []string{resource}, HTTPClient: client})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(context.Background(), bearer(token)); err == nil || errors.Is(err, guard.ErrInvalidCredentials) {
			t.Fatalf("redirect: %v", err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the token was sent to the redirect's target %d times", n)
	}
}

// errTransport fails every request with an error quoting the request body,
// as a careless custom transport might.
type errTransport struct{}

func (errTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	return nil, fmt.Errorf("cannot send %s", body)
}

func TestTransportFailures(t *testing.T) {
	a, err := introspect.New(introspect.Config{
		URL: "https://sso.example/introspect", ClientID: "c", Issuer: issuer, Audiences: []string{resource},
		HTTPClient: &http.Client{Transport: errTransport{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(context.Background(), bearer(token))
	if err == nil || errors.Is(err, guard.ErrInvalidCredentials) || strings.Contains(err.Error(), token) {
		t.Fatalf("err = %v", err)
	}

	// An unreachable endpoint, and a canceled context.
	ts := httptest.NewServer(http.NotFoundHandler())
	ts.Close()
	a, err = introspect.New(introspect.Config{URL: ts.URL, ClientID: "c", Issuer: issuer, Audiences: []string{resource}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(context.Background(), bearer(token)); err == nil || errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("unreachable: %v", err)
	}
	now := epoch
	a, _ = setup(t, only(&now, nil), &now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Authenticate(ctx, bearer(token)); !errors.Is(err, context.Canceled) || errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestConfigChecks(t *testing.T) {
	ok := introspect.Config{URL: "https://sso.example/introspect", ClientID: "c", Issuer: issuer, Audiences: []string{resource}}
	for name, change := range map[string]func(*introspect.Config){
		"http remote":        func(c *introspect.Config) { c.URL = "http://sso.example/introspect" },
		"http loopback-ish":  func(c *introspect.Config) { c.URL = "http://localhost.evil.example/introspect" },
		"relative URL":       func(c *introspect.Config) { c.URL = "/introspect" },
		"no URL":             func(c *introspect.Config) { c.URL = "" },
		"other scheme":       func(c *introspect.Config) { c.URL = "ftp://sso.example/introspect" },
		"credentials in URL": func(c *introspect.Config) { c.URL = "https://c:s@sso.example/introspect" },
		"no client":          func(c *introspect.Config) { c.ClientID = "" },
		"no issuer":          func(c *introspect.Config) { c.Issuer = "" },
		"no audiences":       func(c *introspect.Config) { c.Audiences = nil },
		"empty audience":     func(c *introspect.Config) { c.Audiences = []string{resource, ""} },
		"negative TTL":       func(c *introspect.Config) { c.CacheTTL = -time.Second },
		"negative max":       func(c *introspect.Config) { c.MaxResponseBytes = -1 },
	} {
		cfg := ok
		change(&cfg)
		if _, err := introspect.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, u := range []string{"https://sso.example/introspect", "http://127.0.0.1:8080/introspect", "http://localhost/i", "http://[::1]:9/i"} {
		cfg := ok
		cfg.URL = u
		if _, err := introspect.New(cfg); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// Many goroutines authenticating several tokens at once (run with -race).
func TestConcurrent(t *testing.T) {
	now := epoch
	a, _ := setup(t, func(tok string) (int, any) { return 200, active(now, map[string]any{"sub": tok}) }, &now)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 50 {
				tok := fmt.Sprintf("token-%d", (i+j)%4)
				p, err := a.Authenticate(context.Background(), bearer(tok))
				if err != nil || p.Subject != tok {
					t.Errorf("%s: %v, %v", tok, p, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkCacheHit(b *testing.B) {
	now := epoch
	a, p := setup(b, only(&now, nil), &now)
	ctx := context.Background()
	cred := bearer(token)
	if _, err := a.Authenticate(ctx, cred); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
	if n := p.calls.Load(); n != 1 {
		b.Fatalf("%d calls: not cache hits", n)
	}
}
