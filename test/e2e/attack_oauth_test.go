package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestOAuthAttacks runs attacks on the authorization server of a served
// mcpguard: each is refused with the right status and error, audited,
// and leaves nothing usable behind.
func TestOAuthAttacks(t *testing.T) {
	s := oauthServer(t, nil)
	base := strings.TrimSuffix(s.url, "/mcp")
	const redirect = "http://127.0.0.1:9/callback"
	resp, err := http.Post(base+"/oauth/register", "application/json", strings.NewReader(`{"client_name":"attack test","redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	verifier := strings.Repeat("v", 60)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	newBrowser := func() *oauthBrowser {
		jar, _ := cookiejar.New(nil)
		return &oauthBrowser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	}
	authURL := func(override map[string]string) string {
		q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"st"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "resource": {s.url}, "scope": {"mcp:read mcp:tools"}}
		for k, v := range override {
			if v == "" {
				q.Del(k)
			} else {
				q.Set(k, v)
			}
		}
		return base + "/oauth/authorize?" + q.Encode()
	}
	// signIn returns the code of a completed sign-in and consent.
	signIn := func() string {
		t.Helper()
		b := newBrowser()
		p := b.submit(b.get(authURL(nil)), "/oauth/login", url.Values{"username": {oauthUser}, "password": {oauthPassword}})
		if strings.Contains(p.body, `action="/oauth/consent"`) {
			p = b.submit(p, "/oauth/consent", url.Values{"decision": {"allow"}})
		}
		loc, _ := url.Parse(p.location)
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("no code: %d %q", p.status, p.location)
		}
		return loc.Query().Get("code")
	}
	token := func(form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := http.PostForm(base+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	exchange := func(code, verifier, redirectURI string) (int, map[string]any) {
		return token(url.Values{"grant_type": {"authorization_code"}, "client_id": {reg.ClientID}, "code": {code},
			"code_verifier": {verifier}, "redirect_uri": {redirectURI}, "resource": {s.url}})
	}
	denied := func(method, reason string) {
		t.Helper()
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			got, _ := r["reason"].(string)
			return r["method"] == method && (r["decision"] == "DENIED" || r["decision"] == "AUTH_FAILED") && strings.Contains(strings.ToLower(got), reason)
		})
	}
	mcpStatus := func(accessToken string) int {
		return post(t, s.url, http.Header{"Authorization": {"Bearer " + accessToken}}, initBody).StatusCode
	}

	t.Run("authorization code replay", func(t *testing.T) {
		code := signIn()
		status, tok := exchange(code, verifier, redirect)
		if status != 200 {
			t.Fatalf("first redemption: %d %v", status, tok)
		}
		first, _ := tok["access_token"].(string)
		if mcpStatus(first) != 200 {
			t.Fatal("the first token does not work")
		}
		if status, body := exchange(code, verifier, redirect); status != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("replayed code: %d %v", status, body)
		}
		denied("oauth/token", "code")
		deadline := time.Now().Add(3 * time.Second) // revocations are seen within auth.revocation_recheck (1 s)
		for mcpStatus(first) != 401 {
			if time.Now().After(deadline) {
				t.Fatal("the token of a replayed code still works after 3 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("code interception without the verifier", func(t *testing.T) {
		code := signIn()
		if status, body := exchange(code, strings.Repeat("w", 60), redirect); status != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("wrong verifier: %d %v", status, body)
		}
		if status, body := exchange(code, "", redirect); status != 400 {
			t.Fatalf("no verifier: %d %v", status, body)
		}
		denied("oauth/token", "verifier")
	})

	t.Run("redirect URI changed at the token endpoint", func(t *testing.T) {
		code := signIn()
		if status, body := exchange(code, verifier, "http://127.0.0.1:9/other"); status != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("other redirect_uri: %d %v", status, body)
		}
	})

	t.Run("PKCE downgrade", func(t *testing.T) {
		b := newBrowser()
		for name, override := range map[string]map[string]string{
			"plain":        {"code_challenge_method": "plain", "code_challenge": verifier},
			"no challenge": {"code_challenge": "", "code_challenge_method": ""},
		} {
			// Refused: an error page, or the client told invalid_request;
			// never a sign-in that could end in a code.
			p := b.get(authURL(override))
			loc, _ := url.Parse(p.location)
			refusedHere := p.status == http.StatusBadRequest && p.location == ""
			toldClient := p.status == http.StatusSeeOther && loc != nil && loc.Query().Get("error") == "invalid_request" && loc.Query().Get("code") == ""
			if !refusedHere && !toldClient || strings.Contains(p.body, `action="/oauth/login"`) {
				t.Errorf("%s: %d %q", name, p.status, p.location)
			}
		}
		denied("oauth/authorize", "pkce")
	})

	t.Run("unregistered redirect URI: no redirect at all", func(t *testing.T) {
		b := newBrowser()
		for _, evil := range []string{"https://evil.example/cb", "http://127.0.0.1:9/callback/../evil", "http://127.0.0.1:9/callback?x=1"} {
			p := b.get(authURL(map[string]string{"redirect_uri": evil}))
			if p.status != http.StatusBadRequest || p.location != "" {
				t.Errorf("%s: %d, Location %q", evil, p.status, p.location)
			}
		}
		denied("oauth/authorize", "redirect")
	})

	t.Run("consent without its CSRF token, or from another site", func(t *testing.T) {
		b := newBrowser()
		p := b.submit(b.get(authURL(map[string]string{"prompt": "consent"})), "/oauth/login", url.Values{"username": {oauthUser}, "password": {oauthPassword}})
		if !strings.Contains(p.body, `action="/oauth/consent"`) {
			t.Fatalf("no consent page: %d", p.status)
		}
		req, _ := http.NewRequest("POST", base+"/oauth/consent", strings.NewReader(url.Values{"decision": {"allow"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r := b.do(req); r.status != http.StatusForbidden || r.location != "" {
			t.Fatalf("consent without CSRF token: %d %q", r.status, r.location)
		}
		denied("oauth/consent", "csrf")
		req, _ = http.NewRequest("POST", base+"/oauth/consent", strings.NewReader(url.Values{"decision": {"allow"}, "csrf_token": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		if r := b.do(req); r.status != http.StatusForbidden || r.location != "" {
			t.Fatalf("cross-origin consent: %d %q", r.status, r.location)
		}
		denied("oauth/consent", "cross-origin")
	})

	t.Run("refresh token replay revokes the family", func(t *testing.T) {
		status, tok := exchange(signIn(), verifier, redirect)
		if status != 200 {
			t.Fatalf("exchange: %d %v", status, tok)
		}
		refresh := func(rt string) (int, map[string]any) {
			return token(url.Values{"grant_type": {"refresh_token"}, "client_id": {reg.ClientID}, "refresh_token": {rt}})
		}
		old, _ := tok["refresh_token"].(string)
		status, rotated := refresh(old)
		if status != 200 {
			t.Fatalf("first refresh: %d %v", status, rotated)
		}
		if status, body := refresh(old); status != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("replayed refresh token: %d %v", status, body)
		}
		denied("oauth/token", "reuse")
		newer, _ := rotated["refresh_token"].(string)
		if status, body := refresh(newer); status != 400 {
			t.Fatalf("the family's newest refresh token still works after a replay: %d %v", status, body)
		}
	})
}

// TestCIMDRefusesInternalAddresses checks the SSRF defence of client
// metadata documents: a client_id URL naming a loopback, private or
// link-local address is refused without being fetched.
func TestCIMDRefusesInternalAddresses(t *testing.T) {
	var hits atomic.Int32
	internal := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer internal.Close()
	s := start(t, "", nil, "--demo")
	base := strings.TrimSuffix(s.url, "/mcp")
	for _, clientID := range []string{internal.URL + "/client.json", "https://169.254.169.254/latest/meta-data", "https://10.0.0.1/c.json", "https://[::1]/c.json"} {
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "state": {"s"},
			"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}, "resource": {s.url}}
		c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(base + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d %q", clientID, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal address was fetched %d times", n)
	}
	waitAudit(t, s.auditLg, func(r map[string]any) bool {
		target, _ := r["target"].(string)
		return r["method"] == "oauth/authorize" && r["decision"] == "DENIED" && strings.Contains(target, "169.254.169.254")
	})
}
