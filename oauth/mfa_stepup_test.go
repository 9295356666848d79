package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/oauth"
)

// claimsOf decodes an access token's payload (its signature is checked by
// the other tests).
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMFAStepUpScope checks the "mfa" scope: asking for it makes a
// signed-in person pass their second factor again, and the token then
// carries the time of that second factor.
func TestMFAStepUpScope(t *testing.T) {
	e := newEnv(t, nil)
	client := e.register()
	b := newBrowser(t)

	first := e.tokens(client, "mfa", nil)
	c := claimsOf(t, first["access_token"].(string))
	if c["mfa_time"] != float64(e.clock().Unix()) || strings.Contains(c["scope"].(string), oauth.ScopeMFA) {
		t.Fatalf("first token: mfa_time=%v scope=%v", c["mfa_time"], c["scope"])
	}
	// Sign in once in this browser, so that its session is remembered (a
	// TOTP code is accepted once: the next one is for the next step).
	e.advance(31 * time.Second)
	e.signIn(b, client, "mfa", nil)

	e.advance(10 * time.Minute)
	// Without the mfa scope the session is enough: no page at all.
	if p := b.get(e.authURL(client, nil)); p.status != 303 {
		t.Fatalf("a signed-in person was asked for something: %d\n%s", p.status, p.body)
	}
	// With it, the second factor is asked for again.
	step := map[string]string{"scope": "mcp:read mcp:tools mfa"}
	p := b.get(e.authURL(client, step))
	if !p.is("mfa") {
		t.Fatalf("step-up did not ask for the second factor: %d %q\n%s", p.status, p.location, p.body)
	}
	code, _ := totp.GenerateCode(e.mfaKey, e.clock())
	p = b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {p.csrf(t)}, "code": {code}})
	if p.is("consent") {
		if !strings.Contains(p.body, "second factor") {
			t.Errorf("the consent page does not explain the mfa scope:\n%s", p.body)
		}
		p = b.post(e.url("/oauth/consent"), url.Values{"csrf_token": {p.csrf(t)}, "decision": {"allow"}})
	}
	q := e.callback(p, step)
	status, tok := e.exchange(client, q.Get("code"), nil)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	c = claimsOf(t, tok["access_token"].(string))
	if c["mfa_time"] != float64(e.clock().Unix()) || !slices.Contains(strings.Fields(c["scope"].(string)), oauth.ScopeMFA) {
		t.Fatalf("stepped-up token: mfa_time=%v (want %d) scope=%v", c["mfa_time"], e.clock().Unix(), c["scope"])
	}

	// A person without a second factor is not granted the scope.
	tok = e.tokens(client, "ann", step)
	if c := claimsOf(t, tok["access_token"].(string)); strings.Contains(c["scope"].(string), oauth.ScopeMFA) || c["mfa_time"] != nil {
		t.Fatalf("ann has no second factor but got scope %v, mfa_time %v", c["scope"], c["mfa_time"])
	}
}

func TestMFAScopeIsReserved(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.cfg
	cfg.Scopes = append(slices.Clone(cfg.Scopes), oauth.Scope{Name: oauth.ScopeMFA, Role: "admin"})
	if _, err := oauth.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("err = %v", err)
	}
}
