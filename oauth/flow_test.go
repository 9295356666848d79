package oauth_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
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
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safehttp"
	"github.com/mcpguard/mcpguard/oauth"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

// auditLog collects the server's audit records.
type auditLog struct {
	mu   sync.Mutex
	recs []guard.Record
	fail atomic.Bool // make Record fail
}

func (a *auditLog) Record(_ context.Context, r *guard.Record) error {
	if a.fail.Load() {
		return fmt.Errorf("audit sink down")
	}
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

func (a *auditLog) find(method string, d guard.Outcome, reason string) []guard.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []guard.Record
	for _, r := range a.recs {
		if r.Method == method && r.Decision == d && strings.Contains(r.Reason, reason) {
			out = append(out, r)
		}
	}
	return out
}

// mustNotContain fails when any record carries one of the secrets.
func (a *auditLog) mustNotContain(t *testing.T, secrets ...string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.recs {
		b, _ := json.Marshal(r)
		for _, s := range secrets {
			if s != "" && strings.Contains(string(b), s) {
				t.Fatalf("an audit record contains a secret (%d chars): %s", len(s), b)
			}
		}
	}
}

// env is a running authorization server with users, on a real SQLite
// store.
type env struct {
	t        *testing.T
	srv      *oauth.Server
	ts       *httptest.Server
	st       *sqlite.Store
	audit    *auditLog
	cfg      oauth.Config
	now      time.Time
	mu       sync.Mutex
	issuer   string
	resource string
	mfaKey   []byte
}

const (
	redirect = "http://127.0.0.1:9999/callback"
	pw       = "correct horse battery" // test-only password
)

var hierarchy = map[string][]string{"viewer": {"viewer"}, "developer": {"developer", "viewer"}, "admin": {"admin", "developer", "viewer"}}

func hasRole(held []string, role string) bool {
	return slices.ContainsFunc(held, func(h string) bool { return slices.Contains(hierarchy[h], role) })
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newEnv starts a server with the users ann (admin), dev (developer) and
// mfa (admin, TOTP enrolled). mutate may change the configuration.
func newEnv(t *testing.T, mutate func(*oauth.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	e := &env{t: t, st: st, audit: &auditLog{}, now: time.Now().Truncate(time.Second)}
	mux := http.NewServeMux()
	e.ts = httptest.NewServer(mux)
	t.Cleanup(e.ts.Close)
	e.issuer = e.ts.URL
	e.resource = e.ts.URL + "/mcp"
	hash, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	for name, roles := range map[string][]string{"ann": {"admin"}, "dev": {"developer"}, "mfa": {"admin"}} {
		u := &store.User{Name: name, PasswordHash: hash, Roles: roles}
		if name == "mfa" {
			en, err := totp.Enroll("mcpguard", name)
			if err != nil {
				t.Fatal(err)
			}
			e.mfaKey = en.Secret
			u.MFASecret = en.Secret
		}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg = oauth.Config{
		Issuer: e.issuer, Resources: []string{e.resource}, Store: st,
		Scopes: []oauth.Scope{
			{Name: "mcp:read", Description: "Read tools and resources", Role: "viewer"},
			{Name: "mcp:tools", Description: "Call developer tools", Role: "developer"},
			{Name: "mcp:admin", Description: "Administer", Role: "admin"},
		},
		DefaultScopes: []string{"mcp:read", "mcp:tools"}, HasRole: hasRole,
		DynamicRegistration: true, ClientIDMetadataDocuments: true, RegistrationsPerHour: 1000,
		SessionKey: []byte("0123456789abcdef0123456789abcdef"), Audit: e.audit,
		RevokeAccessToken: st.RevokeToken, AccessTokenRevoked: st.TokenRevoked,
		Now: e.clock,
	}
	if mutate != nil {
		mutate(&e.cfg)
	}
	if e.cfg.Issuer != e.issuer {
		e.issuer = e.cfg.Issuer
	}
	e.srv, err = oauth.New(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", e.srv.Handler())
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// url is an endpoint under the issuer.
func (e *env) url(path string) string { return e.issuer + path }

// register registers a public client through DCR and returns its id.
func (e *env) register(redirects ...string) string {
	e.t.Helper()
	if len(redirects) == 0 {
		redirects = []string{redirect}
	}
	status, out := e.registerJSON(map[string]any{"client_name": "Test client", "redirect_uris": redirects})
	if status != 201 {
		e.t.Fatalf("register: %d %v", status, out)
	}
	return out["client_id"].(string)
}

func (e *env) registerJSON(body any) (int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(e.url("/oauth/register"), "application/json", strings.NewReader(string(b)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// confidential stores a pre-registered confidential client with roles and
// returns its id and secret.
func (e *env) confidential(method string, roles ...string) (string, string) {
	e.t.Helper()
	id, secret := "svc-"+randomish(), "s3cret-"+randomish()+randomish()
	sum := sha256.Sum256([]byte(secret))
	err := e.st.CreateClient(context.Background(), &store.OAuthClient{
		ID: id, SecretHash: sum[:], Name: "Service", RedirectURIs: []string{"https://svc.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}, TokenEndpointAuthMethod: method, Roles: roles,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id, secret
}

var counter atomic.Int64

func randomish() string { return fmt.Sprintf("%d%d", time.Now().UnixNano()%100000, counter.Add(1)) }

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

// post submits a form as the pages' own forms do (same-origin).
func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	return b.postWith(u, form, nil)
}

func (b *browser) postWith(u string, form url.Values, headers map[string]string) page {
	b.t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
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

func (p page) is(kind string) bool {
	return strings.Contains(p.body, `action="`) && strings.Contains(p.body, "/oauth/"+kind+`"`)
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
	return e.url("/oauth/authorize?" + q.Encode())
}

// login opens the authorization URL and submits the password form, and
// returns the page that follows.
func (e *env) login(b *browser, clientID, user string, override map[string]string) page {
	e.t.Helper()
	p := b.get(e.authURL(clientID, override))
	if p.status != 200 || !strings.Contains(p.body, "Sign in to mcpguard") {
		e.t.Fatalf("authorize: %d %q\n%s", p.status, p.location, p.body)
	}
	return b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(e.t)}, "username": {user}, "password": {pw}})
}

// signIn drives authorize → login → (MFA) → consent and returns the final
// redirect's query.
func (e *env) signIn(b *browser, clientID, user string, override map[string]string) url.Values {
	e.t.Helper()
	p := b.get(e.authURL(clientID, override))
	if p.status == http.StatusSeeOther { // already signed in and consented
		return e.callback(p, override)
	}
	if p.status != 200 || !strings.Contains(p.body, "Sign in to mcpguard") {
		e.t.Fatalf("authorize: %d\n%s", p.status, p.body)
	}
	p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(e.t)}, "username": {user}, "password": {pw}})
	if p.is("mfa") {
		code, _ := totp.GenerateCode(e.mfaKey, e.clock())
		p = b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {p.csrf(e.t)}, "code": {code}})
	}
	if p.status == http.StatusSeeOther {
		return e.callback(p, override)
	}
	if !p.is("consent") {
		e.t.Fatalf("expected the consent page, got %d:\n%s", p.status, p.body)
	}
	p = b.post(e.url("/oauth/consent"), url.Values{"csrf_token": {p.csrf(e.t)}, "decision": {"allow"}})
	return e.callback(p, override)
}

func (e *env) callback(p page, override map[string]string) url.Values {
	e.t.Helper()
	want := redirect
	if r := override["redirect_uri"]; r != "" {
		want = r
	}
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, want+"?") {
		e.t.Fatalf("expected a redirect to the client, got %d %q:\n%s", p.status, p.location, p.body)
	}
	u, _ := url.Parse(p.location)
	return u.Query()
}

// tokenReq posts to the token endpoint and returns status, JSON body and
// headers.
func (e *env) tokenReq(form url.Values) (int, map[string]any, http.Header) {
	e.t.Helper()
	return e.postForm("/oauth/token", form, "", "")
}

// postForm posts a form, with HTTP Basic credentials when user is set.
func (e *env) postForm(path string, form url.Values, user, pass string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

func (e *env) exchange(clientID, code string, override map[string]string) (int, map[string]any) {
	e.t.Helper()
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
	e.t.Helper()
	status, body, _ := e.tokenReq(url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}})
	return status, body
}

// tokens runs a whole sign-in for user and returns the token response.
func (e *env) tokens(clientID, user string, override map[string]string) map[string]any {
	e.t.Helper()
	q := e.signIn(newBrowser(e.t), clientID, user, override)
	status, tok := e.exchange(clientID, q.Get("code"), nil)
	if status != 200 {
		e.t.Fatalf("exchange: %d %v", status, tok)
	}
	return tok
}

// claims verifies an access token with the server's VerificationKeys and
// returns its claims and header.
func (e *env) claims(at string) map[string]any {
	e.t.Helper()
	c, _ := e.verify(at)
	return c
}

func (e *env) verify(at string) (map[string]any, jose.Header) {
	e.t.Helper()
	tok, err := josejwt.ParseSigned(at, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := e.srv.VerificationKeys(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range keys {
		var c map[string]any
		if k.ID == tok.Headers[0].KeyID && tok.Claims(k.Key, &c) == nil {
			return c, tok.Headers[0]
		}
	}
	e.t.Fatal("the access token does not verify with the server's keys")
	return nil, jose.Header{}
}

// cimdServer serves a Client ID Metadata Document over TLS; doc may be
// changed between requests.
type cimdServer struct {
	ts          *httptest.Server
	mu          sync.Mutex
	doc         map[string]any
	contentType string
	hits        atomic.Int32
}

func newCIMDServer(t *testing.T) *cimdServer {
	c := &cimdServer{contentType: "application/json"}
	c.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		c.mu.Lock()
		doc, ct := c.doc, c.contentType
		c.mu.Unlock()
		if doc == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ct)
		json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(c.ts.Close)
	return c
}

func (c *cimdServer) set(doc map[string]any) {
	c.mu.Lock()
	c.doc = doc
	c.mu.Unlock()
}

// client is a fetcher that trusts the test server's certificate and may
// reach loopback.
func (c *cimdServer) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(c.ts.Certificate())
	return safehttp.NewClient(safehttp.Options{AllowPrivate: true, RootCAs: pool, MaxBodyBytes: 16 << 10})
}
