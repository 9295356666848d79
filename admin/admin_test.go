package admin_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/admin"
	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

var base = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// memSink collects audit records.
type memSink struct {
	mu   sync.Mutex
	recs []guard.Record
	err  error
}

func (m *memSink) Record(_ context.Context, r *guard.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.recs = append(m.recs, *r)
	return nil
}

func (m *memSink) last() guard.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.recs) == 0 {
		return guard.Record{}
	}
	return m.recs[len(m.recs)-1]
}

type env struct {
	t         *testing.T
	st        *sqlite.Store
	clock     *clock
	opts      admin.Options
	h         http.Handler
	adminKey  string
	viewerKey string
	audit     *memSink
}

var sessionKey = bytes.Repeat([]byte{0x5a}, admin.SessionKeySize)

// seedRecords are the store's audit records, oldest first.
func seedRecords() []guard.Record {
	at := func(m int) time.Time { return base.Add(-time.Duration(m) * time.Minute) }
	return []guard.Record{
		{Time: at(50), Subject: "alice", Method: "tools/call", Target: "query", Decision: guard.Allowed, Reason: "tool query requires role viewer: held", ClientAddr: "10.0.0.5", Transport: "http"},
		{Time: at(40), Subject: "bob", Method: "tools/call", Target: "drop_table", Decision: guard.Denied, Reason: "tool drop_table requires role admin", ClientAddr: "10.0.0.7", Transport: "http"},
		{Time: at(30), Method: "tools/call", Target: "query", Decision: guard.AuthFailed, Reason: "api key: unknown key id 00000000000000ff", ClientAddr: "203.0.113.9", Transport: "http"},
		{Time: at(20), Subject: "bob", Method: "tools/call", Target: "query", Decision: guard.RateLimited, Reason: "rate limit exceeded (identity)", ClientAddr: "10.0.0.7", Transport: "http"},
		{Time: at(10), Subject: "alice", Method: "tools/list", Decision: guard.Allowed, ClientAddr: "10.0.0.5", Transport: "stdio"},
	}
}

func newEnv(t *testing.T, mutate func(*admin.Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AppendAudit(ctx, seedRecords()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, clock: &clock{t: base}, audit: &memSink{}}
	e.adminKey = e.createKey("root", []string{"admin"}, 0)
	e.viewerKey = e.createKey("vera", []string{"viewer"}, 0)
	e.opts = admin.Options{
		Store:         st,
		Authenticator: apikey.New(st, e.clock.Now),
		Now:           e.clock.Now,
		SessionKey:    sessionKey,
		Audit:         e.audit,
	}
	if mutate != nil {
		mutate(&e.opts)
	}
	h, err := admin.New(e.opts)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	e.h = h
	return e
}

func (e *env) createKey(name string, roles []string, ttl time.Duration) string {
	e.t.Helper()
	key, _, err := apikey.Create(context.Background(), e.st, apikey.CreateOptions{Name: name, Roles: roles, TTL: ttl, Now: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	return key
}

// request describes one request to the handler.
type request struct {
	method, path string
	form         url.Values
	cookies      []*http.Cookie
	header       map[string]string
}

func (e *env) do(req request) *http.Response {
	e.t.Helper()
	var body io.Reader
	if req.form != nil {
		body = strings.NewReader(req.form.Encode())
	}
	r := httptest.NewRequest(req.method, "http://example.com"+req.path, body)
	r.RemoteAddr = "192.0.2.10:51234"
	if req.form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	for _, c := range req.cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Result()
}

func bodyOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// loginForm fetches the sign-in form: its CSRF cookie and form token.
func (e *env) loginForm(cookieName string) (*http.Cookie, string) {
	e.t.Helper()
	resp := e.do(request{method: "GET", path: "/admin/login"})
	body := bodyOf(e.t, resp)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /admin/login = %d", resp.StatusCode)
	}
	c := cookieNamed(resp, cookieName)
	m := csrfField.FindStringSubmatch(body)
	if c == nil || m == nil {
		e.t.Fatalf("sign-in form without CSRF cookie %q or field", cookieName)
	}
	return c, m[1]
}

// postLogin submits credential through the sign-in form, as a same-origin
// browser would.
func (e *env) postLogin(credential string) *http.Response {
	e.t.Helper()
	c, token := e.loginForm("mcpguard_admin_csrf")
	return e.do(request{method: "POST", path: "/admin/login",
		form:    url.Values{"credential": {credential}, "csrf": {token}},
		cookies: []*http.Cookie{c},
		header:  map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}})
}

// signIn signs in with credential and returns the session cookie.
func (e *env) signIn(credential string) *http.Cookie {
	e.t.Helper()
	resp := e.postLogin(credential)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		e.t.Fatalf("sign-in = %d to %q, want 303 to /admin/: %s", resp.StatusCode, resp.Header.Get("Location"), bodyOf(e.t, resp))
	}
	c := cookieNamed(resp, "mcpguard_admin")
	if c == nil || c.Value == "" {
		e.t.Fatal("sign-in set no session cookie")
	}
	return c
}

func (e *env) dashboard(c *http.Cookie, query string) (*http.Response, string) {
	e.t.Helper()
	resp := e.do(request{method: "GET", path: "/admin/" + query, cookies: []*http.Cookie{c}})
	return resp, bodyOf(e.t, resp)
}

// section returns the HTML of the section with id.
func section(t *testing.T, body, id string) string {
	t.Helper()
	start := strings.Index(body, `<section class="card" id="`+id+`">`)
	if start < 0 {
		t.Fatalf("no section %q in page", id)
	}
	end := strings.Index(body[start:], "</section>")
	return body[start : start+end]
}

func TestNewValidatesOptions(t *testing.T) {
	e := newEnv(t, nil)
	for name, mutate := range map[string]func(*admin.Options){
		"no store":         func(o *admin.Options) { o.Store = nil },
		"no authenticator": func(o *admin.Options) { o.Authenticator = nil },
		"short key":        func(o *admin.Options) { o.SessionKey = make([]byte, 16) },
		"zero key":         func(o *admin.Options) { o.SessionKey = make([]byte, 32) },
		"long ttl":         func(o *admin.Options) { o.SessionTTL = 25 * time.Hour },
		"negative ttl":     func(o *admin.Options) { o.SessionTTL = -time.Second },
		"empty role":       func(o *admin.Options) { o.AllowedRoles = []string{""} },
	} {
		o := e.opts
		mutate(&o)
		if _, err := admin.New(o); err == nil {
			t.Errorf("%s: New accepted invalid options", name)
		}
	}
}

func TestNoSessionRedirectsToLogin(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.do(request{method: "GET", path: "/admin/"})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" {
		t.Fatalf("GET /admin/ without session = %d to %q, want 303 to /admin/login", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/admin/login", "/admin/", "/admin/nope"} {
		resp := e.do(request{method: "GET", path: path})
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "style-src 'self'") ||
			!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q is not strict", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	if resp := e.do(request{method: "GET", path: "/admin/nope"}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown page = %d, want 404", resp.StatusCode)
	}
	resp := e.do(request{method: "DELETE", path: "/admin/login"})
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("DELETE /admin/login = %d with X-Frame-Options %q", resp.StatusCode, resp.Header.Get("X-Frame-Options"))
	}
	resp = e.do(request{method: "GET", path: "/admin/static/style.css"})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestBadCredentialGenericError(t *testing.T) {
	e := newEnv(t, nil)
	wrongSecret := e.adminKey[:len(e.adminKey)-4] + "AAAA"
	if wrongSecret == e.adminKey {
		wrongSecret = e.adminKey[:len(e.adminKey)-4] + "BBBB"
	}
	unknownID := "mcp_00000000000000ff_" + strings.Repeat("A", 43)
	var bodies []string
	for _, cred := range []string{wrongSecret, unknownID, "not a key at all", "eyJhbGciOiJIUzI1NiJ9.e30.x"} {
		resp := e.postLogin(cred)
		body := bodyOf(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad credential %q: status %d, want 401", cred, resp.StatusCode)
		}
		if c := cookieNamed(resp, "mcpguard_admin"); c != nil {
			t.Fatalf("bad credential set a session cookie")
		}
		if strings.Contains(body, cred) {
			t.Fatalf("the page echoes the credential")
		}
		if !strings.Contains(body, "Sign-in failed. Check the key or token and try again.") {
			t.Fatalf("bad credential page lacks the generic error: %s", body)
		}
		// The message must not say why (unknown id, wrong secret, ...).
		bodies = append(bodies, csrfField.ReplaceAllString(body, ""))
		if rec := e.audit.last(); rec.Decision != guard.AuthFailed || rec.Method != "admin/login" || strings.Contains(rec.Reason, cred) {
			t.Fatalf("audit record = %+v", rec)
		}
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatal("different bad credentials produce different pages")
		}
	}
}

func TestCredentialOnlyFromPostBody(t *testing.T) {
	e := newEnv(t, nil)
	c, token := e.loginForm("mcpguard_admin_csrf")
	resp := e.do(request{method: "POST", path: "/admin/login?credential=" + url.QueryEscape(e.adminKey),
		form: url.Values{"csrf": {token}}, cookies: []*http.Cookie{c}})
	if resp.StatusCode != http.StatusUnauthorized || cookieNamed(resp, "mcpguard_admin") != nil {
		t.Fatalf("credential in the query string: status %d; it must be ignored", resp.StatusCode)
	}
}

func TestViewerForbidden(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.postLogin(e.viewerKey)
	body := bodyOf(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer sign-in = %d, want 403", resp.StatusCode)
	}
	if cookieNamed(resp, "mcpguard_admin") != nil {
		t.Fatal("viewer got a session cookie")
	}
	if !strings.Contains(body, "Access denied") || !strings.Contains(body, "requires the role admin") || strings.Contains(body, "drop_table") {
		t.Fatalf("403 page: %s", body)
	}
	if rec := e.audit.last(); rec.Decision != guard.Denied || rec.Subject != "vera" {
		t.Fatalf("audit record = %+v", rec)
	}
}

func TestAdminSeesRecords(t *testing.T) {
	e := newEnv(t, nil)
	c := e.signIn(e.adminKey)
	if rec := e.audit.last(); rec.Decision != guard.Allowed || rec.Subject != "root" || rec.Method != "admin/login" {
		t.Fatalf("audit record = %+v", rec)
	}
	resp, body := e.dashboard(c, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard = %d: %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "Signed in as <strong>root</strong>") {
		t.Fatal("dashboard does not name the signed-in subject")
	}
	denials := section(t, body, "denials")
	for _, want := range []string{"drop_table", "tool drop_table requires role admin", "AUTH_FAILED", "RATE_LIMITED", "203.0.113.9"} {
		if !strings.Contains(denials, want) {
			t.Errorf("denials section lacks %q", want)
		}
	}
	if strings.Contains(denials, "ALLOWED") {
		t.Error("denials section lists an ALLOWED record")
	}
	decisions := section(t, body, "decisions")
	// Newest first: tools/list (10 min ago) before the allowed query (50).
	list, query := strings.Index(decisions, "tools/list"), strings.Index(decisions, "tool query requires role viewer")
	if list < 0 || query < 0 || list > query {
		t.Errorf("decisions not newest first (tools/list at %d, oldest at %d)", list, query)
	}
	if n := strings.Count(decisions, "<tr>") - 1; n != len(seedRecords()) {
		t.Errorf("decisions section has %d rows, want %d", n, len(seedRecords()))
	}
	// Signed in, the sign-in page sends the person on.
	resp = e.do(request{method: "GET", path: "/admin/login", cookies: []*http.Cookie{c}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Errorf("GET /admin/login signed in = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRecordsAreEscaped(t *testing.T) {
	e := newEnv(t, nil)
	evil := guard.Record{
		Time: base.Add(-time.Minute), Decision: guard.Denied, Method: "tools/call",
		Subject: "<script>alert(1)</script>",
		Target:  `"><img src=x onerror=alert(2)>`,
		Reason:  "</td></tr><script>alert(3)</script>\u202ereversed\x1b[31m",
	}
	if err := e.st.AppendAudit(context.Background(), []guard.Record{evil}); err != nil {
		t.Fatal(err)
	}
	_, body := e.dashboard(e.signIn(e.adminKey), "")
	for _, bad := range []string{"<script>alert", "<img src=x", "</td></tr><script>", "\u202e", "\x1b"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks escaped %q", want)
		}
	}
}

func TestSessionCookieFlags(t *testing.T) {
	t.Run("plain HTTP", func(t *testing.T) {
		e := newEnv(t, nil)
		resp := e.postLogin(e.adminKey)
		c := cookieNamed(resp, "mcpguard_admin")
		if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin/" || c.Secure || c.MaxAge != int((8*time.Hour)/time.Second) {
			t.Fatalf("session cookie = %+v", c)
		}
		if strings.Contains(c.Value, e.adminKey) || strings.Contains(c.Value, "root") {
			t.Fatal("session cookie holds the key or the subject in clear")
		}
	})
	t.Run("TLS", func(t *testing.T) {
		e := newEnv(t, func(o *admin.Options) { o.Secure = true })
		csrf, token := e.loginForm("__Host-mcpguard_admin_csrf")
		if !csrf.Secure || csrf.Path != "/" || !csrf.HttpOnly {
			t.Fatalf("csrf cookie = %+v", csrf)
		}
		post := func(origin string) *http.Response {
			return e.do(request{method: "POST", path: "/admin/login",
				form:    url.Values{"credential": {e.adminKey}, "csrf": {token}},
				cookies: []*http.Cookie{csrf}, header: map[string]string{"Origin": origin}})
		}
		if resp := post("http://example.com"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("http Origin on a TLS page = %d, want 403", resp.StatusCode)
		}
		resp := post("https://example.com")
		c := cookieNamed(resp, "__Host-mcpguard_admin")
		if resp.StatusCode != http.StatusSeeOther || c == nil || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteStrictMode {
			t.Fatalf("sign-in = %d, cookie %+v", resp.StatusCode, c)
		}
		if r, _ := e.dashboard(c, ""); r.StatusCode != http.StatusOK {
			t.Fatalf("dashboard with __Host- cookie = %d", r.StatusCode)
		}
	})
}

func TestLoginCSRF(t *testing.T) {
	e := newEnv(t, nil)
	csrf, token := e.loginForm("mcpguard_admin_csrf")
	_, otherToken := e.loginForm("mcpguard_admin_csrf")
	cases := []struct {
		name    string
		token   string
		cookies []*http.Cookie
		header  map[string]string
		want    int
	}{
		{"no token", "", []*http.Cookie{csrf}, nil, http.StatusForbidden},
		{"token of another cookie", otherToken, []*http.Cookie{csrf}, nil, http.StatusForbidden},
		{"no cookie", token, nil, nil, http.StatusForbidden},
		{"forged token", strings.Repeat("A", 43), []*http.Cookie{csrf}, nil, http.StatusForbidden},
		{"cross-site Origin", token, []*http.Cookie{csrf}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"null Origin", token, []*http.Cookie{csrf}, map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"cross-site Referer", token, []*http.Cookie{csrf}, map[string]string{"Referer": "http://evil.example/page"}, http.StatusForbidden},
		{"Sec-Fetch-Site cross-site", token, []*http.Cookie{csrf}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"Sec-Fetch-Site same-site", token, []*http.Cookie{csrf}, map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"same-origin Referer", token, []*http.Cookie{csrf}, map[string]string{"Referer": "http://example.com/admin/login"}, http.StatusSeeOther},
		{"non-browser (no Origin)", token, []*http.Cookie{csrf}, nil, http.StatusSeeOther},
	}
	for _, tc := range cases {
		resp := e.do(request{method: "POST", path: "/admin/login",
			form: url.Values{"credential": {e.adminKey}, "csrf": {tc.token}}, cookies: tc.cookies, header: tc.header})
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if got := cookieNamed(resp, "mcpguard_admin") != nil; got != (tc.want == http.StatusSeeOther) {
			t.Errorf("%s: session cookie set = %v", tc.name, got)
		}
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	c := e.signIn(e.adminKey)
	_, body := e.dashboard(c, "")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("dashboard has no sign-out token")
	}
	logout := func(token string, header map[string]string) *http.Response {
		return e.do(request{method: "POST", path: "/admin/logout", form: url.Values{"csrf": {token}}, cookies: []*http.Cookie{c}, header: header})
	}
	for name, resp := range map[string]*http.Response{
		"wrong token":       logout("x", nil),
		"cross-site Origin": logout(m[1], map[string]string{"Origin": "http://evil.example"}),
	} {
		if resp.StatusCode != http.StatusForbidden || cookieNamed(resp, "mcpguard_admin") != nil {
			t.Errorf("logout with %s = %d, cookie %v; want 403 and the session kept", name, resp.StatusCode, cookieNamed(resp, "mcpguard_admin"))
		}
	}
	resp := logout(m[1], map[string]string{"Origin": "http://example.com"})
	cleared := cookieNamed(resp, "mcpguard_admin")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" || cleared == nil || cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Fatalf("logout = %d to %q, cookie %+v", resp.StatusCode, resp.Header.Get("Location"), cleared)
	}
}

func TestTamperedCookieRejected(t *testing.T) {
	e := newEnv(t, nil)
	c := e.signIn(e.adminKey)
	flip := func(v string, i int) string {
		b := []byte(v)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	other, err := admin.New(func() admin.Options { o := e.opts; o.SessionKey = bytes.Repeat([]byte{7}, 32); return o }())
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"first byte":  flip(c.Value, 0),
		"middle byte": flip(c.Value, len(c.Value)/2),
		"last byte":   flip(c.Value, len(c.Value)-1),
		"truncated":   c.Value[:len(c.Value)-10],
		"not base64":  "!!!" + c.Value,
		"empty":       "",
		"oversized":   strings.Repeat("A", 5000),
	} {
		resp, _ := e.dashboard(&http.Cookie{Name: c.Name, Value: value}, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/login" {
			t.Errorf("%s: dashboard = %d, want a redirect to sign-in", name, resp.StatusCode)
		}
	}
	// A cookie sealed with another key is refused too.
	r := httptest.NewRequest("GET", "http://example.com/admin/", nil)
	r.AddCookie(c)
	w := httptest.NewRecorder()
	other.ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther {
		t.Errorf("cookie from another key: %d, want 303", w.Code)
	}
	// The untouched cookie still works.
	if resp, _ := e.dashboard(c, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("original cookie = %d", resp.StatusCode)
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, nil)
	c := e.signIn(e.adminKey)
	e.clock.Add(8*time.Hour - time.Second)
	if resp, _ := e.dashboard(c, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("before expiry: %d", resp.StatusCode)
	}
	e.clock.Add(time.Second)
	if resp, _ := e.dashboard(c, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("at expiry: %d, want 303 to sign-in", resp.StatusCode)
	}
}

func TestSessionEndsWithCredential(t *testing.T) {
	t.Run("key expires before the session", func(t *testing.T) {
		e := newEnv(t, nil)
		short := e.createKey("temp-admin", []string{"admin"}, time.Hour)
		resp := e.postLogin(short)
		c := cookieNamed(resp, "mcpguard_admin")
		if c == nil || c.MaxAge != 3600 {
			t.Fatalf("session cookie for a 1h key = %+v", c)
		}
		e.clock.Add(time.Hour)
		if resp, _ := e.dashboard(c, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("after the key expired: %d", resp.StatusCode)
		}
	})
	t.Run("key revoked", func(t *testing.T) {
		e := newEnv(t, nil)
		c := e.signIn(e.adminKey)
		id, err := apikey.Parse(e.adminKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.RevokeAPIKey(context.Background(), id, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if resp, _ := e.dashboard(c, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("after revocation: %d, want 303", resp.StatusCode)
		}
	})
}

func TestLoginRateLimited(t *testing.T) {
	e := newEnv(t, nil)
	bad := "mcp_00000000000000ff_" + strings.Repeat("A", 43)
	for i := range 5 {
		if resp := e.postLogin(bad); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	resp := e.postLogin(e.adminKey)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || cookieNamed(resp, "mcpguard_admin") != nil {
		t.Fatalf("locked-out source with the right key = %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.clock.Add(15 * time.Minute)
	e.signIn(e.adminKey)
}

func TestDashboardFilters(t *testing.T) {
	e := newEnv(t, nil)
	c := e.signIn(e.adminKey)
	count := func(query string) (int, int) {
		t.Helper()
		resp, body := e.dashboard(c, query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", query, resp.StatusCode)
		}
		return strings.Count(section(t, body, "decisions"), "<tr>") - 1, strings.Count(section(t, body, "denials"), "<tr>") - 1
	}
	for query, want := range map[string][2]int{
		"":                    {5, 3},
		"?decision=denied":    {1, 3},
		"?decision=ALLOWED":   {2, 3},
		"?user=bob":           {2, 2},
		"?tool=query":         {3, 2},
		"?user=bob&tool=nope": {0, 0},
	} {
		d, n := count(query)
		if d < 0 {
			d = 0
		}
		if n < 0 {
			n = 0
		}
		if d != want[0] || n != want[1] {
			t.Errorf("%q: %d decisions and %d denials, want %v", query, d, n, want)
		}
	}
	for _, query := range []string{"?decision=MAYBE", "?user=" + strings.Repeat("x", 201), "?tool=a%1bb"} {
		resp, body := e.dashboard(c, query)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Invalid filter") {
			t.Errorf("%.40q: %d, want 400 with a message", query, resp.StatusCode)
		}
	}
}

func TestRolesAndInheritance(t *testing.T) {
	t.Run("inherited role", func(t *testing.T) {
		e := newEnv(t, func(o *admin.Options) {
			o.Inherits = map[string][]string{"owner": {"superuser"}, "superuser": {"admin"}}
		})
		e.signIn(e.createKey("olga", []string{"owner"}, 0))
	})
	t.Run("roles from the authorizer", func(t *testing.T) {
		rbac, err := authz.NewRBAC(authz.Policy{
			Roles: map[string]authz.Role{"admin": {}, "viewer": {}},
			Users: map[string][]string{"vera": {"admin"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, func(o *admin.Options) { o.Authorizer = rbac })
		e.signIn(e.viewerKey) // vera holds admin through the policy
	})
	t.Run("session without an allowed role", func(t *testing.T) {
		e := newEnv(t, nil)
		c := e.signIn(e.adminKey)
		o := e.opts
		o.AllowedRoles = []string{"auditor"}
		strict, err := admin.New(o)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "http://example.com/admin/", nil)
		r.AddCookie(c)
		w := httptest.NewRecorder()
		strict.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Sign out") || strings.Contains(w.Body.String(), "drop_table") {
			t.Fatalf("session without the role = %d: %s", w.Code, w.Body.String())
		}
	})
}

func TestUnauditableLoginRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.audit.err = errors.New("disk full")
	resp := e.postLogin(e.adminKey)
	if resp.StatusCode != http.StatusServiceUnavailable || cookieNamed(resp, "mcpguard_admin") != nil {
		t.Fatalf("sign-in that cannot be audited = %d, cookie %v", resp.StatusCode, cookieNamed(resp, "mcpguard_admin"))
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	c := e.signIn(e.adminKey)
	e.st.Close()
	resp, body := e.dashboard(c, "")
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "drop_table") {
		t.Fatalf("dashboard with the store down = %d", resp.StatusCode)
	}
}
