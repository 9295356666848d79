package oauth_test

import (
	"context"
	"encoding/json"
	"github.com/mcpguard/mcpguard/store"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/authn/totp"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/oauth"
)

func TestNewValidatesConfig(t *testing.T) {
	st := openStore(t)
	good := func() oauth.Config {
		return oauth.Config{
			Issuer: "https://as.example", Resources: []string{"https://as.example/mcp"}, Store: st,
			Scopes: []oauth.Scope{{Name: "mcp:read", Role: "viewer"}}, HasRole: hasRole, Audit: &auditLog{},
			SessionKey: make([]byte, 32),
		}
	}
	if _, err := oauth.New(context.Background(), good()); err != nil {
		t.Fatalf("a good configuration was refused: %v", err)
	}
	for name, mutate := range map[string]func(*oauth.Config){
		"no store":            func(c *oauth.Config) { c.Store = nil },
		"no audit":            func(c *oauth.Config) { c.Audit = nil },
		"no HasRole":          func(c *oauth.Config) { c.HasRole = nil },
		"short session key":   func(c *oauth.Config) { c.SessionKey = make([]byte, 31) },
		"trailing slash":      func(c *oauth.Config) { c.Issuer = "https://as.example/" },
		"issuer query":        func(c *oauth.Config) { c.Issuer = "https://as.example?x=1" },
		"issuer not a URL":    func(c *oauth.Config) { c.Issuer = "as.example" },
		"no resources":        func(c *oauth.Config) { c.Resources = nil },
		"resource fragment":   func(c *oauth.Config) { c.Resources = []string{"https://as.example/mcp#x"} },
		"long code TTL":       func(c *oauth.Config) { c.CodeTTL = 61 * time.Second },
		"unknown default":     func(c *oauth.Config) { c.DefaultScopes = []string{"nope"} },
		"scope with a space":  func(c *oauth.Config) { c.Scopes = []oauth.Scope{{Name: "a b", Role: "viewer"}} },
		"scope without role":  func(c *oauth.Config) { c.Scopes = []oauth.Scope{{Name: "a"}} },
		"duplicate scope":     func(c *oauth.Config) { c.Scopes = append(c.Scopes, c.Scopes[0]) },
		"negative access TTL": func(c *oauth.Config) { c.AccessTokenTTL = -time.Second },
	} {
		c := good()
		mutate(&c)
		if _, err := oauth.New(context.Background(), c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	var docs []map[string]any
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		p := b.get(e.url(path))
		var m map[string]any
		if err := json.Unmarshal([]byte(p.body), &m); err != nil || p.status != 200 {
			t.Fatalf("%s: %d %v", path, p.status, err)
		}
		docs = append(docs, m)
		want := map[string]any{
			"issuer": e.issuer, "authorization_endpoint": e.issuer + "/oauth/authorize", "token_endpoint": e.issuer + "/oauth/token",
			"registration_endpoint": e.issuer + "/oauth/register", "revocation_endpoint": e.issuer + "/oauth/revoke",
			"introspection_endpoint": e.issuer + "/oauth/introspect", "jwks_uri": e.issuer + "/.well-known/jwks.json",
			"authorization_response_iss_parameter_supported": true, "client_id_metadata_document_supported": true,
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %v", path, k, m[k], v)
			}
		}
		for k, v := range map[string]string{
			"code_challenge_methods_supported":      `["S256"]`,
			"response_types_supported":              `["code"]`,
			"grant_types_supported":                 `["authorization_code","refresh_token","client_credentials"]`,
			"token_endpoint_auth_methods_supported": `["none","client_secret_basic","client_secret_post"]`,
			"scopes_supported":                      `["mcp:read","mcp:tools","mcp:admin","mfa"]`,
		} {
			if got, _ := json.Marshal(m[k]); string(got) != v {
				t.Errorf("%s: %s = %s, want %s", path, k, got, v)
			}
		}
	}
	if _, ok := docs[0]["subject_types_supported"]; ok {
		t.Error("the RFC 8414 document carries OIDC fields")
	}
	if got, _ := json.Marshal(docs[1]["id_token_signing_alg_values_supported"]); string(got) != `["ES256"]` || docs[1]["subject_types_supported"] == nil {
		t.Errorf("OIDC fields missing: %v", docs[1])
	}
	if m := e.srv.Metadata(); m.Issuer != e.issuer || !m.AuthorizationResponseIssParameterSupported {
		t.Errorf("Metadata() = %+v", m)
	}

	jwks := b.get(e.url("/.well-known/jwks.json"))
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks.body), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %s", jwks.body)
	}
	k := set.Keys[0]
	if k["kid"] == nil || k["alg"] != "ES256" || k["use"] != "sig" || k["crv"] != "P-256" || k["d"] != nil {
		t.Fatalf("JWK = %v", k)
	}
	if len(k["kid"].(string)) != 16 {
		t.Errorf("kid %q is not 16 hex digits", k["kid"])
	}
	if cc := jwks.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("JWKS Cache-Control = %q", cc)
	}
	if p := b.get(e.url("/oauth/nothing")); p.status != 404 {
		t.Errorf("unknown path: %d", p.status)
	}

	off := newEnv(t, func(c *oauth.Config) { c.DynamicRegistration, c.ClientIDMetadataDocuments = false, false })
	p := b.get(off.url("/.well-known/oauth-authorization-server"))
	if strings.Contains(p.body, "registration_endpoint") || strings.Contains(p.body, "client_id_metadata_document_supported") {
		t.Errorf("disabled features advertised: %s", p.body)
	}
}

func TestCodeFlowAndTokens(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	q := e.signIn(newBrowser(t), cid, "ann", nil)
	if q.Get("state") != "st-123" || q.Get("iss") != e.issuer || len(q.Get("code")) != 43 {
		t.Fatalf("callback = %v", q)
	}
	status, tok, hdr := e.tokenReq(url.Values{"grant_type": {"authorization_code"}, "client_id": {cid}, "code": {q.Get("code")},
		"code_verifier": {func() string { v, _ := pkce(); return v }()}, "redirect_uri": {redirect}, "resource": {e.resource}})
	if status != 200 || tok["token_type"] != "Bearer" || tok["refresh_token"] == nil || tok["scope"] != "mcp:read mcp:tools" || tok["expires_in"] != 900.0 {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Pragma") != "no-cache" {
		t.Fatalf("token response cacheable: %v", hdr)
	}
	c, h := e.verify(tok["access_token"].(string))
	if h.ExtraHeaders["typ"] != "at+jwt" || h.KeyID == "" || h.Algorithm != "ES256" {
		t.Fatalf("header = %+v", h)
	}
	if c["iss"] != e.issuer || c["sub"] != "ann" || c["aud"] != e.resource || c["client_id"] != cid || c["scope"] != "mcp:read mcp:tools" || c["jti"] == nil || c["nbf"] == nil {
		t.Fatalf("claims = %v", c)
	}
	if roles, _ := json.Marshal(c["roles"]); string(roles) != `["viewer","developer"]` {
		t.Fatalf("roles = %s: an admin asking mcp:read mcp:tools must get exactly those scopes' roles", roles)
	}
	if amr, _ := json.Marshal(c["amr"]); string(amr) != `["pwd"]` || c["auth_time"] != float64(e.clock().Unix()) {
		t.Fatalf("amr = %s, auth_time = %v", amr, c["auth_time"])
	}
	if exp := int64(c["exp"].(float64)) - int64(c["iat"].(float64)); exp != 900 {
		t.Fatalf("lifetime %d s, want 900", exp)
	}
	if !e.audit.has("oauth/token", guard.Allowed, "issued") || !e.audit.has("oauth/login", guard.Allowed, "") ||
		!e.audit.has("oauth/consent", guard.Allowed, "authorization code issued") {
		t.Fatal("the flow is not audited")
	}
	for _, r := range e.audit.find("oauth/login", guard.Allowed, "") {
		if r.Subject != "ann" || r.Transport != "http" || r.ClientAddr != "127.0.0.1" || r.Target != cid {
			t.Fatalf("login record = %+v", r)
		}
	}
}

func TestNothingSecretIsAudited(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	b := newBrowser(t)
	p := b.get(e.authURL(cid, nil))
	// Someone types their password into the username field.
	p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(t)}, "username": {pw}, "password": {"x"}})
	q := e.signIn(b, cid, "ann", nil)
	_, tok := e.exchange(cid, q.Get("code"), nil)
	_, tok2 := e.refresh(cid, tok["refresh_token"].(string))
	e.refresh(cid, tok["refresh_token"].(string)) // replay
	verifier, _ := pkce()
	e.audit.mustNotContain(t, pw, q.Get("code"), verifier, tok["access_token"].(string), tok["refresh_token"].(string),
		tok2["access_token"].(string), tok2["refresh_token"].(string), "0123456789abcdef")
	if r := e.audit.find("oauth/login", guard.AuthFailed, "unknown user"); len(r) != 1 || r[0].Subject != "" {
		t.Fatalf("unknown-user failure = %+v", r)
	}
}

func TestMFAFlow(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	tok := e.tokens(cid, "mfa", nil)
	c := e.claims(tok["access_token"].(string))
	if amr, _ := json.Marshal(c["amr"]); string(amr) != `["pwd","otp"]` {
		t.Fatalf("amr = %s", amr)
	}
	if !e.audit.has("oauth/mfa", guard.Allowed, "TOTP code accepted") {
		t.Fatal("MFA success not audited")
	}
}

func TestScopesNarrowedByRoles(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	tok := e.tokens(cid, "dev", map[string]string{"scope": "mcp:read mcp:admin"})
	c := e.claims(tok["access_token"].(string))
	if c["scope"] != "mcp:read" || tok["scope"] != "mcp:read" {
		t.Fatalf("a developer asking mcp:admin got scope %v / %v", c["scope"], tok["scope"])
	}
	if roles, _ := json.Marshal(c["roles"]); string(roles) != `["viewer"]` {
		t.Fatalf("roles = %s", roles)
	}
	// Default scopes when none is asked for.
	tok = e.tokens(cid, "ann", map[string]string{"scope": ""})
	if tok["scope"] != "mcp:read mcp:tools" {
		t.Fatalf("default scopes: %v", tok["scope"])
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	b := newBrowser(t)
	// Until client and redirect URI are validated: a page, never a redirect.
	for name, override := range map[string]map[string]string{
		"unknown client":        {"client_id": "nope"},
		"no client":             {"client_id": ""},
		"no redirect URI":       {"redirect_uri": ""},
		"wrong redirect URI":    {"redirect_uri": "https://evil.example/cb"},
		"redirect URI suffix":   {"redirect_uri": redirect + "/../evil"},
		"redirect URI fragment": {"redirect_uri": redirect + "#x"},
		"redirect URI query":    {"redirect_uri": redirect + "?x=1"},
		"localhost for 127":     {"redirect_uri": "http://localhost:9999/callback"},
		"http client_id":        {"client_id": "http://client.example/meta.json"},
	} {
		p := b.get(e.authURL(cid, override))
		if p.status != 400 || p.location != "" || !strings.Contains(p.body, "Sign-in problem") {
			t.Errorf("%s: %d location=%q", name, p.status, p.location)
		}
	}
	for _, extra := range []string{"&client_id=" + cid, "&resource=" + url.QueryEscape(e.resource), "&state=x"} {
		if p := b.get(e.authURL(cid, nil) + extra); p.status != 400 || p.location != "" {
			t.Errorf("repeated parameter %s: %d %q", extra, p.status, p.location)
		}
	}
	// After, for a dynamically registered client: still a page, since
	// anyone can register any redirect URI (no open redirector).
	if p := b.get(e.authURL(cid, map[string]string{"code_challenge_method": "plain"})); p.status != 400 || p.location != "" || !strings.Contains(p.body, "invalid_request") {
		t.Errorf("dynamic client error: %d location=%q", p.status, p.location)
	}
	// For a pre-registered client: an error redirect with state and iss.
	cid = "pre-registered-public"
	if err := e.st.CreateClient(context.Background(), &store.OAuthClient{ID: cid, Name: "Pre", RedirectURIs: []string{redirect},
		GrantTypes: []string{"authorization_code", "refresh_token"}, TokenEndpointAuthMethod: "none"}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		override map[string]string
		code     string
	}{
		"missing PKCE":     {map[string]string{"code_challenge": ""}, "invalid_request"},
		"plain PKCE":       {map[string]string{"code_challenge_method": "plain"}, "invalid_request"},
		"no PKCE method":   {map[string]string{"code_challenge_method": ""}, "invalid_request"},
		"short challenge":  {map[string]string{"code_challenge": "abc"}, "invalid_request"},
		"bad challenge":    {map[string]string{"code_challenge": strings.Repeat("+", 43)}, "invalid_request"},
		"no resource":      {map[string]string{"resource": ""}, "invalid_target"},
		"wrong resource":   {map[string]string{"resource": "https://other.example/mcp"}, "invalid_target"},
		"unknown scope":    {map[string]string{"scope": "mcp:read mcp:everything"}, "invalid_scope"},
		"token response":   {map[string]string{"response_type": "token"}, "unsupported_response_type"},
		"no response type": {map[string]string{"response_type": ""}, "invalid_request"},
		"fragment mode":    {map[string]string{"response_mode": "fragment"}, "invalid_request"},
		"request object":   {map[string]string{"request": "eyJ.x.y"}, "request_not_supported"},
		"silent prompt":    {map[string]string{"prompt": "none"}, "login_required"},
		"odd resource":     {map[string]string{"resource": e.resource + "/"}, "invalid_target"},
	} {
		p := b.get(e.authURL(cid, tc.override))
		u, _ := url.Parse(p.location)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, redirect+"?") || u.Query().Get("error") != tc.code ||
			u.Query().Get("state") != "st-123" || u.Query().Get("iss") != e.issuer || u.Query().Get("error_description") == "" {
			t.Errorf("%s: %d %q", name, p.status, p.location)
		}
	}
	// A state too long is refused and not echoed.
	p := b.get(e.authURL(cid, map[string]string{"state": strings.Repeat("s", 513)}))
	if u, _ := url.Parse(p.location); p.status != http.StatusSeeOther || u.Query().Get("error") != "invalid_request" || u.Query().Has("state") {
		t.Errorf("long state: %d %q", p.status, p.location)
	}
	if !e.audit.has("oauth/authorize", guard.Denied, "redirect_uri") || !e.audit.has("oauth/authorize", guard.Denied, "invalid_scope") {
		t.Fatal("refusals are not audited")
	}
}

// OAuth 2.1 §8.4.2 / RFC 8252 §7.3: a loopback IP redirect URI matches
// with any port, but nothing else about it may differ.
func TestLoopbackRedirectAnyPort(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	other := "http://127.0.0.1:51234/callback"
	q := e.signIn(newBrowser(t), cid, "ann", map[string]string{"redirect_uri": other})
	if status, tok := e.exchangeAt(cid, q.Get("code"), other); status != 200 {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	q = e.signIn(newBrowser(t), cid, "ann", map[string]string{"redirect_uri": other})
	if status, body := e.exchangeAt(cid, q.Get("code"), redirect); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("exchange with the registered port instead of the one used: %d %v", status, body)
	}
	b := newBrowser(t)
	for _, bad := range []string{"http://127.0.0.1:51234/other", "http://127.0.0.2:9999/callback", "https://127.0.0.1:9999/callback"} {
		if p := b.get(e.authURL(cid, map[string]string{"redirect_uri": bad})); p.status != 400 || p.location != "" {
			t.Errorf("%s: %d %q", bad, p.status, p.location)
		}
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
		"wrong verifier":       {map[string]string{"code_verifier": strings.Repeat("x", 43)}, "invalid_grant"},
		"short verifier":       {map[string]string{"code_verifier": "abc"}, "invalid_request"},
		"missing verifier":     {map[string]string{"code_verifier": ""}, "invalid_request"},
		"missing redirect URI": {map[string]string{"redirect_uri": ""}, "invalid_request"},
		"wrong redirect URI":   {map[string]string{"redirect_uri": "http://127.0.0.1:9999/other"}, "invalid_grant"},
		"wrong resource":       {map[string]string{"resource": "https://other.example/mcp"}, "invalid_target"},
		"another client":       {map[string]string{"client_id": other}, "invalid_grant"},
		"unknown code":         {map[string]string{"code": "nope"}, "invalid_grant"},
	} {
		status, body := e.exchange(cid, code(), tc.override)
		if status != 400 || body["error"] != tc.want || body["error_description"] == "" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	// A wrong verifier spends the code: it cannot be retried.
	c := code()
	e.exchange(cid, c, map[string]string{"code_verifier": strings.Repeat("y", 43)})
	if status, body := e.exchange(cid, c, nil); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("retry after a wrong verifier: %d %v", status, body)
	}
	// Expired (60 s).
	c = code()
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
	if status, body := e.exchange(cid, c, nil); status != 400 || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "reuse") {
		t.Fatalf("reused code: %d %v", status, body)
	}
	if status, body := e.refresh(cid, first["refresh_token"].(string)); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("the refresh token of a replayed code still works: %d %v", status, body)
	}
	jti := e.claims(first["access_token"].(string))["jti"].(string)
	if revoked, err := e.st.TokenRevoked(context.Background(), jti); err != nil || !revoked {
		t.Fatalf("the access token of a replayed code is not revoked: %v %v", revoked, err)
	}
	if !e.audit.has("oauth/token", guard.Denied, "authorization code reuse detected") {
		t.Fatal("code replay not audited")
	}
}

func TestTokenEndpointRequests(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	post := func(body, contentType string) (int, map[string]any) {
		resp, err := http.Post(e.url("/oauth/token"), contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	form := "application/x-www-form-urlencoded"
	for name, tc := range map[string]struct {
		body, ct string
		status   int
		code     string
	}{
		"JSON body":          {`{"grant_type":"refresh_token"}`, "application/json", 400, "invalid_request"},
		"repeated parameter": {"grant_type=refresh_token&grant_type=refresh_token&client_id=" + cid, form, 400, "invalid_request"},
		"no grant type":      {"client_id=" + cid, form, 400, "invalid_request"},
		"unknown grant":      {"grant_type=password&client_id=" + cid, form, 400, "unsupported_grant_type"},
		"not the client's":   {"grant_type=client_credentials&client_id=" + cid, form, 400, "unauthorized_client"},
		"unknown client":     {"grant_type=refresh_token&refresh_token=x&client_id=nope", form, 401, "invalid_client"},
		"public with secret": {"grant_type=refresh_token&refresh_token=x&client_secret=s&client_id=" + cid, form, 401, "invalid_client"},
		"no client":          {"grant_type=refresh_token&refresh_token=x", form, 401, "invalid_client"},
		"oversized body":     {"grant_type=refresh_token&client_id=" + cid + "&x=" + strings.Repeat("a", 70<<10), form, 400, "invalid_request"},
	} {
		if status, m := post(tc.body, tc.ct); status != tc.status || m["error"] != tc.code || m["error_description"] == nil {
			t.Errorf("%s: %d %v", name, status, m)
		}
	}
	if !e.audit.has("oauth/token", guard.AuthFailed, "client authentication failed") {
		t.Fatal("client authentication failures are not audited")
	}
	// A public client may name itself with HTTP Basic and an empty
	// password (x/oauth2 tries that first), but not with a password.
	tok := e.tokens(cid, "ann", nil)
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}
	if status, m, _ := e.postForm("/oauth/token", refresh, cid, "guess"); status != 401 {
		t.Fatalf("public client with a Basic password: %d %v", status, m)
	}
	if status, m, _ := e.postForm("/oauth/token", refresh, cid, ""); status != 200 {
		t.Fatalf("public client with Basic and no password: %d %v", status, m)
	}
}

func TestRefreshRotationAndReplay(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	tok := e.tokens(cid, "ann", map[string]string{"scope": "mcp:read mcp:tools"})
	r1 := tok["refresh_token"].(string)
	status, tok2 := e.refresh(cid, r1)
	r2, _ := tok2["refresh_token"].(string)
	if status != 200 || r2 == "" || r2 == r1 || tok2["access_token"] == nil || tok2["scope"] != "mcp:read mcp:tools" {
		t.Fatalf("refresh: %d %v", status, tok2)
	}
	// A narrower scope is fine, for that access token only; a wider one,
	// another resource or another client are not.
	status, narrow, _ := e.tokenReq(url.Values{"grant_type": {"refresh_token"}, "client_id": {cid}, "refresh_token": {r2}, "scope": {"mcp:read"}})
	if status != 200 || narrow["scope"] != "mcp:read" || e.claims(narrow["access_token"].(string))["scope"] != "mcp:read" {
		t.Fatalf("narrowing refresh: %d %v", status, narrow)
	}
	r3 := narrow["refresh_token"].(string)
	for name, form := range map[string]url.Values{
		"wider scope":    {"scope": {"mcp:read mcp:admin"}},
		"other resource": {"resource": {"https://other.example/mcp"}},
		"other client":   {"client_id": {e.register()}},
	} {
		f := url.Values{"grant_type": {"refresh_token"}, "client_id": {cid}, "refresh_token": {r3}}
		for k, v := range form {
			f[k] = v
		}
		if status, body, _ := e.tokenReq(f); status != 400 {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	// The refresh token kept the original scope (RFC 6749 §6). Empty
	// parameters count as absent (§3.1).
	status, tok4, _ := e.tokenReq(url.Values{"grant_type": {"refresh_token"}, "client_id": {cid}, "refresh_token": {r3}, "scope": {""}, "resource": {""}})
	if status != 200 || tok4["scope"] != "mcp:read mcp:tools" {
		t.Fatalf("refresh after narrowing: %d %v", status, tok4)
	}
	// Replay r1: refused, and the family (the newest token too) is revoked.
	if status, body := e.refresh(cid, r1); status != 400 || body["error"] != "invalid_grant" ||
		body["error_description"] != "refresh token reuse detected; the token family is revoked" {
		t.Fatalf("replay: %d %v", status, body)
	}
	if status, _ := e.refresh(cid, tok4["refresh_token"].(string)); status != 400 {
		t.Fatal("the newest refresh token survived a replay of an older one")
	}
	if !e.audit.has("oauth/token", guard.Denied, "reuse detected") {
		t.Fatal("the replay was not audited")
	}
	// Expiry (30 days by default, per token).
	tok = e.tokens(cid, "ann", nil)
	e.advance(30*24*time.Hour + time.Second)
	if status, body := e.refresh(cid, tok["refresh_token"].(string)); status != 400 || !strings.Contains(body["error_description"].(string), "expired") {
		t.Fatalf("expired refresh token: %d %v", status, body)
	}
}

// Roles are recomputed from the user as stored at each refresh.
func TestRefreshFollowsTheUser(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	cid := e.register()
	tok := e.tokens(cid, "ann", map[string]string{"scope": "mcp:read mcp:tools mcp:admin"})
	if tok["scope"] != "mcp:read mcp:tools mcp:admin" {
		t.Fatalf("scope = %v", tok["scope"])
	}
	u, _ := e.st.GetUser(ctx, "ann")
	u.Roles = []string{"viewer"}
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	status, tok2 := e.refresh(cid, tok["refresh_token"].(string))
	if status != 200 || tok2["scope"] != "mcp:read" {
		t.Fatalf("refresh after a demotion: %d %v", status, tok2)
	}
	if roles, _ := json.Marshal(e.claims(tok2["access_token"].(string))["roles"]); string(roles) != `["viewer"]` {
		t.Fatalf("roles after a demotion = %s", roles)
	}
	if err := e.st.DeleteUser(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	if status, body := e.refresh(cid, tok2["refresh_token"].(string)); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("refresh for a deleted user: %d %v", status, body)
	}
}

func TestConsentCSRFAndOrigin(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	b := newBrowser(t)
	p := e.login(b, cid, "ann", nil)
	if !p.is("consent") {
		t.Fatalf("no consent page: %s", p.body)
	}
	token := p.csrf(t)
	for name, form := range map[string]url.Values{
		"no token":    {"decision": {"allow"}},
		"wrong token": {"decision": {"allow"}, "csrf_token": {"x" + token}},
		"two tokens":  {"decision": {"allow"}, "csrf_token": {token, token}},
	} {
		if p := b.post(e.url("/oauth/consent"), form); p.status != 403 || p.location != "" {
			t.Errorf("%s: %d %q", name, p.status, p.location)
		}
	}
	// Another browser (no transaction cookie) with a stolen token.
	if p := newBrowser(t).post(e.url("/oauth/consent"), url.Values{"decision": {"allow"}, "csrf_token": {token}}); p.status != 403 || p.location != "" {
		t.Errorf("no cookie: %d %q", p.status, p.location)
	}
	// Cross-origin posts.
	for name, h := range map[string]map[string]string{
		"other origin": {"Origin": "https://evil.example"},
		"null origin":  {"Origin": "null"},
		"cross-site":   {"Sec-Fetch-Site": "cross-site"},
	} {
		if p := b.postWith(e.url("/oauth/consent"), url.Values{"decision": {"allow"}, "csrf_token": {token}}, h); p.status != 403 || p.location != "" {
			t.Errorf("%s: %d %q", name, p.status, p.location)
		}
	}
	if !e.audit.has("oauth/consent", guard.Denied, "CSRF") || !e.audit.has("oauth/consent", guard.Denied, "cross-origin") {
		t.Fatal("the CSRF refusals were not audited")
	}
	// The genuine form still works, with a same-origin Origin.
	p = b.postWith(e.url("/oauth/consent"), url.Values{"decision": {"allow"}, "csrf_token": {token}}, map[string]string{"Origin": e.ts.URL, "Sec-Fetch-Site": "same-origin"})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, redirect+"?code=") {
		t.Fatalf("genuine consent: %d %q", p.status, p.location)
	}
	// The transaction is over: the same form cannot be posted again.
	if p := b.post(e.url("/oauth/consent"), url.Values{"decision": {"allow"}, "csrf_token": {token}}); p.status != 403 {
		t.Fatalf("consent replayed: %d", p.status)
	}
	if p := newBrowser(t).post(e.url("/oauth/login"), url.Values{"username": {"ann"}, "password": {pw}}); p.status != 403 {
		t.Fatalf("login without a transaction: %d", p.status)
	}
}

func TestConsentDenied(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	b := newBrowser(t)
	p := e.login(b, cid, "ann", nil)
	p = b.post(e.url("/oauth/consent"), url.Values{"csrf_token": {p.csrf(t)}, "decision": {"deny"}})
	u, _ := url.Parse(p.location)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, redirect+"?") || u.Query().Get("error") != "access_denied" ||
		u.Query().Get("state") != "st-123" || u.Query().Get("iss") != e.issuer || u.Query().Has("code") {
		t.Fatalf("deny: %d %q", p.status, p.location)
	}
	if !e.audit.has("oauth/consent", guard.Denied, "denied") {
		t.Fatal("denial not audited")
	}
}

func TestLoginSession(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	cid := e.register()
	b := newBrowser(t)
	e.signIn(b, cid, "ann", nil)
	// Signed in and consented: straight back with a code.
	p := b.get(e.authURL(cid, nil))
	if p.status != http.StatusSeeOther || !strings.Contains(p.location, "code=") {
		t.Fatalf("second authorization: %d %q", p.status, p.location)
	}
	// More scopes: consent again, no password.
	p = b.get(e.authURL(cid, map[string]string{"scope": "mcp:read mcp:admin"}))
	if p.status != 200 || !p.is("consent") || !strings.Contains(p.body, "mcp:admin") {
		t.Fatalf("new scope: %d %s", p.status, p.body)
	}
	// prompt=consent and prompt=login are honoured.
	if p := b.get(e.authURL(cid, map[string]string{"prompt": "consent"})); !p.is("consent") {
		t.Fatalf("prompt=consent: %d %q", p.status, p.location)
	}
	if p := b.get(e.authURL(cid, map[string]string{"prompt": "login"})); !p.is("login") {
		t.Fatalf("prompt=login: %d %q", p.status, p.location)
	}
	// Another client needs its own consent.
	if p := b.get(e.authURL(e.register(), nil)); !p.is("consent") {
		t.Fatalf("another client: %d %q", p.status, p.location)
	}
	// A password change ends the session.
	u, _ := e.st.GetUser(ctx, "ann")
	u.PasswordHash, _ = password.Hash(pw + "!")
	e.st.UpdateUser(ctx, u)
	if p := b.get(e.authURL(cid, nil)); !p.is("login") {
		t.Fatalf("after a password change: %d %q", p.status, p.location)
	}
	// The session lasts 12 hours from the password, however it is used.
	u.PasswordHash, _ = password.Hash(pw)
	e.st.UpdateUser(ctx, u)
	b = newBrowser(t)
	e.signIn(b, cid, "ann", nil)
	e.advance(11 * time.Hour)
	if p := b.get(e.authURL(cid, nil)); p.status != http.StatusSeeOther {
		t.Fatalf("after 11 h: %d", p.status)
	}
	e.advance(time.Hour + time.Second)
	if p := b.get(e.authURL(cid, nil)); !p.is("login") {
		t.Fatalf("after 12 h: %d %q", p.status, p.location)
	}
}

func TestLoginFailuresLockOut(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.Login = oauth.LoginPolicy{MaxFailures: 3, LockFor: time.Minute} })
	cid := e.register()
	b := newBrowser(t)
	p := b.get(e.authURL(cid, nil))
	msgs := map[bool]bool{}
	for _, user := range []string{"ann", "ann", "nobody", "ann"} {
		p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(t)}, "username": {user}, "password": {"wrong password"}})
		if p.status != 401 {
			t.Fatalf("wrong password: %d", p.status)
		}
		msgs[strings.Contains(p.body, "Invalid username or password.")] = true
	}
	if len(msgs) != 1 || !msgs[true] {
		t.Fatal("failures for unknown and known users are told apart")
	}
	// Locked: even the right password fails now, with the same message.
	p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(t)}, "username": {"ann"}, "password": {pw}})
	if p.status != 401 || !strings.Contains(p.body, "Invalid username or password.") || p.is("consent") {
		t.Fatalf("locked account signed in: %d", p.status)
	}
	if !e.audit.has("oauth/login", guard.AuthFailed, "account locked") {
		t.Fatal("the lockout is not audited")
	}
	e.advance(2 * time.Minute)
	if q := e.signIn(newBrowser(t), cid, "ann", nil); q.Get("code") == "" {
		t.Fatal("the lockout did not end")
	}
}

// sourceLockout is a guard.Lockout that locks a source after n failures.
type sourceLockout struct {
	mu       sync.Mutex
	n        int
	failures map[string]int
}

func (l *sourceLockout) Locked(_ context.Context, source string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Minute, l.failures[source] >= l.n
}

func (l *sourceLockout) Failure(_ context.Context, source string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[source]++
	return time.Minute, l.failures[source] >= l.n
}

func (l *sourceLockout) count(source string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[source]
}

func TestSourceLockout(t *testing.T) {
	lock := &sourceLockout{n: 2, failures: map[string]int{}}
	e := newEnv(t, func(c *oauth.Config) { c.Lockout = lock })
	cid := e.register()
	b := newBrowser(t)
	p := b.get(e.authURL(cid, nil))
	for _, user := range []string{"nobody", "dev"} {
		p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(t)}, "username": {user}, "password": {"nope"}})
	}
	if n := lock.count("127.0.0.1"); n != 2 {
		t.Fatalf("failures from the source = %d", n)
	}
	p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(t)}, "username": {"ann"}, "password": {pw}})
	if p.status != 401 || !strings.Contains(p.body, "Too many failed attempts") {
		t.Fatalf("locked source signed in: %d", p.status)
	}
}

func TestMFARefusals(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.Login = oauth.LoginPolicy{MaxFailures: 100, MaxMFAAttempts: 3} })
	cid := e.register()
	// A first sign-in uses the current code.
	if q := e.signIn(newBrowser(t), cid, "mfa", nil); q.Get("code") == "" {
		t.Fatal("MFA sign-in failed")
	}
	b := newBrowser(t)
	p := e.login(b, cid, "mfa", nil)
	if !p.is("mfa") {
		t.Fatalf("no MFA page: %s", p.body)
	}
	// Consent cannot be reached without MFA.
	if q := b.post(e.url("/oauth/consent"), url.Values{"csrf_token": {p.csrf(t)}, "decision": {"allow"}}); q.status != 403 || q.location != "" {
		t.Fatalf("consent before MFA: %d %q", q.status, q.location)
	}
	// The code used by the first sign-in is refused (same time step).
	used, _ := totp.GenerateCode(e.mfaKey, e.clock())
	p = b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {p.csrf(t)}, "code": {used}})
	if p.status != 401 || !e.audit.has("oauth/mfa", guard.AuthFailed, "replayed") {
		t.Fatalf("replayed TOTP code: %d", p.status)
	}
	p = b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {p.csrf(t)}, "code": {"000000"}})
	if p.status != 401 {
		t.Fatalf("wrong code: %d", p.status)
	}
	token := p.csrf(t)
	base, _ := url.Parse(e.url("/"))
	saved := b.c.Jar.Cookies(base) // the transaction cookie, two failures in
	// The third failure ends the transaction.
	p = b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {token}, "code": {"abcdefghijkl"}})
	if p.status != 403 {
		t.Fatalf("third wrong code: %d", p.status)
	}
	e.advance(30 * time.Second)
	good, _ := totp.GenerateCode(e.mfaKey, e.clock())
	if p := b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {token}, "code": {good}}); p.status != 403 {
		t.Fatalf("MFA after the attempt limit: %d", p.status)
	}
	// Replaying the older cookie gains no attempt either.
	b.c.Jar.SetCookies(base, saved)
	if p := b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {token}, "code": {good}}); p.status != 403 || p.is("consent") {
		t.Fatalf("MFA with a replayed transaction cookie: %d", p.status)
	}
	if !e.audit.has("oauth/mfa", guard.AuthFailed, "3 of 3") {
		t.Fatal("MFA failures are not audited with their count")
	}
}

// Wrong MFA codes count toward the user's lockout too, across sign-ins: a
// correct password does not reset the count before MFA is passed.
func TestMFAFailuresLockTheAccount(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) {
		c.Login = oauth.LoginPolicy{MaxFailures: 3, LockFor: time.Hour, MaxMFAAttempts: 2}
	})
	cid := e.register()
	wrong := func(b *browser, p page) page {
		t.Helper()
		if !p.is("mfa") {
			t.Fatalf("no MFA page: %d %s", p.status, p.body)
		}
		return b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {p.csrf(t)}, "code": {"123456"}})
	}
	// First sign-in: two wrong codes end it.
	b := newBrowser(t)
	p := wrong(b, e.login(b, cid, "mfa", nil))
	if p = wrong(b, p); p.status != 403 {
		t.Fatalf("second wrong code: %d", p.status)
	}
	// Second sign-in: the password is right, one more wrong code locks.
	b = newBrowser(t)
	wrong(b, e.login(b, cid, "mfa", nil))
	if !e.audit.has("oauth/mfa", guard.AuthFailed, "account locked until") {
		t.Fatal("the lockout is not audited")
	}
	b = newBrowser(t)
	p = b.get(e.authURL(cid, nil))
	p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(t)}, "username": {"mfa"}, "password": {pw}})
	if p.status != 401 || p.is("mfa") {
		t.Fatalf("locked account reached MFA: %d", p.status)
	}
}

func TestBackupCodeSingleUse(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	codes, hashes, err := totp.NewBackupCodes(2)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := e.st.GetUser(ctx, "mfa")
	u.BackupCodes = hashes
	e.st.UpdateUser(ctx, u)
	cid := e.register()
	try := func(code string) page {
		b := newBrowser(t)
		p := e.login(b, cid, "mfa", nil)
		return b.post(e.url("/oauth/mfa"), url.Values{"csrf_token": {p.csrf(t)}, "code": {code}})
	}
	if p := try(strings.ToUpper(codes[0])); !p.is("consent") {
		t.Fatalf("backup code refused: %d %s", p.status, p.body)
	}
	if p := try(codes[0]); p.status != 401 {
		t.Fatalf("backup code worked twice: %d", p.status)
	}
	if p := try(codes[1]); !p.is("consent") {
		t.Fatalf("second backup code refused: %d", p.status)
	}
	if !e.audit.has("oauth/mfa", guard.Allowed, "backup code accepted") {
		t.Fatal("backup code use not audited")
	}
}

func TestClientIDMetadataDocuments(t *testing.T) {
	cs := newCIMDServer(t)
	id := cs.ts.URL + "/client.json"
	good := map[string]any{"client_id": id, "client_name": "CIMD client", "redirect_uris": []string{redirect}}

	t.Run("private address refused", func(t *testing.T) {
		e := newEnv(t, nil) // the default fetcher, AllowPrivateCIMD false
		cs.set(good)
		before := cs.hits.Load()
		p := newBrowser(t).get(e.authURL(id, nil))
		if p.status != 400 || p.location != "" || !strings.Contains(p.body, "non-public address") || cs.hits.Load() != before {
			t.Fatalf("%d hits=%d %s", p.status, cs.hits.Load()-before, p.body)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		e := newEnv(t, func(c *oauth.Config) { c.ClientIDMetadataDocuments = false })
		if p := newBrowser(t).get(e.authURL(id, nil)); p.status != 400 || p.location != "" {
			t.Fatalf("%d %q", p.status, p.location)
		}
	})
	e := newEnv(t, func(c *oauth.Config) { c.CIMDClient = cs.client() })
	for name, tc := range map[string]struct {
		doc  map[string]any
		ct   string
		want string
	}{
		"mismatched client_id": {map[string]any{"client_id": id + "x", "client_name": "x", "redirect_uris": []string{redirect}}, "", "does not equal its URL"},
		"no client_name":       {map[string]any{"client_id": id, "redirect_uris": []string{redirect}}, "", "no client_name"},
		"no redirect_uris":     {map[string]any{"client_id": id, "client_name": "x"}, "", "no redirect_uris"},
		"confidential":         {map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{redirect}, "token_endpoint_auth_method": "client_secret_basic"}, "", "must be none"},
		"http redirect":        {map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"http://evil.example/cb"}}, "", "https"},
		"not JSON":             {good, "text/html", "application/json"},
		"missing":              {nil, "", "HTTP 404"},
	} {
		t.Run(name, func(t *testing.T) {
			cs.set(tc.doc)
			cs.mu.Lock()
			cs.contentType = "application/json"
			if tc.ct != "" {
				cs.contentType = tc.ct
			}
			cs.mu.Unlock()
			u := id + "?case=" + url.QueryEscape(name) // a fresh cache entry
			doc := map[string]any{}
			for k, v := range tc.doc {
				doc[k] = v
			}
			if doc["client_id"] == id {
				doc["client_id"] = u
			}
			if tc.doc != nil {
				cs.set(doc)
			}
			p := newBrowser(t).get(e.authURL(u, nil))
			if p.status != 400 || p.location != "" || !strings.Contains(p.body, tc.want) {
				t.Fatalf("%d %q %s", p.status, p.location, p.body)
			}
		})
	}
	cs.mu.Lock()
	cs.contentType = "application/json"
	cs.mu.Unlock()
	t.Run("valid document", func(t *testing.T) {
		cs.set(good)
		before := cs.hits.Load()
		b := newBrowser(t)
		p := e.login(b, id, "ann", nil)
		if !p.is("consent") || !strings.Contains(p.body, "CIMD client") || !strings.Contains(p.body, id) {
			t.Fatalf("consent: %d %s", p.status, p.body)
		}
		if !strings.Contains(p.body, `class="warning"`) {
			t.Fatal("no warning for a URL client that only redirects to loopback")
		}
		p = b.post(e.url("/oauth/consent"), url.Values{"csrf_token": {p.csrf(t)}, "decision": {"allow"}})
		q := e.callback(p, nil)
		if status, tok := e.exchange(id, q.Get("code"), nil); status != 200 || tok["access_token"] == nil || tok["refresh_token"] == nil {
			t.Fatalf("exchange: %d %v", status, tok)
		}
		if n := cs.hits.Load() - before; n != 1 {
			t.Fatalf("the document was fetched %d times; it should be cached", n)
		}
		// Signed in and consented before: a loopback-only URL client is
		// still confirmed, with the warning, since a local program could
		// be impersonating it.
		if p := b.get(e.authURL(id, nil)); !p.is("consent") || !strings.Contains(p.body, `class="warning"`) {
			t.Fatalf("second authorization of a loopback URL client: %d %q", p.status, p.location)
		}
	})
	t.Run("public only", func(t *testing.T) {
		if status, m, _ := e.tokenReq(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}}); status != 400 || m["error"] != "unauthorized_client" {
			t.Fatalf("client_credentials for a CIMD client: %d %v", status, m)
		}
	})
}

func TestDynamicRegistration(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.MaxDynamicClients = 3 })
	for name, body := range map[string]string{
		"http redirect":   `{"redirect_uris":["http://app.example/cb"]}`,
		"fragment":        `{"redirect_uris":["https://app.example/cb#x"]}`,
		"no redirects":    `{"client_name":"x"}`,
		"relative":        `{"redirect_uris":["/cb"]}`,
		"custom scheme":   `{"redirect_uris":["myapp://cb"]}`,
		"implicit grant":  `{"redirect_uris":["https://app.example/cb"],"grant_types":["implicit"]}`,
		"client creds":    `{"redirect_uris":["https://app.example/cb"],"grant_types":["client_credentials"]}`,
		"token response":  `{"redirect_uris":["https://app.example/cb"],"response_types":["token"]}`,
		"private_key_jwt": `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`,
		"long name":       `{"redirect_uris":["https://app.example/cb"],"client_name":"` + strings.Repeat("é", 201) + `"}`,
		"unknown scope":   `{"redirect_uris":["https://app.example/cb"],"scope":"mcp:everything"}`,
		"client_id given": `{"redirect_uris":["https://app.example/cb"],"client_id":"mine"}`,
		"not json":        `redirect_uris=x`,
		"two objects":     `{"redirect_uris":["https://app.example/cb"]}{}`,
	} {
		resp, err := http.Post(e.url("/oauth/register"), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 400 || (m["error"] != "invalid_client_metadata" && m["error"] != "invalid_redirect_uri") {
			t.Errorf("%s: %d %v", name, resp.StatusCode, m)
		}
	}
	if !e.audit.has("oauth/register", guard.Denied, "invalid_redirect_uri") {
		t.Error("refused registrations are not audited")
	}
	resp, _ := http.Post(e.url("/oauth/register"), "text/plain", strings.NewReader(`{"redirect_uris":["https://app.example/cb"]}`))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("text/plain registration: %d", resp.StatusCode)
	}
	// A public client, the MCP default; its name is cleaned.
	status, m := e.registerJSON(map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "client_name": "Good\u202eevil\u200b App"})
	if status != 201 || m["client_secret"] != nil || m["token_endpoint_auth_method"] != "none" || m["client_name"] != "Goodevil App" {
		t.Fatalf("public registration: %d %v", status, m)
	}
	if got, _ := json.Marshal(m["grant_types"]); string(got) != `["authorization_code","refresh_token"]` {
		t.Errorf("grant_types = %s", got)
	}
	// A confidential one gets a secret, stored only as a digest.
	status, m = e.registerJSON(map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "token_endpoint_auth_method": "client_secret_post", "client_name": "Conf"})
	if status != 201 || m["client_secret"] == nil || m["client_id"] == nil || m["client_secret_expires_at"] != 0.0 {
		t.Fatalf("confidential registration: %d %v", status, m)
	}
	c, err := e.st.GetClient(context.Background(), m["client_id"].(string))
	if err != nil || len(c.SecretHash) != 32 || strings.Contains(string(c.SecretHash), m["client_secret"].(string)) || !c.Dynamic {
		t.Fatalf("stored client = %+v, %v", c, err)
	}
	// The limit.
	e.register()
	if status, m := e.registerJSON(map[string]any{"redirect_uris": []string{"https://app.example/cb"}}); status != 403 {
		t.Fatalf("registration beyond the limit: %d %v", status, m)
	}
	if !e.audit.has("oauth/register", guard.Denied, "limit") || !e.audit.has("oauth/register", guard.Allowed, "registered") {
		t.Error("registrations are not audited")
	}
	off := newEnv(t, func(c *oauth.Config) { c.DynamicRegistration = false })
	resp, _ = http.Post(off.url("/oauth/register"), "application/json", strings.NewReader(`{"redirect_uris":["https://a.example/cb"]}`))
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("registration while disabled: %d", resp.StatusCode)
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, nil)
	id, secret := e.confidential("client_secret_basic", "developer")
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"mcp:read mcp:tools mcp:admin"}}
	if status, m, h := e.postForm("/oauth/token", cc, id, "wrong"); status != 401 || m["error"] != "invalid_client" || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("wrong secret: %d %v", status, m)
	}
	if status, m, _ := e.postForm("/oauth/token", cc, "nobody", secret); status != 401 {
		t.Fatalf("unknown client: %d %v", status, m)
	}
	// Basic and a different client_id in the body.
	mixed := url.Values{"grant_type": {"client_credentials"}, "client_id": {"other"}}
	if status, _, _ := e.postForm("/oauth/token", mixed, id, secret); status != 401 {
		t.Fatalf("mismatched client ids: %d", status)
	}
	status, tok, _ := e.postForm("/oauth/token", cc, id, secret)
	if status != 200 || tok["refresh_token"] != nil || tok["scope"] != "mcp:read mcp:tools" {
		t.Fatalf("client_credentials: %d %v", status, tok)
	}
	c := e.claims(tok["access_token"].(string))
	if c["sub"] != "client:"+id || c["client_id"] != id || c["aud"] != e.resource || c["amr"] != nil || c["auth_time"] != nil {
		t.Fatalf("claims: %v", c)
	}
	if roles, _ := json.Marshal(c["roles"]); string(roles) != `["viewer","developer"]` {
		t.Fatalf("roles = %s", roles)
	}
	// client_secret_post works too; an unknown scope does not.
	post := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {"mcp:read"}}
	if status, tok, _ := e.tokenReq(post); status != 200 || tok["scope"] != "mcp:read" {
		t.Fatalf("client_secret_post: %d %v", status, tok)
	}
	post.Set("scope", "mcp:nope")
	if status, m, _ := e.tokenReq(post); status != 400 || m["error"] != "invalid_scope" {
		t.Fatalf("unknown scope: %d %v", status, m)
	}
	post.Set("scope", "mcp:admin")
	if status, m, _ := e.tokenReq(post); status != 400 || m["error"] != "invalid_scope" {
		t.Fatalf("a scope beyond the client's roles: %d %v", status, m)
	}
	// A public client may not use client_credentials.
	if status, m, _ := e.tokenReq(url.Values{"grant_type": {"client_credentials"}, "client_id": {e.register()}}); status != 400 || m["error"] != "unauthorized_client" {
		t.Fatalf("public client_credentials: %d %v", status, m)
	}
}

func TestRevocationAndIntrospection(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	id, secret := e.confidential("client_secret_basic", "developer")
	otherID, otherSecret := e.confidential("client_secret_post", "viewer")
	_, tok, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, id, secret)
	at := tok["access_token"].(string)
	introspect := func(token, user, pass string) map[string]any {
		status, m, h := e.postForm("/oauth/introspect", url.Values{"token": {token}}, user, pass)
		if status != 200 || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("introspect: %d %v", status, m)
		}
		return m
	}
	if m := introspect(at, id, secret); m["active"] != true || m["sub"] != "client:"+id || m["client_id"] != id || m["aud"] == nil || m["scope"] != "mcp:read mcp:tools" {
		t.Fatalf("introspect: %v", m)
	}
	if m := introspect(at, otherID, otherSecret); m["active"] != false || len(m) != 1 {
		t.Fatalf("another client introspected the token: %v", m)
	}
	if m := introspect("garbage", id, secret); m["active"] != false {
		t.Fatalf("garbage: %v", m)
	}
	if status, _, _ := e.postForm("/oauth/introspect", url.Values{"token": {at}, "client_id": {e.register()}}, "", ""); status != 401 {
		t.Fatalf("a public client introspected: %d", status)
	}
	// Revocation by another client does nothing (and says nothing).
	if status, _, _ := e.postForm("/oauth/revoke", url.Values{"token": {at}}, otherID, otherSecret); status != 200 {
		t.Fatalf("foreign revoke: %d", status)
	}
	if m := introspect(at, id, secret); m["active"] != true {
		t.Fatal("another client revoked the token")
	}
	if status, _, _ := e.postForm("/oauth/revoke", url.Values{"token": {at}}, id, secret); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if m := introspect(at, id, secret); m["active"] != false {
		t.Fatalf("revoked token still active: %v", m)
	}
	if revoked, _ := e.st.TokenRevoked(ctx, e.claims(at)["jti"].(string)); !revoked {
		t.Fatal("the jti is not on the revocation list")
	}
	if status, _, _ := e.postForm("/oauth/revoke", url.Values{"token": {"unknown-token"}}, id, secret); status != 200 {
		t.Fatalf("unknown token: %d", status)
	}
	if status, _, _ := e.postForm("/oauth/revoke", url.Values{"token": {at}}, id, "wrong"); status != 401 {
		t.Fatalf("revoke with a wrong secret: %d", status)
	}
	// A refresh token: introspected, then its family revoked by a public
	// client.
	pub := e.register()
	user := e.tokens(pub, "ann", nil)
	rt := user["refresh_token"].(string)
	if status, _, _ := e.postForm("/oauth/revoke", url.Values{"token": {rt}, "client_id": {pub}}, "", ""); status != 200 {
		t.Fatalf("revoke refresh token: %d", status)
	}
	if status, body := e.refresh(pub, rt); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("a revoked refresh token works: %d %v", status, body)
	}
	if !e.audit.has("oauth/revoke", guard.Allowed, "family revoked") || !e.audit.has("oauth/revoke", guard.Allowed, "access token") {
		t.Fatal("revocations are not audited")
	}
}

func TestPagesAreSafe(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	p := newBrowser(t).get(e.authURL(cid, map[string]string{"state": `"><script>alert(1)</script>`}))
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "form-action 'self' http://127.0.0.1:9999;", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(p.body, "<script") || strings.Contains(p.body, "style=") || p.header.Get("X-Frame-Options") != "DENY" ||
		p.header.Get("Cache-Control") != "no-store" || !strings.Contains(p.body, `<html lang="en">`) {
		t.Fatal("page is not safe")
	}
	for _, want := range []string{`autocomplete="username"`, `autocomplete="current-password"`, `<label for="username">`, `<label for="password">`, "Test client", "127.0.0.1:9999"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the login page lacks %s", want)
		}
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
	if strings.Contains(cookie, "Secure") {
		t.Fatal("Secure cookie without SecureCookies")
	}
	css := newBrowser(t).get(e.url("/oauth/static/style.css"))
	if css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Fatalf("stylesheet: %d %s", css.status, css.header.Get("Content-Type"))
	}
	secure := newEnv(t, func(c *oauth.Config) { c.SecureCookies = true })
	p = newBrowser(t).get(secure.authURL(secure.register(), nil))
	if sc := strings.Join(p.header.Values("Set-Cookie"), "\n"); !strings.Contains(sc, "__Host-mcpguard_oauth_txn=") || !strings.Contains(sc, "Secure") {
		t.Fatalf("secure cookies: %s", sc)
	}
}

// An issuer with a path serves everything under it, and the RFC 8414
// metadata at the path-inserted well-known URL.
func TestIssuerWithPath(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.Issuer += "/t1" })
	b := newBrowser(t)
	p := b.get(e.ts.URL + "/.well-known/oauth-authorization-server/t1")
	var m map[string]any
	if json.Unmarshal([]byte(p.body), &m) != nil || m["issuer"] != e.ts.URL+"/t1" || m["token_endpoint"] != e.ts.URL+"/t1/oauth/token" {
		t.Fatalf("metadata: %d %s", p.status, p.body)
	}
	if p := b.get(e.ts.URL + "/t1/.well-known/openid-configuration"); p.status != 200 {
		t.Fatalf("OIDC discovery: %d", p.status)
	}
	cid := e.register()
	p = b.get(e.authURL(cid, nil))
	if !strings.Contains(p.body, `action="/t1/oauth/login"`) || !strings.Contains(p.body, `href="/t1/oauth/static/style.css"`) {
		t.Fatalf("page paths: %s", p.body)
	}
	tok := e.tokens(cid, "ann", nil)
	if c := e.claims(tok["access_token"].(string)); c["iss"] != e.ts.URL+"/t1" {
		t.Fatalf("iss = %v", c["iss"])
	}
}

// A success that cannot be audited is not granted.
func TestAuditFailureRefuses(t *testing.T) {
	e := newEnv(t, nil)
	cid := e.register()
	b := newBrowser(t)
	p := b.get(e.authURL(cid, nil))
	e.audit.fail.Store(true)
	p = b.post(e.url("/oauth/login"), url.Values{"csrf_token": {p.csrf(t)}, "username": {"ann"}, "password": {pw}})
	if p.status != http.StatusServiceUnavailable || p.is("consent") {
		t.Fatalf("sign-in without audit: %d", p.status)
	}
	e.audit.fail.Store(false)
	q := e.signIn(newBrowser(t), cid, "ann", nil)
	e.audit.fail.Store(true)
	if status, body := e.exchange(cid, q.Get("code"), nil); status != http.StatusServiceUnavailable || body["access_token"] != nil {
		t.Fatalf("token without audit: %d %v", status, body)
	}
}

// A browser-based client may call the token endpoint from another origin.
func TestCORS(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequest("OPTIONS", e.url("/oauth/token"), nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	_, _, h := e.tokenReq(url.Values{"grant_type": {"refresh_token"}})
	if h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("token errors are unreadable cross-origin")
	}
}

// A client registers with the scope of the first challenge; a later
// step-up to a larger scope must still be allowed (the TypeScript SDK does
// exactly this).
func TestDynamicClientCanStepUp(t *testing.T) {
	e := newEnv(t, nil)
	status, reg := e.registerJSON(map[string]any{"redirect_uris": []string{redirect}, "scope": "mcp:read mcp:tools"})
	if status != 201 || reg["scope"] != "mcp:read mcp:tools mcp:admin" {
		t.Fatalf("registration: %d %v", status, reg)
	}
	cid := reg["client_id"].(string)
	if tok := e.tokens(cid, "ann", map[string]string{"scope": "mcp:read mcp:tools mcp:admin"}); tok["scope"] != "mcp:read mcp:tools mcp:admin" {
		t.Fatalf("step-up token scope = %v", tok["scope"])
	}
}

// Pre-registered clients' scope lists do bound them.
func TestPreRegisteredScopeBound(t *testing.T) {
	e := newEnv(t, nil)
	id, _ := e.confidential("client_secret_basic")
	c, _ := e.st.GetClient(context.Background(), id)
	c.Scopes = []string{"mcp:read"}
	c.RedirectURIs = []string{redirect}
	e.st.DeleteClient(context.Background(), id)
	e.st.CreateClient(context.Background(), c)
	p := newBrowser(t).get(e.authURL(id, map[string]string{"scope": "mcp:read mcp:tools"}))
	if u, _ := url.Parse(p.location); u == nil || u.Query().Get("error") != "invalid_scope" {
		t.Fatalf("scope beyond the registration: %d %q", p.status, p.location)
	}
}

func TestSigningKeys(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	keys, err := e.srv.VerificationKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Algorithm != "ES256" {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	stored, _ := e.st.ListSigningKeys(ctx)
	if len(stored) != 1 || !strings.Contains(string(stored[0].PrivateKeyPEM), "BEGIN PRIVATE KEY") {
		t.Fatalf("stored keys = %v", stored)
	}
	// A second server on the same store uses the same key.
	cfg := e.cfg
	cfg.Audit = &auditLog{}
	second, err := oauth.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys2, _ := second.VerificationKeys(ctx)
	if len(keys2) != 1 || keys2[0].ID != keys[0].ID {
		t.Fatalf("a second replica has keys %v, the first %v", keys2, keys)
	}
	// Retiring the key: after the next re-read a new key signs, and the old
	// one verifies until its tokens have expired.
	old := keys[0].ID
	cid := e.register()
	e.st.RetireSigningKey(ctx, old, e.clock())
	e.advance(2 * time.Minute)
	tok := e.tokens(cid, "ann", nil)
	_, h := e.verify(tok["access_token"].(string))
	if h.KeyID == old {
		t.Fatal("a retired key still signs")
	}
	keys, _ = e.srv.VerificationKeys(ctx)
	if len(keys) != 2 {
		t.Fatalf("keys after retirement = %v", keys)
	}
	e.advance(20 * time.Minute)
	keys, _ = e.srv.VerificationKeys(ctx)
	if len(keys) != 1 || keys[0].ID == old {
		t.Fatalf("keys after the old tokens expired = %v", keys)
	}
	if !slices.ContainsFunc(keys, func(k oauth.VerificationKey) bool { return k.ID == h.KeyID }) {
		t.Fatal("the new key is not published")
	}

	// RotateSigningKey publishes the next key at once; it signs only after
	// the publication delay, and the keys it replaces keep verifying.
	current := h.KeyID
	next, err := oauth.RotateSigningKey(ctx, e.st, 10*time.Minute, e.clock())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ = e.srv.VerificationKeys(ctx)
	if len(keys) != 2 || !slices.ContainsFunc(keys, func(k oauth.VerificationKey) bool { return k.ID == next.ID }) {
		t.Fatalf("keys during the publication delay = %v", keys)
	}
	if _, h := e.verify(e.tokens(cid, "ann", nil)["access_token"].(string)); h.KeyID != current {
		t.Fatalf("signed with %s during the publication delay, want %s", h.KeyID, current)
	}
	e.advance(11 * time.Minute)
	e.srv.ReloadKeys(ctx)
	if _, h := e.verify(e.tokens(cid, "ann", nil)["access_token"].(string)); h.KeyID != next.ID {
		t.Fatalf("signed with %s after the rotation, want %s", h.KeyID, next.ID)
	}
	if keys, _ = e.srv.VerificationKeys(ctx); len(keys) != 2 {
		t.Fatalf("the replaced key stopped verifying at once: %v", keys)
	}
}

// One source cannot use up the dynamic-client limit: its registrations are
// rate limited, audited, and refill over time.
func TestRegistrationRateLimit(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.RegistrationsPerHour = 3 })
	body := map[string]any{"client_name": "x", "redirect_uris": []string{redirect}}
	for i := range 3 {
		if status, m := e.registerJSON(body); status != 201 {
			t.Fatalf("registration %d: %d %v", i, status, m)
		}
	}
	if status, m := e.registerJSON(body); status != http.StatusTooManyRequests {
		t.Fatalf("fourth registration within the hour: %d %v", status, m)
	}
	if !e.audit.has("oauth/register", guard.RateLimited, "too many") {
		t.Fatal("the refusal was not audited")
	}
	e.advance(25 * time.Minute)
	if status, m := e.registerJSON(body); status != 201 {
		t.Fatalf("after the bucket refilled: %d %v", status, m)
	}
}
