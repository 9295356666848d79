package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/oauth"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

// auditLog collects the server's audit records.
type auditLog struct {
	mu   sync.Mutex
	recs []guard.Record
}

func (a *auditLog) Record(_ context.Context, r *guard.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, *r)
	return nil
}

func (a *auditLog) has(method string, d guard.Outcome, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.recs, func(r guard.Record) bool {
		return r.Method == method && r.Decision == d && strings.Contains(r.Reason, reason)
	})
}

// env is a running authorization server with users and a client.
type env struct {
	t        *testing.T
	srv      *oauth.Server
	ts       *httptest.Server
	st       store.Store
	audit    *auditLog
	now      time.Time
	mu       sync.Mutex
	resource string
	mfaKey   []byte
}

const (
	redirect = "http://127.0.0.1:9999/callback"
	pw       = "correct horse battery"
)

var hierarchy = map[string][]string{"viewer": {"viewer"}, "developer": {"developer", "viewer"}, "admin": {"admin", "developer", "viewer"}}

func hasRole(held []string, role string) bool {
	return slices.ContainsFunc(held, func(h string) bool { return slices.Contains(hierarchy[h], role) })
}

func newEnv(t *testing.T, mutate func(*oauth.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, audit: &auditLog{}, now: time.Now()}
	mux := http.NewServeMux()
	e.ts = httptest.NewServer(mux)
	t.Cleanup(e.ts.Close)
	e.resource = e.ts.URL + "/mcp"
	hash, _ := password.Hash(pw)
	for name, roles := range map[string][]string{"ann": {"admin"}, "dev": {"developer"}, "mfa": {"admin"}} {
		u := &store.User{Name: name, PasswordHash: hash, Roles: roles}
		if name == "mfa" {
			en, _ := totp.Enroll("mcpguard", name)
			e.mfaKey = en.Secret
			u.MFASecret = en.Secret
			_, u.BackupCodes, _ = totp.NewBackupCodes(1)
		}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	cfg := oauth.Config{
		Issuer: e.ts.URL, Resources: []string{e.resource}, Store: st,
		Scopes:        []oauth.Scope{{Name: "mcp:read", Role: "viewer"}, {Name: "mcp:tools", Role: "developer"}, {Name: "mcp:admin", Role: "admin"}},
		DefaultScopes: []string{"mcp:read", "mcp:tools"}, HasRole: hasRole,
		DynamicRegistration: true, ClientIDMetadataDocuments: true,
		SessionKey: []byte("0123456789abcdef0123456789abcdef"), Audit: e.audit,
		RevokeAccessToken: st.RevokeToken, AccessTokenRevoked: st.TokenRevoked,
		Now: func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e.srv, err = oauth.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", e.srv.Handler())
	return e
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// register registers a public client through DCR and returns its id.
func (e *env) register(redirects ...string) string {
	e.t.Helper()
	if len(redirects) == 0 {
		redirects = []string{redirect}
	}
	body, _ := json.Marshal(map[string]any{"client_name": "Test client", "redirect_uris": redirects})
	resp, err := http.Post(e.ts.URL+"/oauth/register", "application/json", strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 201 {
		e.t.Fatalf("register: %d %v", resp.StatusCode, out)
	}
	return out["client_id"].(string)
}

// browser is a person's browser: a cookie jar, redirects not followed.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is a fetched response.
type page struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) get(u string) page {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return read(resp)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return read(resp)
}

func read(resp *http.Response) page {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(b), location: resp.Header.Get("Location"), header: resp.Header}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (p page) csrf(t *testing.T) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token on the page (status %d):\n%s", p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

func pkce() (verifier, challenge string) {
	verifier = strings.Repeat("v", 20) + base64.RawURLEncoding.EncodeToString([]byte("a fixed but long enough verifier"))
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authURL builds an authorization request; override changes parameters
// ("" deletes one).
func (e *env) authURL(clientID string, override map[string]string) string {
	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "state": {"st-123"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "resource": {e.resource}, "scope": {"mcp:read mcp:tools"}}
	for k, v := range override {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	return e.ts.URL + "/oauth/authorize?" + q.Encode()
}

// signIn drives authorize → login → (MFA) → consent and returns the final
// redirect's query.
func (e *env) signIn(b *browser, clientID, user string, override map[string]string) url.Values {
	e.t.Helper()
	p := b.get(e.authURL(clientID, override))
	if p.status == http.StatusSeeOther { // already signed in and consented
		return e.callback(p)
	}
	if p.status != 200 || !strings.Contains(p.body, "Sign in to mcpguard") {
		e.t.Fatalf("authorize: %d\n%s", p.status, p.body)
	}
	p = b.post(e.ts.URL+"/oauth/login", url.Values{"csrf_token": {p.csrf(e.t)}, "username": {user}, "password": {pw}})
	if strings.Contains(p.body, `action="/oauth/mfa"`) {
		code, _ := totp.GenerateCode(e.mfaKey, e.now)
		p = b.post(e.ts.URL+"/oauth/mfa", url.Values{"csrf_token": {p.csrf(e.t)}, "code": {code}})
	}
	if p.status == http.StatusSeeOther {
		return e.callback(p)
	}
	if !strings.Contains(p.body, `action="/oauth/consent"`) {
		e.t.Fatalf("expected the consent page, got %d:\n%s", p.status, p.body)
	}
	p = b.post(e.ts.URL+"/oauth/consent", url.Values{"csrf_token": {p.csrf(e.t)}, "decision": {"allow"}})
	return e.callback(p)
}

func (e *env) callback(p page) url.Values {
	e.t.Helper()
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, redirect+"?") {
		e.t.Fatalf("expected a redirect to the client, got %d %q:\n%s", p.status, p.location, p.body)
	}
	u, _ := url.Parse(p.location)
	return u.Query()
}

// tokenReq posts to the token endpoint and returns status and JSON body.
func (e *env) tokenReq(form url.Values) (int, map[string]any, http.Header) {
	e.t.Helper()
	resp, err := http.PostForm(e.ts.URL+"/oauth/token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

func (e *env) exchange(clientID, code string, override map[string]string) (int, map[string]any) {
	verifier, _ := pkce()
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"code_verifier": {verifier}, "redirect_uri": {redirect}, "resource": {e.resource}}
	for k, v := range override {
		if v == "" {
			form.Del(k)
		} else {
			form.Set(k, v)
		}
	}
	status, body, _ := e.tokenReq(form)
	return status, body
}

// exchangeAt redeems a code issued for another redirect URI.
func (e *env) exchangeAt(clientID, code, redirectURI string) (int, map[string]any) {
	return e.exchange(clientID, code, map[string]string{"redirect_uri": redirectURI})
}

func (e *env) refresh(clientID, rt string) (int, map[string]any) {
	status, body, _ := e.tokenReq(url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}})
	return status, body
}

// claims verifies an access token with the server's keys.
func (e *env) claims(at string) map[string]any {
	e.t.Helper()
	tok, err := josejwt.ParseSigned(at, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		e.t.Fatal(err)
	}
	keys, _ := e.srv.VerificationKeys(context.Background())
	for _, k := range keys {
		var c map[string]any
		if k.ID == tok.Headers[0].KeyID && tok.Claims(k.Key, &c) == nil {
			return c
		}
	}
	e.t.Fatal("the access token does not verify with the server's keys")
	return nil
}
