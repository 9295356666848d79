package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// openSession opens a 2025-06-18 session with raw requests and returns
// its id.
func openSession(t *testing.T, url string, h http.Header) string {
	t.Helper()
	init := post(t, url, h, initBody)
	sid := init.Header.Get("Mcp-Session-Id")
	if init.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d, session %q", init.StatusCode, sid)
	}
	if r := post(t, url, withSession(h, sid), `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d", r.StatusCode)
	}
	return sid
}

func withSession(h http.Header, sid string) http.Header {
	h = h.Clone()
	h.Set("Mcp-Session-Id", sid)
	h.Set("Mcp-Protocol-Version", "2025-06-18")
	return h
}

const listBody = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`

var sessionIDForm = regexp.MustCompile(`^[A-Z2-7]{52}$`)

func TestSessionsBoundToPrincipal(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "server:\n  max_sessions_per_principal: 2\naudit:\n  log: ./mcpguard-audit.log\n")
	if out, err := runInput(t, dir, nil, oauthPassword+"\n", "--config", cfg, "users", "add", "alice", "--role", "developer", "--password-stdin"); err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	s := start(t, dir, nil, "--config", cfg, "--demo")
	ctx := context.Background()
	admin, viewer, developer := bearer(s.keys["admin"]), bearer(s.keys["viewer"]), bearer(s.keys["developer"])

	t.Run("session-based and sessionless revisions", func(t *testing.T) {
		for _, v := range []string{"2025-06-18", "2025-11-25", "2026-07-28"} {
			cs, err := mcptest.ConnectVersion(t, s.url, admin, v)
			if err != nil {
				t.Fatalf("%s: connect: %v", v, err)
			}
			if got := cs.InitializeResult().ProtocolVersion; got != v {
				t.Errorf("%s: negotiated %s", v, got)
			}
			if _, err := cs.ListTools(ctx, nil); err != nil {
				t.Fatalf("%s: tools/list: %v", v, err)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_tables", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Fatalf("%s: list_tables: %v %v", v, err, res)
			}
			switch {
			case v < "2026" && !sessionIDForm.MatchString(cs.ID()):
				t.Errorf("%s: session id %q is not 52 base32 characters", v, cs.ID())
			case v >= "2026" && cs.ID() != "":
				t.Errorf("%s: sessionless revision got session id %q", v, cs.ID())
			}
		}
	})

	t.Run("hijack refused and audited", func(t *testing.T) {
		sid := openSession(t, s.url, admin)
		if r := post(t, s.url, withSession(viewer, sid), listBody); r.StatusCode != http.StatusNotFound {
			t.Fatalf("viewer presenting admin's session: %d, want 404", r.StatusCode)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["decision"] == "DENIED" && r["reason"] == "session hijack attempt" && r["user"] == "viewer" && r["session_id"] == sid
		})
		if r := post(t, s.url, withSession(admin, sid), listBody); r.StatusCode != 200 {
			t.Fatalf("owner after the attempt: %d", r.StatusCode)
		}
		if r := post(t, s.url, withSession(admin, "no-such-session-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), listBody); r.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown session: %d, want 404", r.StatusCode)
		}
		h := admin.Clone()
		h.Set("Mcp-Protocol-Version", "2025-06-18")
		if r := post(t, s.url, h, listBody); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("missing session: %d, want 400", r.StatusCode)
		}
		h.Set("Mcp-Protocol-Version", "1999-01-01")
		if r := post(t, s.url, h, initBody); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("invalid MCP-Protocol-Version: %d, want 400", r.StatusCode)
		}
	})

	t.Run("fixation refused", func(t *testing.T) {
		// An initialize carrying a session id the caller chose never
		// creates a session under that id.
		chosen := strings.Repeat("A", 52)
		r := post(t, s.url, withSession(viewer, chosen), initBody)
		if got := r.Header.Get("Mcp-Session-Id"); got == chosen || (r.StatusCode == 200 && !sessionIDForm.MatchString(got)) {
			t.Fatalf("initialize with a chosen session id: %d, session %q", r.StatusCode, got)
		}
		if r := post(t, s.url, withSession(viewer, chosen), listBody); r.StatusCode != http.StatusNotFound {
			t.Fatalf("the chosen session id afterwards: %d, want 404", r.StatusCode)
		}
		// A session an attacker opened and handed to a victim serves the
		// victim nothing: it stays the attacker's.
		sid := openSession(t, s.url, viewer)
		if r := post(t, s.url, withSession(developer, sid), listBody); r.StatusCode != http.StatusNotFound {
			t.Fatalf("victim using the attacker's session: %d, want 404", r.StatusCode)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["reason"] == "session hijack attempt" && r["user"] == "developer" && r["session_id"] == sid
		})
	})

	t.Run("terminated session is 404", func(t *testing.T) {
		sid := openSession(t, s.url, viewer)
		req, _ := http.NewRequest("DELETE", s.url, nil)
		for k, v := range withSession(viewer, sid) {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %v %v", resp, err)
		}
		resp.Body.Close()
		if r := post(t, s.url, withSession(viewer, sid), listBody); r.StatusCode != http.StatusNotFound {
			t.Fatalf("terminated session: %d, want 404", r.StatusCode)
		}
	})

	t.Run("oldest session evicted beyond the cap", func(t *testing.T) {
		first := openSession(t, s.url, developer)
		second := openSession(t, s.url, developer)
		third := openSession(t, s.url, developer)
		if r := post(t, s.url, withSession(developer, first), listBody); r.StatusCode != http.StatusNotFound {
			t.Fatalf("oldest of 3 sessions with a cap of 2: %d, want 404", r.StatusCode)
		}
		for _, sid := range []string{second, third} {
			if r := post(t, s.url, withSession(developer, sid), listBody); r.StatusCode != 200 {
				t.Fatalf("newer session: %d", r.StatusCode)
			}
		}
	})

	t.Run("refreshed token keeps its session", func(t *testing.T) {
		access, refresh, client := authCode(t, s, "alice")
		h := bearer(access)
		sid := openSession(t, s.url, h)
		base := strings.TrimSuffix(s.url, "/mcp")
		resp, err := http.PostForm(base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {refresh}, "resource": {s.url}})
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if tok.AccessToken == "" || tok.AccessToken == access {
			t.Fatalf("refresh: %d, new token %t", resp.StatusCode, tok.AccessToken != access)
		}
		if r := post(t, s.url, withSession(bearer(tok.AccessToken), sid), listBody); r.StatusCode != 200 {
			t.Fatalf("refreshed token on its session: %d, want 200", r.StatusCode)
		}
	})

	t.Run("revoke all sessions of a user", func(t *testing.T) {
		sid := openSession(t, s.url, admin)
		cs, err := mcptest.ConnectVersion(t, s.url, admin, "2025-11-25")
		if err != nil {
			t.Fatal(err)
		}
		out, err := run(t, dir, nil, "--config", cfg, "sessions", "list", "--user", "admin")
		if err != nil || !strings.Contains(out, sid) || !strings.Contains(out, cs.ID()) {
			t.Fatalf("sessions list --user admin: %v\n%s", err, out)
		}
		out, err = run(t, dir, nil, "--config", cfg, "sessions", "revoke", "--user", "admin")
		if err != nil || !strings.Contains(out, "Revoked") {
			t.Fatalf("sessions revoke: %v\n%s", err, out)
		}
		if r := post(t, s.url, withSession(admin, sid), listBody); r.StatusCode != http.StatusNotFound {
			t.Fatalf("revoked session: %d, want 404", r.StatusCode)
		}
		if _, err := cs.ListTools(ctx, nil); err == nil {
			t.Fatal("go-sdk client's session still usable after revoke")
		}
		out, _ = run(t, dir, nil, "--config", cfg, "sessions", "list", "--user", "admin")
		if strings.Contains(out, sid) {
			t.Fatalf("revoked session still listed:\n%s", out)
		}
		// An event stream left open on a revoked session ends too.
		sid2 := openSession(t, s.url, admin)
		req, _ := http.NewRequest("GET", s.url, nil)
		for k, v := range withSession(admin, sid2) {
			req.Header[k] = v
		}
		req.Header.Set("Accept", "text/event-stream")
		stream, err := http.DefaultClient.Do(req)
		if err != nil || stream.StatusCode != 200 {
			t.Fatalf("GET stream: %v %v", stream, err)
		}
		ended := make(chan time.Duration, 1)
		go func() {
			t0 := time.Now()
			io.Copy(io.Discard, stream.Body)
			ended <- time.Since(t0)
		}()
		if out, err := run(t, dir, nil, "--config", cfg, "sessions", "revoke", sid2); err != nil {
			t.Fatalf("sessions revoke ID: %v\n%s", err, out)
		}
		select {
		case d := <-ended:
			t.Logf("open stream of the revoked session ended after %v", d.Round(10*time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Fatal("the revoked session's open stream was still open after 10s")
		}
		stream.Body.Close()
		// The same user opens a new session at once.
		openSession(t, s.url, admin)
	})
}

// authCode runs the authorization-code flow with PKCE for user (password
// oauthPassword) and returns the access token, the refresh token and the
// client id.
func authCode(t *testing.T, s *server, user string) (access, refresh, clientID string) {
	t.Helper()
	return authCodeWith(t, s, user, http.DefaultClient)
}

// authCodeWith is authCode with every request sent by hc (for example
// over mutual TLS).
func authCodeWith(t *testing.T, s *server, user string, hc *http.Client) (access, refresh, clientID string) {
	t.Helper()
	base := strings.TrimSuffix(s.url, "/mcp")
	jar, _ := cookiejar.New(nil)
	b := &oauthBrowser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: hc.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	const redirect = "http://127.0.0.1:9/callback"
	reg := struct{ ClientID string }{registerPublicClient(t, hc, base, "session test", redirect)}
	verifier := strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"s1"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {s.url}, "scope": {"mcp:read mcp:tools"}}
	p := b.get(base + "/oauth/authorize?" + q.Encode())
	if strings.Contains(p.body, `action="/oauth/login"`) {
		p = b.submit(p, "/oauth/login", url.Values{"username": {user}, "password": {oauthPassword}})
	}
	if strings.Contains(p.body, `action="/oauth/consent"`) {
		p = b.submit(p, "/oauth/consent", url.Values{"decision": {"allow"}})
	}
	loc, err := url.Parse(p.location)
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code: %d %q\n%s", p.status, p.location, p.body)
	}
	resp, err := hc.PostForm(base+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {reg.ClientID}, "code": {loc.Query().Get("code")},
		"code_verifier": {verifier}, "redirect_uri": {redirect}, "resource": {s.url}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	return tok.AccessToken, tok.RefreshToken, reg.ClientID
}

// TestSlowClientsCutOff holds a connection that trickles its request
// headers (slow loris) and one that trickles its body: both are cut off
// within the configured timeouts while another client is served.
func TestSlowClientsCutOff(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "server:\n  read_header_timeout: 1s\n  read_timeout: 2s\n")
	s := start(t, dir, nil, "--config", cfg, "--demo")
	u, _ := url.Parse(s.url)

	trickle := func(prefix string, every time.Duration) (time.Duration, error) {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		start := time.Now()
		if _, err := conn.Write([]byte(prefix)); err != nil {
			return 0, err
		}
		closed := make(chan struct{})
		go func() { // the server's answer, if any, then EOF
			bufio.NewReader(conn).ReadString(0)
			close(closed)
		}()
		for {
			select {
			case <-closed:
				return time.Since(start), nil
			case <-time.After(every):
				if time.Since(start) > 15*time.Second {
					return time.Since(start), nil
				}
				conn.Write([]byte("X-Slow: a\r\n"[:1]))
			}
		}
	}
	type result struct {
		d   time.Duration
		err error
	}
	headers, body := make(chan result, 1), make(chan result, 1)
	go func() {
		d, err := trickle("POST /mcp HTTP/1.1\r\nHost: "+u.Host+"\r\nX-Slow: ", 200*time.Millisecond)
		headers <- result{d, err}
	}()
	go func() {
		d, err := trickle("POST /mcp HTTP/1.1\r\nHost: "+u.Host+"\r\nX-API-Key: "+s.keys["admin"]+"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{", 200*time.Millisecond)
		body <- result{d, err}
	}()
	// Meanwhile another client is served promptly.
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	cs := mustConnect(t, s.url, bearer(s.keys["viewer"]))
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("other client during the slow ones: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("other client took %v", d)
	}
	for name, ch := range map[string]chan result{"slow headers": headers, "slow body": body} {
		r := <-ch
		if r.err != nil {
			t.Fatalf("%s: %v", name, r.err)
		}
		t.Logf("%s cut off after %v", name, r.d.Round(10*time.Millisecond))
		if r.d > 4*time.Second {
			t.Errorf("%s: connection held %v, want it cut within the timeout (1s headers, 2s body)", name, r.d)
		}
	}
}

// registerPublicClient registers a public OAuth client (DCR) and returns
// its id.
func registerPublicClient(t *testing.T, hc *http.Client, base, name, redirect string) string {
	t.Helper()
	resp, err := hc.Post(base+"/oauth/register", "application/json", strings.NewReader(`{"client_name":"`+name+`","redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || reg.ClientID == "" {
		t.Fatalf("client registration: %d %v", resp.StatusCode, err)
	}
	return reg.ClientID
}

// TestStreamsPerPrincipal holds one principal's only stream open (the
// session's GET event stream) and checks that its next request gets 429
// while another principal is served.
func TestStreamsPerPrincipal(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "server:\n  max_streams_per_principal: 1\n")
	s := start(t, dir, nil, "--config", cfg, "--demo")
	admin := bearer(s.keys["admin"])
	sid := openSession(t, s.url, admin)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url, nil)
	for k, v := range withSession(admin, sid) {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("GET stream: %v %v", stream, err)
	}
	if r := post(t, s.url, withSession(admin, sid), listBody); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second concurrent request: %d, want 429", r.StatusCode)
	}
	openSession(t, s.url, bearer(s.keys["viewer"])) // others are not affected
	cancel()
	stream.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := post(t, s.url, withSession(admin, sid), listBody)
		if r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released after the stream closed: %d", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
