package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpguard/mcpguard/internal/servicetest"
)

// replicaHeader routes a request through the test's load balancer to
// replica "a" (the default) or "b".
const replicaHeader = "X-Test-Replica"

// privateRedis is a redis-server of the test's own, so that the test can
// stop and restart it.
type privateRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *privateRedis {
	t.Helper()
	servicetest.RedisURL(t) // CI requires Redis; locally, skip loudly without it
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not on PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &privateRedis{t: t, port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close()
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(r.port), "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for range 100 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatal("redis-server did not start")
}

func (r *privateRedis) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// cluster is two mcpguard replicas sharing PostgreSQL and Redis behind a
// load balancer whose URL is their common server.public_url.
type replicaSet struct {
	lb       *httptest.Server
	mcpURL   string // the load balancer's MCP endpoint
	dir      string
	a, b     *server
	auditA   string
	auditB   string
	redis    *privateRedis
	original string
}

// startReplicas writes one configuration (store: postgres, redis) in a
// shared directory and starts two replicas on it.
func startReplicas(t *testing.T, extraYAML string) *replicaSet {
	t.Helper()
	pg := servicetest.PostgresSchema(t)
	rs := &replicaSet{redis: startRedis(t), dir: t.TempDir()}
	var targets [2]*url.URL
	rs.lb = httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		target := targets[0]
		if pr.In.Header.Get(replicaHeader) == "b" {
			target = targets[1]
		}
		pr.Out.Header.Del(replicaHeader)
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // the replicas see the public host, as behind a real balancer
	}})
	t.Cleanup(rs.lb.Close)
	rs.mcpURL = rs.lb.URL + "/mcp"
	writeConfig(t, rs.dir, fmt.Sprintf(`store: %q
redis:
  url: %q
server:
  public_url: %q
oauth:
  allow_private_metadata_urls: true
%s`, pg, rs.redis.url(), rs.lb.URL, extraYAML))
	// `mcpguard migrate` prepares the empty database; the replicas then find
	// nothing to apply.
	if out, err := run(t, rs.dir, nil, "migrate"); err != nil || !strings.Contains(out, "PostgreSQL store: schema at version") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := runInput(t, rs.dir, nil, oauthPassword+"\n", "users", "add", oauthUser, "--role", "admin", "--password-stdin"); err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	rs.auditA, rs.auditB = filepath.Join(rs.dir, "audit-a.log"), filepath.Join(rs.dir, "audit-b.log")
	rs.a = start(t, rs.dir, nil, "--demo", "--audit-log", rs.auditA)
	rs.b = start(t, rs.dir, nil, "--database", filepath.Join(rs.dir, "mcpguard-data", "demo.db"), "--audit-log", rs.auditB)
	for i, s := range []*server{rs.a, rs.b} {
		u, err := url.Parse(s.url)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = ""
		targets[i] = u
		if !strings.Contains(s.output.String(), "shared through Redis") {
			t.Fatalf("replica %d did not report Redis:\n%s", i, s.output)
		}
	}
	return rs
}

// on returns headers that send a request to replica r ("a" or "b").
func on(r string, h http.Header) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(replicaHeader, r)
	return h
}

func callTool(ctx context.Context, cs *mcp.ClientSession, name string) error {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool error: %s", text(res))
	}
	return nil
}

// TestReplicas runs two replicas on one PostgreSQL and one Redis: a tool
// limit holds across both, a key revoked in the shared store is refused by
// the replica that had it cached within 1 s, an authorization code issued
// by A is redeemed on B, and stopping Redis refuses requests with 503 (and
// audits them) until it is back, without restarting mcpguard.
func TestReplicas(t *testing.T) {
	const limit = 4
	// Revocations must reach the other replica through the store's
	// announcements (LISTEN/NOTIFY), not the cache's periodic recheck.
	rs := startReplicas(t, fmt.Sprintf(`auth:
  revocation_recheck: 1m
rate_limit:
  enabled: true
  requests_per_minute: 1000
  tools:
    list_tables: {requests_per_minute: %d}
  lockout: {max_failures: 20, window: 1m, duration: 1m}
`, limit))
	ctx := context.Background()
	key, _ := createKey(t, rs.dir, "--name", "limited", "--role", "viewer")

	t.Run("GlobalRateLimit", func(t *testing.T) {
		csA := mustConnect(t, rs.mcpURL, on("a", bearer(key)))
		defer csA.Close()
		csB := mustConnect(t, rs.mcpURL, on("b", bearer(key)))
		defer csB.Close()
		for i := range limit {
			cs := []*mcp.ClientSession{csA, csB}[i%2]
			if err := callTool(ctx, cs, "list_tables"); err != nil {
				t.Fatalf("call %d of %d (replica %s): %v", i+1, limit, "ab"[i%2:i%2+1], err)
			}
		}
		for _, r := range []struct {
			name string
			cs   *mcp.ClientSession
		}{{"a", csA}, {"b", csB}} {
			err := callTool(ctx, r.cs, "list_tables")
			if err == nil || !strings.Contains(err.Error(), "Too Many Requests") {
				t.Fatalf("call %d on replica %s: %v; want refused by the shared limit", limit+1, r.name, err)
			}
		}
		waitAudit(t, rs.auditB, func(m map[string]any) bool {
			return m["decision"] == "RATE_LIMITED" && m["target"] == "list_tables"
		})
	})

	t.Run("RevocationWithinOneSecond", func(t *testing.T) {
		doomed, doomedID := createKey(t, rs.dir, "--name", "doomed", "--role", "viewer")
		// Both replicas have verified (and cached) the key.
		for _, r := range []string{"a", "b"} {
			if resp := post(t, rs.mcpURL, on(r, bearer(doomed)), initBody); resp.StatusCode != 200 {
				t.Fatalf("replica %s before revocation: %d", r, resp.StatusCode)
			}
		}
		if out, err := run(t, rs.dir, nil, "keys", "revoke", doomedID); err != nil {
			t.Fatalf("keys revoke: %v\n%s", err, out)
		}
		revoked := time.Now()
		for _, r := range []string{"b", "a"} {
			for {
				resp := post(t, rs.mcpURL, on(r, bearer(doomed)), initBody)
				if resp.StatusCode == http.StatusUnauthorized {
					break
				}
				if time.Since(revoked) > time.Second {
					t.Fatalf("replica %s still accepts the revoked key %v after revocation", r, time.Since(revoked))
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("replica %s refuses the revoked key %v after revocation", r, time.Since(revoked).Round(time.Millisecond))
		}
	})

	t.Run("OAuthCodeIssuedByARedeemedOnB", func(t *testing.T) {
		base := rs.lb.URL
		jar, _ := cookiejar.New(nil)
		onA := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: headerRT{replicaHeader, "a"},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		onB := &http.Client{Timeout: 10 * time.Second, Transport: headerRT{replicaHeader, "b"}}
		b := &oauthBrowser{t: t, base: base, c: onA}
		const redirect = "http://127.0.0.1:9/callback"
		// Registered on B, used on A: clients are shared too.
		resp, err := onB.Post(base+"/oauth/register", "application/json", strings.NewReader(`{"client_name":"replicas","redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none"}`))
		if err != nil {
			t.Fatal(err)
		}
		var reg struct {
			ClientID string `json:"client_id"`
		}
		json.NewDecoder(resp.Body).Decode(&reg)
		resp.Body.Close()
		if reg.ClientID == "" {
			t.Fatalf("registration on B: %d", resp.StatusCode)
		}
		verifier := strings.Repeat("v", 50)
		sum := sha256.Sum256([]byte(verifier))
		q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"st"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
			"resource": {rs.mcpURL}, "scope": {"mcp:read mcp:tools"}}
		p := b.get(base + "/oauth/authorize?" + q.Encode())
		if strings.Contains(p.body, `action="/oauth/login"`) {
			p = b.submit(p, "/oauth/login", url.Values{"username": {oauthUser}, "password": {oauthPassword}})
		}
		if strings.Contains(p.body, `action="/oauth/consent"`) {
			p = b.submit(p, "/oauth/consent", url.Values{"decision": {"allow"}})
		}
		loc, err := url.Parse(p.location)
		if p.status != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("replica A issued no code: %d %q\n%s", p.status, p.location, p.body)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {reg.ClientID}, "code": {loc.Query().Get("code")},
			"code_verifier": {verifier}, "redirect_uri": {redirect}, "resource": {rs.mcpURL}}
		redeem := func() (int, string) {
			resp, err := onB.PostForm(base+"/oauth/token", form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			json.NewDecoder(resp.Body).Decode(&tok)
			return resp.StatusCode, tok.AccessToken
		}
		status, token := redeem()
		if status != 200 || token == "" {
			t.Fatalf("replica B refused the code replica A issued: %d", status)
		}
		// The token B issued works on A.
		cs, err := connect(t, rs.mcpURL, on("a", bearer(token)))
		if err != nil {
			t.Fatalf("token issued by B refused by A: %v", err)
		}
		if err := callTool(ctx, cs, "list_tables"); err != nil && !strings.Contains(err.Error(), "Too Many Requests") {
			t.Fatalf("tool call on A with B's token: %v", err)
		}
		cs.Close()
		// Replaying the code (on A this time) fails, and revokes the token
		// its first redemption issued, on both replicas.
		onA2 := &http.Client{Timeout: 10 * time.Second, Transport: headerRT{replicaHeader, "a"}}
		resp, err = onA2.PostForm(base+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the code was redeemed twice")
		}
		replayed := time.Now()
		for _, r := range []string{"a", "b"} {
			for post(t, rs.mcpURL, on(r, bearer(token)), initBody).StatusCode != http.StatusUnauthorized {
				if time.Since(replayed) > time.Second {
					t.Fatalf("replica %s still accepts the token revoked by the replay after %v", r, time.Since(replayed))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})

	t.Run("RedisDownFailsClosedThenResumes", func(t *testing.T) {
		ok := func(r string) int { return post(t, rs.mcpURL, on(r, bearer(key)), initBody).StatusCode }
		for _, r := range []string{"a", "b"} {
			if got := ok(r); got != 200 {
				t.Fatalf("replica %s with Redis up: %d", r, got)
			}
			if resp, err := http.Get(rs.lb.URL + "/readyz?" + r); err != nil || resp.StatusCode != 200 {
				t.Fatalf("readyz with Redis up: %v %v", resp, err)
			}
		}
		rs.redis.stop()
		for _, r := range []string{"a", "b"} {
			if got := ok(r); got != http.StatusServiceUnavailable {
				t.Fatalf("replica %s with Redis down: %d, want 503", r, got)
			}
		}
		req, _ := http.NewRequest("GET", rs.lb.URL+"/readyz", nil)
		req.Header.Set(replicaHeader, "b")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "redis") {
			t.Fatalf("readyz with Redis down: %d %q", resp.StatusCode, body)
		}
		for _, log := range []string{rs.auditA, rs.auditB} {
			waitAudit(t, log, func(m map[string]any) bool {
				r, _ := m["reason"].(string)
				return m["decision"] == "ERROR" && strings.Contains(r, "Redis")
			})
		}
		if hz, err := http.Get(rs.lb.URL + "/healthz"); err != nil || hz.StatusCode != 200 {
			t.Fatalf("healthz (alive) with Redis down: %v %v", hz, err)
		}
		rs.redis.start()
		deadline := time.Now().Add(10 * time.Second)
		for _, r := range []string{"a", "b"} {
			for ok(r) != 200 {
				if time.Now().After(deadline) {
					t.Fatalf("replica %s did not resume after Redis came back", r)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !strings.Contains(rs.a.output.String(), "Redis is reachable again") {
			t.Errorf("replica A did not log the recovery:\n%s", rs.a.output)
		}
	})

	// Last: it locks this test's source address out of both replicas. The
	// restarted Redis holds no failures yet (the earlier ones were lost with
	// it), so exactly 20 lock the source.
	t.Run("LockoutShared", func(t *testing.T) {
		bad := bearer("mcp_0000000000000000_" + strings.Repeat("A", 43))
		for i := range 20 { // failures alternate between the replicas
			r := "ab"[i%2 : i%2+1]
			got := post(t, rs.mcpURL, on(r, bad), initBody).StatusCode
			if got != http.StatusUnauthorized && (i < 19 || got != http.StatusTooManyRequests) {
				t.Fatalf("failure %d on %s: %d, want 401", i+1, r, got)
			}
		}
		for _, r := range []string{"a", "b"} {
			if got := post(t, rs.mcpURL, on(r, bearer(key)), initBody).StatusCode; got != http.StatusTooManyRequests {
				t.Fatalf("replica %s after 20 failures spread over both: %d, want 429 (locked out)", r, got)
			}
		}
	})
}

// TestReplicasSessionContinues opens a 2025-revision MCP session with the
// go-sdk client through replica A and continues it on replica B: lists and
// calls work there, another principal presenting the session id on B gets
// 404 and a hijack record, B refuses the standalone stream with 405, and
// once the user's sessions are revoked the session is 404 on both.
func TestReplicasSessionContinues(t *testing.T) {
	rs := startReplicas(t, "")
	ctx := context.Background()
	key, _ := createKey(t, rs.dir, "--name", "carol", "--role", "viewer")
	other, _ := createKey(t, rs.dir, "--name", "mallory", "--role", "viewer")

	var replica atomic.Value
	replica.Store("a")
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set(replicaHeader, replica.Load().(string))
		return http.DefaultTransport.RoundTrip(r)
	})
	client := mcp.NewClient(&mcp.Implementation{Name: "replicas", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: rs.mcpURL, HTTPClient: &http.Client{Transport: rt}, DisableStandaloneSSE: true,
	}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-06-18"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	sid := cs.ID()
	if sid == "" {
		t.Fatal("no session id from replica A")
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list on A: %v", err)
	}

	// From now on every request of the session goes to B.
	replica.Store("b")
	lt, err := cs.ListTools(ctx, nil)
	if err != nil || len(lt.Tools) != 3 {
		t.Fatalf("tools/list on B: %v (%d tools, want the viewer's 3)", err, len(lt.Tools))
	}
	if err := callTool(ctx, cs, "list_tables"); err != nil {
		t.Fatalf("tools/call on B: %v", err)
	}
	waitAudit(t, rs.auditB, func(r map[string]any) bool {
		return r["method"] == "tools/call" && r["target"] == "list_tables" && r["decision"] == "ALLOWED" && r["session_id"] == sid && r["user"] == "carol"
	})

	// Someone else's key with that session id, on B.
	h := on("b", bearer(other))
	h.Set("Mcp-Session-Id", sid)
	h.Set("Mcp-Protocol-Version", "2025-06-18")
	if resp := post(t, rs.mcpURL, h, `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another principal on B with carol's session: %d, want 404", resp.StatusCode)
	}
	waitAudit(t, rs.auditB, func(r map[string]any) bool {
		return r["reason"] == "session hijack attempt" && r["user"] == "mallory" && r["session_id"] == sid
	})

	// B serves the session's requests, not its standalone stream.
	get, _ := http.NewRequest(http.MethodGet, rs.mcpURL, nil)
	get.Header = on("b", bearer(key))
	get.Header.Set("Mcp-Session-Id", sid)
	get.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	get.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET on B: %d, want 405", resp.StatusCode)
	}

	// A session opened on A and ended by a DELETE on B is over on A too.
	sid2 := openSession(t, rs.mcpURL, on("a", bearer(key)))
	del, _ := http.NewRequest(http.MethodDelete, rs.mcpURL, nil)
	del.Header = withSession(on("b", bearer(key)), sid2)
	if resp, err := http.DefaultClient.Do(del); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("DELETE on B of a session opened on A: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	if resp := post(t, rs.mcpURL, withSession(on("a", bearer(key)), sid2), `{"jsonrpc":"2.0","id":11,"method":"tools/list"}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("session deleted on B, used on A: %d, want 404", resp.StatusCode)
	}

	// Revoked: 404 on both replicas.
	if out, err := run(t, rs.dir, nil, "sessions", "revoke", "--user", "carol"); err != nil || !strings.Contains(out, "Revoked 1 session(s)") {
		t.Fatalf("sessions revoke: %v\n%s", err, out)
	}
	for _, r := range []string{"a", "b"} {
		h := on(r, bearer(key))
		h.Set("Mcp-Session-Id", sid)
		h.Set("Mcp-Protocol-Version", "2025-06-18")
		if resp := post(t, rs.mcpURL, h, `{"jsonrpc":"2.0","id":10,"method":"tools/list"}`); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("revoked session on %s: %d, want 404", r, resp.StatusCode)
		}
	}
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// headerRT sets one header on every request.
type headerRT struct{ name, value string }

func (h headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return http.DefaultTransport.RoundTrip(r)
}
