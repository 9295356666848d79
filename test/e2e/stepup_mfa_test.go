package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// oauthBrowser follows mcpguard's sign-in pages as a person's browser
// does: a cookie jar, redirects not followed, forms posted same-origin.
type oauthBrowser struct {
	t    *testing.T
	base string
	c    *http.Client
}

type oauthPage struct {
	status   int
	body     string
	location string
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *oauthBrowser) do(req *http.Request) oauthPage {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return oauthPage{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location")}
}

func (b *oauthBrowser) get(u string) oauthPage {
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

// submit posts the page's form (its CSRF token plus fields) to path.
func (b *oauthBrowser) submit(p oauthPage, path string, fields url.Values) oauthPage {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no form to submit to %s (status %d):\n%s", path, p.status, p.body)
	}
	fields.Set("csrf_token", html.UnescapeString(m[1]))
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	return b.do(req)
}

// TestMFAStepUpPolicy runs the whole step-up: a Cedar policy asks for a
// second factor at most 5 s old for delete_users; an OAuth token whose
// second factor is older gets HTTP 403 insufficient_scope asking for the
// "mfa" scope (not a bare denial), and re-authorizing with it, which asks
// for the second factor again, gives a token that may call.
func TestMFAStepUpPolicy(t *testing.T) {
	var secret, backup string // the user's TOTP secret and one backup code
	s := func() *server {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o700); err != nil {
			t.Fatal(err)
		}
		policy := `@id("delete-needs-fresh-mfa") @step_up_mfa("5")
forbid(principal, action == Action::"tools/call", resource == Tool::"delete_users") unless { principal.mfa_age <= 5 };`
		if err := os.WriteFile(filepath.Join(dir, "policies", "mfa.cedar"), []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), []byte("audit:\n  log: ./mcpguard-audit.log\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runInput(t, dir, nil, oauthPassword+"\n", "--config", "cfg.yaml", "users", "add", oauthUser, "--role", "admin", "--password-stdin"); err != nil {
			t.Fatalf("users add: %v\n%s", err, out)
		}
		out, err := run(t, dir, nil, "--config", "cfg.yaml", "users", "mfa", "enroll", oauthUser)
		if err != nil {
			t.Fatalf("mfa enroll: %v\n%s", err, out)
		}
		secret = regexp.MustCompile(`secret=([A-Z2-7]+)`).FindStringSubmatch(out)[1]
		backup = regexp.MustCompile(`(?m)^\s+([a-z0-9-]{8,})\s*$`).FindAllStringSubmatch(out, -1)[0][1]
		return start(t, dir, nil, "--demo", "--config", "cfg.yaml")
	}()
	base := strings.TrimSuffix(s.url, "/mcp")
	jar, _ := cookiejar.New(nil)
	b := &oauthBrowser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	// Register a client (DCR).
	const redirect = "http://127.0.0.1:9/callback"
	reg := struct{ ClientID string }{registerPublicClient(t, http.DefaultClient, base, "step-up test", redirect)}

	verifier := strings.Repeat("x", 50)
	sum := sha256.Sum256([]byte(verifier))
	authorize := func(scope string, second func(oauthPage) oauthPage) string {
		t.Helper()
		q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"s1"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
			"resource": {s.url}, "scope": {scope}}
		p := b.get(base + "/oauth/authorize?" + q.Encode())
		if strings.Contains(p.body, `action="/oauth/login"`) {
			p = b.submit(p, "/oauth/login", url.Values{"username": {oauthUser}, "password": {oauthPassword}})
		}
		if !strings.Contains(p.body, `action="/oauth/mfa"`) {
			t.Fatalf("scope %q: the second factor was not asked for (%d %q):\n%s", scope, p.status, p.location, p.body)
		}
		p = second(p)
		if strings.Contains(p.body, `action="/oauth/consent"`) {
			p = b.submit(p, "/oauth/consent", url.Values{"decision": {"allow"}})
		}
		loc, err := url.Parse(p.location)
		if p.status != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("no code: %d %q\n%s", p.status, p.location, p.body)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {reg.ClientID}, "code": {loc.Query().Get("code")},
			"code_verifier": {verifier}, "redirect_uri": {redirect}, "resource": {s.url}}
		resp, err := http.PostForm(base+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		if tok.AccessToken == "" {
			t.Fatalf("token endpoint: %d", resp.StatusCode)
		}
		return tok.AccessToken
	}
	totpStep := func(p oauthPage) oauthPage {
		code, err := totp.GenerateCode(secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return b.submit(p, "/oauth/mfa", url.Values{"code": {code}})
	}
	callDelete := func(token string) *http.Response {
		h := http.Header{"Authorization": {"Bearer " + token}}
		init := post(t, s.url, h, initBody)
		h.Set("Mcp-Session-Id", init.Header.Get("Mcp-Session-Id"))
		h.Set("Mcp-Protocol-Version", "2025-06-18")
		post(t, s.url, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		return post(t, s.url, h, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_users","arguments":{"ids":[999]}}}`)
	}

	token := authorize("mcp:read mcp:tools mcp:admin", totpStep)
	time.Sleep(6 * time.Second) // the second factor is now older than the policy allows
	r := callDelete(token)
	challenge := r.Header.Get("WWW-Authenticate")
	if r.StatusCode != http.StatusForbidden || !strings.Contains(challenge, `error="insufficient_scope"`) ||
		!strings.Contains(challenge, `scope="mcp:read mcp:tools mcp:admin mfa"`) {
		t.Fatalf("stale second factor: status %d, WWW-Authenticate %q", r.StatusCode, challenge)
	}
	waitAudit(t, s.auditLg, func(r map[string]any) bool {
		reason, _ := r["reason"].(string)
		p, _ := r["policies"].([]any)
		return r["decision"] == "DENIED" && r["target"] == "delete_users" && strings.Contains(reason, "step-up") && len(p) == 1 && p[0] == "delete-needs-fresh-mfa"
	})

	// Re-authorize with the challenged scope: the browser's session is
	// still signed in, but the second factor is asked for again (a backup
	// code this time, since a TOTP code is accepted only once).
	scope := regexp.MustCompile(`scope="([^"]+)"`).FindStringSubmatch(challenge)[1]
	token = authorize(scope, func(p oauthPage) oauthPage { return b.submit(p, "/oauth/mfa", url.Values{"code": {backup}}) })
	if r := callDelete(token); r.StatusCode != http.StatusOK {
		t.Fatalf("after step-up: status %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	waitAudit(t, s.auditLg, func(r map[string]any) bool {
		return r["decision"] == "ALLOWED" && r["target"] == "delete_users" && r["user"] == oauthUser
	})
}
