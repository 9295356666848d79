package introspect_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/introspect"
	"github.com/mcpguard/mcpguard/guard"
)

const token = "opaque-secret-token-value"

// idp is a fake identity provider's introspection endpoint.
type idp struct {
	calls  atomic.Int32
	answer func(token string) (int, any)
}

func (i *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.calls.Add(1)
	// RFC 6749 §2.3.1: the client id and secret are form-urlencoded
	// before Basic encoding.
	user, pass, ok := r.BasicAuth()
	user, _ = url.QueryUnescape(user)
	pass, _ = url.QueryUnescape(pass)
	if !ok || user != "mcpguard" || pass != "client secret" || r.Method != http.MethodPost || r.FormValue("token_type_hint") != "access_token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	status, body := i.answer(r.FormValue("token"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if s, ok := body.(string); ok {
		w.Write([]byte(s))
		return
	}
	json.NewEncoder(w).Encode(body)
}

func setup(t *testing.T, answer func(string) (int, any), now *time.Time) (*introspect.Authenticator, *idp) {
	t.Helper()
	p := &idp{answer: answer}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	a, err := introspect.New(introspect.Config{
		URL: ts.URL, ClientID: "mcpguard", ClientSecret: []byte("client secret"),
		Issuer: "https://sso.example", Audiences: []string{"https://mcp.example/mcp"},
		Now: func() time.Time { return *now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, p
}

func active(now time.Time, extra map[string]any) map[string]any {
	m := map[string]any{"active": true, "sub": "alice", "exp": now.Add(time.Hour).Unix(), "iss": "https://sso.example",
		"aud": []string{"https://mcp.example/mcp"}, "client_id": "cli", "roles": []string{"developer"}, "scope": "mcp:read mcp:tools"}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func TestActiveTokenAndCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, p := setup(t, func(tok string) (int, any) {
		if tok != token {
			return 200, map[string]any{"active": false}
		}
		return 200, active(now, nil)
	}, &now)
	ctx := context.Background()
	pr, err := a.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: token})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Subject != "alice" || pr.Issuer != "https://sso.example" || pr.Method != introspect.Method || pr.ClientID != "cli" ||
		!slices.Equal(pr.Roles, []string{"developer"}) || !slices.Equal(pr.Scopes, []string{"mcp:read", "mcp:tools"}) {
		t.Fatalf("principal = %+v", pr)
	}
	a.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: token})
	if p.calls.Load() != 1 {
		t.Fatalf("%d calls within the cache TTL, want 1", p.calls.Load())
	}
	now = now.Add(31 * time.Second)
	a.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: token})
	if p.calls.Load() != 2 {
		t.Fatalf("%d calls after the cache TTL, want 2", p.calls.Load())
	}
	// Inactive answers are not cached.
	for range 2 {
		if _, err := a.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: "other"}); !errors.Is(err, guard.ErrInvalidCredentials) {
			t.Fatalf("inactive: %v", err)
		}
	}
	if p.calls.Load() != 4 {
		t.Fatalf("inactive answers were cached: %d calls", p.calls.Load())
	}
}

func TestRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for name, extra := range map[string]map[string]any{
		"inactive":       {"active": false},
		"wrong audience": {"aud": "https://other.example/mcp"},
		"no audience":    {"aud": nil},
		"wrong issuer":   {"iss": "https://evil.example"},
		"expired":        {"exp": now.Add(-time.Second).Unix()},
		"no exp":         {"exp": nil},
		"no sub":         {"sub": nil},
		"not yet valid":  {"nbf": now.Add(time.Minute).Unix()},
	} {
		a, _ := setup(t, func(string) (int, any) { return 200, active(now, extra) }, &now)
		_, err := a.Authenticate(context.Background(), guard.Credential{Kind: guard.Bearer, Secret: token})
		if !errors.Is(err, guard.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// Failures of the endpoint are internal errors (fail closed, not counted as
// bad credentials), and never contain the token.
func TestEndpointFailures(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for name, answer := range map[string]func(string) (int, any){
		"500":       func(string) (int, any) { return 500, "oops" },
		"malformed": func(string) (int, any) { return 200, "{not json" },
		"oversized": func(string) (int, any) { return 200, `{"active":true,"x":"` + strings.Repeat("a", 70<<10) + `"}` },
	} {
		a, _ := setup(t, answer, &now)
		_, err := a.Authenticate(context.Background(), guard.Credential{Kind: guard.Bearer, Secret: token})
		if err == nil || errors.Is(err, guard.ErrInvalidCredentials) || strings.Contains(err.Error(), token) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestConfigChecks(t *testing.T) {
	for name, cfg := range map[string]introspect.Config{
		"http remote":  {URL: "http://sso.example/introspect", ClientID: "c", Issuer: "i", Audiences: []string{"a"}},
		"no client":    {URL: "https://sso.example/introspect", Issuer: "i", Audiences: []string{"a"}},
		"no audiences": {URL: "https://sso.example/introspect", ClientID: "c", Issuer: "i"},
	} {
		if _, err := introspect.New(cfg); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func BenchmarkCacheHit(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	p := &idp{answer: func(string) (int, any) { return 200, active(now, nil) }}
	ts := httptest.NewServer(p)
	defer ts.Close()
	a, _ := introspect.New(introspect.Config{URL: ts.URL, ClientID: "mcpguard", ClientSecret: []byte("client secret"),
		Issuer: "https://sso.example", Audiences: []string{"https://mcp.example/mcp"}, Now: func() time.Time { return now }})
	ctx := context.Background()
	cred := guard.Credential{Kind: guard.Bearer, Secret: token}
	a.Authenticate(ctx, cred)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}
