package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/oauth"
)

func TestMetadata(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		p := newBrowser(t).get(e.ts.URL + path)
		var m map[string]any
		if err := json.Unmarshal([]byte(p.body), &m); err != nil || p.status != 200 {
			t.Fatalf("%s: %d %v", path, p.status, err)
		}
		if m["issuer"] != e.ts.URL || m["authorization_response_iss_parameter_supported"] != true ||
			m["client_id_metadata_document_supported"] != true || m["registration_endpoint"] != e.ts.URL+"/oauth/register" {
			t.Errorf("%s: %v", path, m)
		}
		if cm, _ := json.Marshal(m["code_challenge_methods_supported"]); string(cm) != `["S256"]` {
			t.Errorf("%s: code_challenge_methods_supported = %s", path, cm)
		}
	}
	jwks := newBrowser(t).get(e.ts.URL + "/.well-known/jwks.json")
	if !strings.Contains(jwks.body, `"kid"`) || strings.Contains(jwks.body, `"d"`) {
		t.Fatalf("JWKS: %s", jwks.body)
	}
}

func TestCodeFlowAndTokens(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	q := e.signIn(newBrowser(t), cid, "ann", nil)
	if q.Get("state") != "st-123" || q.Get("iss") != e.ts.URL || q.Get("code") == "" {
		t.Fatalf("callback = %v", q)
	}
	status, tok := e.exchange(cid, q.Get("code"), nil)
	if status != 200 || tok["token_type"] != "Bearer" || tok["refresh_token"] == nil || tok["scope"] != "mcp:read mcp:tools" {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	c := e.claims(tok["access_token"].(string))
	if c["iss"] != e.ts.URL || c["sub"] != "ann" || c["aud"] != e.resource || c["client_id"] != cid || c["scope"] != "mcp:read mcp:tools" || c["jti"] == nil {
		t.Fatalf("claims = %v", c)
	}
	if roles, _ := json.Marshal(c["roles"]); string(roles) != `["viewer","developer"]` {
		t.Fatalf("roles = %s: an admin asking mcp:read mcp:tools must get exactly those scopes' roles", roles)
	}
	if exp := int64(c["exp"].(float64)) - int64(c["iat"].(float64)); exp != 900 {
		t.Fatalf("lifetime %d s, want 900", exp)
	}
	if !e.audit.has("oauth/token", guard.Allowed, "issued") || !e.audit.has("oauth/login", guard.Allowed, "") {
		t.Fatal("issuance not audited")
	}
	// The token response is never cached.
	_, _, hdr := e.tokenReq(url.Values{"grant_type": {"refresh_token"}, "client_id": {cid}, "refresh_token": {tok["refresh_token"].(string)}})
	if hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", hdr.Get("Cache-Control"))
	}
}

func TestScopesNarrowedByRoles(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	q := e.signIn(newBrowser(t), cid, "dev", map[string]string{"scope": "mcp:read mcp:admin"})
	_, tok := e.exchange(cid, q.Get("code"), nil)
	c := e.claims(tok["access_token"].(string))
	if c["scope"] != "mcp:read" || tok["scope"] != "mcp:read" {
		t.Fatalf("a developer asking mcp:admin got scope %v", c["scope"])
	}
	if roles, _ := json.Marshal(c["roles"]); string(roles) != `["viewer"]` {
		t.Fatalf("roles = %s", roles)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	b := newBrowser(t)
	// Until client and redirect URI are validated: a page, never a redirect.
	for name, override := range map[string]map[string]string{
		"unknown client":      {"client_id": "nope"},
		"wrong redirect URI":  {"redirect_uri": "https://evil.example/cb"},
		"redirect URI prefix": {"redirect_uri": redirect + "/../evil"},
	} {
		p := b.get(e.authURL(cid, override))
		if p.status != 400 || p.location != "" {
			t.Errorf("%s: %d location=%q", name, p.status, p.location)
		}
	}
	// After: an error redirect with state and iss.
	for name, tc := range map[string]struct {
		override map[string]string
		code     string
	}{
		"missing PKCE":   {map[string]string{"code_challenge": ""}, "invalid_request"},
		"plain PKCE":     {map[string]string{"code_challenge_method": "plain"}, "invalid_request"},
		"short PKCE":     {map[string]string{"code_challenge": "abc"}, "invalid_request"},
		"no resource":    {map[string]string{"resource": ""}, "invalid_target"},
		"wrong resource": {map[string]string{"resource": "https://other.example/mcp"}, "invalid_target"},
		"unknown scope":  {map[string]string{"scope": "mcp:everything"}, "invalid_scope"},
		"token response": {map[string]string{"response_type": "token"}, "unsupported_response_type"},
	} {
		p := b.get(e.authURL(cid, tc.override))
		u, _ := url.Parse(p.location)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, redirect) || u.Query().Get("error") != tc.code ||
			u.Query().Get("state") != "st-123" || u.Query().Get("iss") != e.ts.URL {
			t.Errorf("%s: %d %q", name, p.status, p.location)
		}
	}
	if !e.audit.has("oauth/authorize", guard.Denied, "redirect_uri") {
		t.Fatal("refusals are not audited")
	}
}

func TestCodeRedemptionRefusals(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	other := e.register()
	b := newBrowser(t)
	code := func() string { return e.signIn(b, cid, "ann", nil).Get("code") }
	for name, tc := range map[string]struct {
		override map[string]string
		want     string
	}{
		"wrong verifier":     {map[string]string{"code_verifier": strings.Repeat("x", 43)}, "invalid_grant"},
		"missing verifier":   {map[string]string{"code_verifier": ""}, "invalid_request"},
		"wrong redirect URI": {map[string]string{"redirect_uri": "http://127.0.0.1:9999/other"}, "invalid_grant"},
		"wrong resource":     {map[string]string{"resource": "https://other.example/mcp"}, "invalid_target"},
		"another client":     {map[string]string{"client_id": other}, "invalid_grant"},
	} {
		status, body := e.exchange(cid, code(), tc.override)
		if status != 400 || body["error"] != tc.want {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	// Expired.
	c := code()
	e.advance(61 * time.Second)
	if status, body := e.exchange(cid, c, nil); status != 400 || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "expired") {
		t.Errorf("expired code: %d %v", status, body)
	}
	// Reused: refused, and what the first exchange issued is revoked.
	c = code()
	status, first := e.exchange(cid, c, nil)
	if status != 200 {
		t.Fatalf("first exchange: %d %v", status, first)
	}
	if status, body := e.exchange(cid, c, nil); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("reused code: %d %v", status, body)
	}
	if status, body := e.refresh(cid, first["refresh_token"].(string)); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("the refresh token of a replayed code still works: %d %v", status, body)
	}
}

func TestRefreshRotationAndReplay(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	_, tok := e.exchange(cid, e.signIn(newBrowser(t), cid, "ann", nil).Get("code"), nil)
	r1 := tok["refresh_token"].(string)
	status, tok2 := e.refresh(cid, r1)
	r2, _ := tok2["refresh_token"].(string)
	if status != 200 || r2 == "" || r2 == r1 || tok2["access_token"] == nil {
		t.Fatalf("refresh: %d %v", status, tok2)
	}
	// A narrower scope is fine; a wider one is not.
	if status, body, _ := e.tokenReq(url.Values{"grant_type": {"refresh_token"}, "client_id": {cid}, "refresh_token": {r2}, "scope": {"mcp:admin"}}); status != 400 || body["error"] != "invalid_scope" {
		t.Fatalf("widening refresh: %d %v", status, body)
	}
	// Replay r1: refused, and the family (r2 too) is revoked.
	if status, body := e.refresh(cid, r1); status != 400 || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "reuse") {
		t.Fatalf("replay: %d %v", status, body)
	}
	if status, _ := e.refresh(cid, r2); status != 400 {
		t.Fatal("the newest refresh token survived a replay of an older one")
	}
	if !e.audit.has("oauth/token", guard.Denied, "reuse detected") {
		t.Fatal("the replay was not audited")
	}
}

func TestConsentCSRFAndOrigin(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	b := newBrowser(t)
	p := b.get(e.authURL(cid, nil))
	p = b.post(e.ts.URL+"/oauth/login", url.Values{"csrf_token": {p.csrf(t)}, "username": {"ann"}, "password": {pw}})
	if !strings.Contains(p.body, `action="/oauth/consent"`) {
		t.Fatalf("no consent page: %s", p.body)
	}
	token := p.csrf(t)
	for name, form := range map[string]url.Values{
		"no token":    {"decision": {"allow"}},
		"wrong token": {"decision": {"allow"}, "csrf_token": {"x" + token}},
	} {
		if p := b.post(e.ts.URL+"/oauth/consent", form); p.status != 403 || p.location != "" {
			t.Errorf("%s: %d %q", name, p.status, p.location)
		}
	}
	// Another site's browser (no transaction cookie) with a stolen token.
	if p := newBrowser(t).post(e.ts.URL+"/oauth/consent", url.Values{"decision": {"allow"}, "csrf_token": {token}}); p.status != 400 || p.location != "" {
		t.Errorf("no cookie: %d %q", p.status, p.location)
	}
	// A cross-origin post.
	req, _ := http.NewRequest("POST", e.ts.URL+"/oauth/consent", strings.NewReader(url.Values{"decision": {"allow"}, "csrf_token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, _ := b.c.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("cross-origin consent: %d", resp.StatusCode)
	}
	if !e.audit.has("oauth/consent", guard.Denied, "CSRF") {
		t.Fatal("the CSRF refusal was not audited")
	}
	// The genuine form still works.
	if p := b.post(e.ts.URL+"/oauth/consent", url.Values{"decision": {"allow"}, "csrf_token": {token}}); p.status != http.StatusSeeOther {
		t.Fatalf("genuine consent: %d", p.status)
	}
}

func TestLoginFailuresLockOut(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.Login = oauth.LoginPolicy{MaxFailures: 3, LockFor: time.Minute} })
	cid := e.register()
	b := newBrowser(t)
	p := b.get(e.authURL(cid, nil))
	msgs := map[bool]bool{}
	for _, user := range []string{"ann", "ann", "nobody", "ann"} {
		p = b.post(e.ts.URL+"/oauth/login", url.Values{"csrf_token": {p.csrf(t)}, "username": {user}, "password": {"wrong password"}})
		if p.status != 401 {
			t.Fatalf("wrong password: %d", p.status)
		}
		msgs[strings.Contains(p.body, "Invalid username or password.")] = true
	}
	if len(msgs) != 1 || !msgs[true] {
		t.Fatal("failures for unknown and known users are told apart")
	}
	// Locked: even the right password fails now, with the same message.
	p = b.post(e.ts.URL+"/oauth/login", url.Values{"csrf_token": {p.csrf(t)}, "username": {"ann"}, "password": {pw}})
	if p.status != 401 || !strings.Contains(p.body, "Invalid username or password.") {
		t.Fatalf("locked account signed in: %d", p.status)
	}
	if !e.audit.has("oauth/login", guard.AuthFailed, "locked") {
		t.Fatal("the lockout is not audited")
	}
	e.advance(2 * time.Minute)
	if q := e.signIn(newBrowser(t), cid, "ann", nil); q.Get("code") == "" {
		t.Fatal("the lockout did not end")
	}
}

func TestMFA(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.Login = oauth.LoginPolicy{MaxFailures: 100, MaxMFAAttempts: 3} })
	cid := e.register()
	// The happy path needs the code.
	if q := e.signIn(newBrowser(t), cid, "mfa", nil); q.Get("code") == "" {
		t.Fatal("MFA sign-in failed")
	}
	b := newBrowser(t)
	p := b.get(e.authURL(cid, nil))
	p = b.post(e.ts.URL+"/oauth/login", url.Values{"csrf_token": {p.csrf(t)}, "username": {"mfa"}, "password": {pw}})
	if !strings.Contains(p.body, `action="/oauth/mfa"`) {
		t.Fatalf("no MFA page: %s", p.body)
	}
	// Consent cannot be reached without MFA.
	if q := b.post(e.ts.URL+"/oauth/consent", url.Values{"csrf_token": {p.csrf(t)}, "decision": {"allow"}}); q.status != 403 {
		t.Fatalf("consent before MFA: %d %q", q.status, q.location)
	}
	// A used code is refused (it was used by the first sign-in, same step).
	used, _ := totp.GenerateCode(e.mfaKey, e.now)
	p = b.post(e.ts.URL+"/oauth/mfa", url.Values{"csrf_token": {p.csrf(t)}, "code": {used}})
	if p.status != 401 || !e.audit.has("oauth/mfa", guard.AuthFailed, "replayed") {
		t.Fatalf("replayed TOTP code: %d", p.status)
	}
	for range 2 {
		p = b.post(e.ts.URL+"/oauth/mfa", url.Values{"csrf_token": {p.csrf(t)}, "code": {"000000"}})
	}
	// Third failure reached: the transaction is dead, even with a good code.
	e.advance(30 * time.Second)
	good, _ := totp.GenerateCode(e.mfaKey, e.now)
	if p := b.post(e.ts.URL+"/oauth/mfa", url.Values{"csrf_token": {p.csrf(t)}, "code": {good}}); p.status != 403 {
		t.Fatalf("MFA after the attempt limit: %d", p.status)
	}
}

func TestBackupCodeSingleUse(t *testing.T) {
	e := newEnv(t, nil)
	codes, hashes, _ := totp.NewBackupCodes(1)
	u, _ := e.st.GetUser(context.Background(), "mfa")
	u.BackupCodes = hashes
	e.st.UpdateUser(context.Background(), u)
	cid := e.register()
	try := func() page {
		b := newBrowser(t)
		p := b.get(e.authURL(cid, nil))
		p = b.post(e.ts.URL+"/oauth/login", url.Values{"csrf_token": {p.csrf(t)}, "username": {"mfa"}, "password": {pw}})
		return b.post(e.ts.URL+"/oauth/mfa", url.Values{"csrf_token": {p.csrf(t)}, "code": {strings.ToUpper(codes[0])}})
	}
	if p := try(); !strings.Contains(p.body, `action="/oauth/consent"`) {
		t.Fatalf("backup code refused: %d %s", p.status, p.body)
	}
	if p := try(); p.status != 401 {
		t.Fatalf("backup code worked twice: %d", p.status)
	}
}

func TestClientIDMetadataDocuments(t *testing.T) {
	doc := map[string]any{}
	hits := 0
	cimd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	}))
	defer cimd.Close()
	id := cimd.URL + "/client.json"
	good := map[string]any{"client_id": id, "client_name": "CIMD client", "redirect_uris": []string{redirect}}

	t.Run("private address refused", func(t *testing.T) {
		e := newEnv(t, nil)
		doc, hits = good, 0
		p := newBrowser(t).get(e.authURL(strings.Replace(id, "http://", "https://", 1), nil))
		if p.status != 400 || !strings.Contains(p.body, "private or loopback") || hits != 0 {
			t.Fatalf("%d hits=%d %s", p.status, hits, p.body)
		}
	})
	e := newEnv(t, func(c *oauth.Config) { c.AllowPrivateCIMD = true })
	t.Run("mismatched client_id", func(t *testing.T) {
		doc = map[string]any{"client_id": id + "x", "client_name": "x", "redirect_uris": []string{redirect}}
		p := newBrowser(t).get(e.authURL(id, nil))
		if p.status != 400 || !strings.Contains(p.body, "does not equal its URL") || p.location != "" {
			t.Fatalf("%d %s", p.status, p.body)
		}
	})
	t.Run("valid document", func(t *testing.T) {
		doc, hits = good, 0
		b := newBrowser(t)
		p := b.get(e.authURL(id, nil))
		if p.status != 200 || hits != 1 {
			t.Fatalf("%d hits=%d", p.status, hits)
		}
		q := e.signIn(b, id, "ann", nil)
		if status, tok := e.exchange(id, q.Get("code"), nil); status != 200 || tok["access_token"] == nil {
			t.Fatalf("exchange: %d %v", status, tok)
		}
		if hits != 1 {
			t.Fatalf("the document was fetched %d times; it should be cached", hits)
		}
	})
}

func TestDynamicRegistration(t *testing.T) {
	e := newEnv(t, nil)
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post(e.ts.URL+"/oauth/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for name, body := range map[string]string{
		"http redirect":  `{"redirect_uris":["http://app.example/cb"]}`,
		"fragment":       `{"redirect_uris":["https://app.example/cb#x"]}`,
		"no redirects":   `{"client_name":"x"}`,
		"implicit grant": `{"redirect_uris":["https://app.example/cb"],"grant_types":["implicit"]}`,
		"client creds":   `{"redirect_uris":["https://app.example/cb"],"grant_types":["client_credentials"]}`,
		"not json":       `redirect_uris=x`,
	} {
		if status, m := post(body); status != 400 {
			t.Errorf("%s: %d %v", name, status, m)
		}
	}
	status, m := post(`{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"client_secret_post","client_name":"Conf"}`)
	if status != 201 || m["client_secret"] == nil || m["client_id"] == nil {
		t.Fatalf("confidential registration: %d %v", status, m)
	}
	off := newEnv(t, func(c *oauth.Config) { c.DynamicRegistration = false })
	resp, _ := http.Post(off.ts.URL+"/oauth/register", "application/json", strings.NewReader(`{"redirect_uris":["https://a.example/cb"]}`))
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("registration while disabled: %d", resp.StatusCode)
	}
}

func TestClientCredentialsRevocationIntrospection(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	// A confidential client registered through DCR, then given a role.
	resp, _ := http.Post(e.ts.URL+"/oauth/register", "application/json", strings.NewReader(`{"redirect_uris":["https://svc.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`))
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	c, _ := e.st.GetClient(ctx, id)
	c.GrantTypes = append(c.GrantTypes, "client_credentials")
	c.Roles = []string{"developer"}
	e.st.DeleteClient(ctx, id)
	e.st.CreateClient(ctx, c)

	basic := func(form url.Values, user, pass string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"mcp:read mcp:tools mcp:admin"}}
	if status, m := basic(cc, id, "wrong"); status != 401 || m["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", status, m)
	}
	status, tok := basic(cc, id, secret)
	if status != 200 || tok["refresh_token"] != nil || tok["scope"] != "mcp:read mcp:tools" {
		t.Fatalf("client_credentials: %d %v", status, tok)
	}
	at := tok["access_token"].(string)
	if cl := e.claims(at); cl["sub"] != id || cl["aud"] != e.resource {
		t.Fatalf("claims: %v", cl)
	}
	introspect := func() map[string]any {
		req, _ := http.NewRequest("POST", e.ts.URL+"/oauth/introspect", strings.NewReader(url.Values{"token": {at}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	if m := introspect(); m["active"] != true || m["sub"] != id {
		t.Fatalf("introspect: %v", m)
	}
	req, _ := http.NewRequest("POST", e.ts.URL+"/oauth/revoke", strings.NewReader(url.Values{"token": {at}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if m := introspect(); m["active"] != false {
		t.Fatalf("revoked token still active: %v", m)
	}
	if revoked, _ := e.st.TokenRevoked(ctx, e.claims(at)["jti"].(string)); !revoked {
		t.Fatal("the jti is not on the revocation list")
	}
	// A public client may not use client_credentials.
	pub := e.register()
	if status, m, _ := e.tokenReq(url.Values{"grant_type": {"client_credentials"}, "client_id": {pub}}); status == 200 {
		t.Fatalf("public client_credentials: %v", m)
	}
}

func TestPagesAreSafe(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	p := newBrowser(t).get(e.authURL(cid, map[string]string{"state": `"><script>alert(1)</script>`}))
	csp := p.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self' http://127.0.0.1:9999") {
		t.Fatalf("CSP = %q", csp)
	}
	if strings.Contains(p.body, "<script>") || p.header.Get("X-Frame-Options") != "DENY" {
		t.Fatal("page is not safe")
	}
	var cookie string
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "mcpguard_oauth_txn=") {
			cookie = c
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(cookie, attr) {
			t.Fatalf("transaction cookie %q lacks %s", cookie, attr)
		}
	}
	secure := newEnv(t, func(c *oauth.Config) { c.SecureCookies = true })
	p = newBrowser(t).get(secure.authURL(secure.register(), nil))
	if sc := strings.Join(p.header.Values("Set-Cookie"), "\n"); !strings.Contains(sc, "__Host-mcpguard_oauth_txn=") || !strings.Contains(sc, "Secure") {
		t.Fatalf("secure cookies: %s", sc)
	}
	if slices.Contains(p.header.Values("Set-Cookie"), "") {
		t.Fatal("empty cookie")
	}
}

// A client registers with the scope of the first challenge; a later
// step-up to a larger scope must still be allowed (the TypeScript SDK does
// exactly this).
func TestDynamicClientCanStepUp(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := http.Post(e.ts.URL+"/oauth/register", "application/json", strings.NewReader(`{"redirect_uris":["`+redirect+`"],"scope":"mcp:read mcp:tools"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if reg["scope"] != "mcp:read mcp:tools mcp:admin" {
		t.Fatalf("registration response scope = %v", reg["scope"])
	}
	cid := reg["client_id"].(string)
	q := e.signIn(newBrowser(t), cid, "ann", map[string]string{"scope": "mcp:read mcp:tools mcp:admin"})
	if _, tok := e.exchange(cid, q.Get("code"), nil); tok["scope"] != "mcp:read mcp:tools mcp:admin" {
		t.Fatalf("step-up token scope = %v", tok["scope"])
	}
}
