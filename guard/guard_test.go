package guard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// keyAuth is a unit-test Authenticator: a fixed map from secret to principal.
type keyAuth map[string]*guard.Principal

func (k keyAuth) Authenticate(_ context.Context, c guard.Credential) (*guard.Principal, error) {
	if c.Secret == "boom" {
		return nil, errors.New("store unreachable")
	}
	if p, ok := k[c.Secret]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: unknown", guard.ErrInvalidCredentials)
}

// memSink is a unit-test AuditSink.
type memSink struct {
	mu   sync.Mutex
	recs []guard.Record
	fail bool
}

func (m *memSink) Record(_ context.Context, r *guard.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("disk full")
	}
	m.recs = append(m.recs, *r)
	return nil
}

func (m *memSink) find(decision guard.Outcome, method string) []guard.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []guard.Record
	for _, r := range m.recs {
		if r.Decision == decision && r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// budget is a unit-test Limiter: n requests per principal, then refusal.
type budget struct {
	mu   sync.Mutex
	n    int
	used map[string]int
}

func (b *budget) Limit(_ context.Context, p *guard.Principal, tool string) (guard.LimitResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used[p.ID()] >= b.n {
		return guard.LimitResult{RetryAfter: 1500 * time.Millisecond, Scope: "identity"}, nil
	}
	b.used[p.ID()]++
	return guard.LimitResult{Allowed: true}, nil
}

// lock is a unit-test Lockout: locked after max failures.
type lock struct {
	mu       sync.Mutex
	max      int
	failures map[string]int
}

func (l *lock) Locked(_ context.Context, src string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Minute, l.failures[src] >= l.max
}

func (l *lock) Failure(_ context.Context, src string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[src]++
	return time.Minute, l.failures[src] >= l.max
}

var tools = []string{"delete_users", "drop_table", "execute_sql", "query", "list_tables", "describe_table"}

func rbac(t testing.TB) *authz.RBAC {
	r, err := authz.NewRBAC(authz.Policy{
		Roles: map[string]authz.Role{
			"viewer":    {},
			"developer": {Inherits: []string{"viewer"}},
			"admin":     {Inherits: []string{"developer"}, Permissions: []string{"tools:call:*", "resources:read:*", "prompts:get:*"}},
		},
		Tools: map[string]authz.Requirement{
			"delete_users": {Roles: []string{"admin"}}, "drop_table": {Roles: []string{"admin"}},
			"execute_sql": {Roles: []string{"developer"}}, "query": {Roles: []string{"viewer"}},
			"list_tables": {Roles: []string{"viewer"}}, "describe_table": {Roles: []string{"viewer"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type echoArgs struct {
	Table  string `json:"table,omitempty"`
	Secret string `json:"password,omitempty"`
}

// newServer is an MCP server whose six tools echo their name, plus a
// resource and a prompt, guarded by g (unless g is nil).
func newServer(g *guard.Guard, opts guard.MCPOptions) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	if g != nil { // nil: an unguarded server, for comparison
		s.AddReceivingMiddleware(g.MCPMiddleware(opts))
	}
	for _, name := range tools {
		mcp.AddTool(s, &mcp.Tool{Name: name}, func(ctx context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ran " + req.Params.Name}}}, nil, nil
		})
	}
	s.AddResource(&mcp.Resource{URI: "file:///secret.txt", Name: "secret"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "file:///secret.txt", Text: "s3cret"}}}, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "summarize"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}}, nil
	})
	return s
}

type fixture struct {
	g    *guard.Guard
	sink *memSink
	url  string
}

func newHTTPFixture(t *testing.T, mutate func(*guard.Guard)) *fixture {
	sink := &memSink{}
	g := &guard.Guard{
		Authenticator: keyAuth{
			"admin-key": {Subject: "ann", Method: guard.MethodAPIKey, Roles: []string{"admin"}},
			"dev-key":   {Subject: "dave", Method: guard.MethodAPIKey, Roles: []string{"developer"}},
			"view-key":  {Subject: "vic", Method: guard.MethodAPIKey, Roles: []string{"viewer"}},
		},
		Authorizer:     rbac(t),
		Audit:          sink,
		ArgumentFields: []string{"table"},
	}
	if mutate != nil {
		mutate(g)
	}
	server := newServer(g, guard.MCPOptions{Transport: "http"})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	ts := httptest.NewServer(g.HTTPMiddleware(h))
	t.Cleanup(ts.Close)
	return &fixture{g: g, sink: sink, url: ts.URL}
}

func TestRoleMatrixOverHTTP(t *testing.T) {
	f := newHTTPFixture(t, nil)
	ctx := context.Background()
	want := map[string][]string{
		"admin-key": tools,
		"dev-key":   {"execute_sql", "query", "list_tables", "describe_table"},
		"view-key":  {"query", "list_tables", "describe_table"},
	}
	for key, allowed := range want {
		cs, err := mcptest.Connect(t, f.url, mcptest.Bearer(key))
		if err != nil {
			t.Fatalf("%s: connect: %v", key, err)
		}
		lt, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, tool := range lt.Tools {
			listed = append(listed, tool.Name)
		}
		slices.Sort(listed)
		exp := slices.Sorted(slices.Values(allowed))
		if !slices.Equal(listed, exp) {
			t.Errorf("%s: tools/list = %v, want %v", key, listed, exp)
		}
		for _, tool := range tools {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
			if err != nil {
				t.Fatalf("%s %s: %v", key, tool, err)
			}
			ok := slices.Contains(allowed, tool)
			if ok == res.IsError || ok != (mcptest.Text(res) == "ran "+tool) {
				t.Errorf("%s %s: isError=%v text=%q; want allowed=%v", key, tool, res.IsError, mcptest.Text(res), ok)
			}
		}
	}
}

func TestAccessDeniedTextAndAudit(t *testing.T) {
	f := newHTTPFixture(t, nil)
	cs, err := mcptest.Connect(t, f.url, http.Header{"X-Api-Key": {"dev-key"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_users", Arguments: map[string]any{"table": "users", "password": "hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ACCESS DENIED\n--------------\nTool: delete_users\nRequired role: admin\nYour role: developer\nReason: tool delete_users requires role admin\nDenied by: tool:delete_users\nAction: Blocked and logged"
	if !res.IsError || mcptest.Text(res) != want {
		t.Fatalf("got isError=%v text:\n%s\nwant:\n%s", res.IsError, mcptest.Text(res), want)
	}
	recs := f.sink.find(guard.Denied, "tools/call")
	if len(recs) != 1 {
		t.Fatalf("denied records = %d, want 1", len(recs))
	}
	r := recs[0]
	if r.Subject != "dave" || r.Target != "delete_users" || !slices.Equal(r.Roles, []string{"developer"}) ||
		!slices.Equal(r.RequiredRoles, []string{"admin"}) || r.Transport != "http" || r.ClientAddr != "127.0.0.1" ||
		r.RequestID == "" || r.SessionID == "" || r.ArgsDigest == "" || r.Args["table"] != "users" {
		t.Fatalf("audit record = %+v", r)
	}
	if _, ok := r.Args["password"]; ok {
		t.Fatal("a non-allow-listed argument reached the audit record")
	}
	b, _ := json.Marshal(f.sink.recs)
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "dev-key") {
		t.Fatal("a secret reached the audit log")
	}
}

func TestUnauthenticatedHTTP(t *testing.T) {
	f := newHTTPFixture(t, nil)
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for name, h := range map[string]http.Header{
		"missing":        {},
		"invalid bearer": mcptest.Bearer("nope"),
		"invalid header": {"X-Api-Key": {"nope"}},
		"basic scheme":   {"Authorization": {"Basic YWRtaW4ta2V5Og=="}},
	} {
		req, _ := http.NewRequest("POST", f.url, strings.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="mcpguard"`) {
			t.Errorf("%s: status %d, WWW-Authenticate %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: security headers missing", name)
		}
	}
	// A token in the query string is never read.
	req, _ := http.NewRequest("POST", f.url+"?access_token=admin-key&api_key=admin-key", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("query-string token: status %d, want 401", resp.StatusCode)
	}
	if n := len(f.sink.find(guard.AuthFailed, "initialize")); n != 5 {
		t.Fatalf("AUTH_FAILED records = %d, want 5", n)
	}
	// An internal failure is 503, not 401, and not an authentication failure.
	req, _ = http.NewRequest("POST", f.url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer boom")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 503 || len(f.sink.find(guard.Failed, "initialize")) != 1 {
		t.Fatalf("internal failure: status %d", resp.StatusCode)
	}
}

func TestRateLimitHTTP(t *testing.T) {
	lim := &budget{n: 8, used: map[string]int{}}
	f := newHTTPFixture(t, func(g *guard.Guard) { g.Limiter = lim })
	cs, err := mcptest.Connect(t, f.url, mcptest.Bearer("view-key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cs.Ping(ctx, nil); err != nil { // settle the connection's own requests
		t.Fatal(err)
	}
	lim.mu.Lock()
	left := lim.n - lim.used["api_key::vic"]
	lim.mu.Unlock()
	var lastErr error
	calls := 0
	for range 10 {
		if _, lastErr = cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}}); lastErr != nil {
			break
		}
		calls++
	}
	if calls != left || lastErr == nil || left < 1 {
		t.Fatalf("calls before refusal = %d (err %v), want %d", calls, lastErr, left)
	}
	// Raw request to see the status and Retry-After.
	req, _ := http.NewRequest("POST", f.url, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"query"}}`))
	req.Header.Set("Authorization", "Bearer view-key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("status %d Retry-After %q; want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	recs := f.sink.find(guard.RateLimited, "tools/call")
	if len(recs) < 2 || recs[0].Target != "query" || recs[0].Subject != "vic" {
		t.Fatalf("rate-limited records = %+v", recs)
	}
	// Other principals are unaffected.
	other, err := mcptest.Connect(t, f.url, mcptest.Bearer("admin-key"))
	if err != nil {
		t.Fatalf("another principal was limited: %v", err)
	}
	if _, err := other.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
}

func TestLockout(t *testing.T) {
	f := newHTTPFixture(t, func(g *guard.Guard) { g.Lockout = &lock{max: 3, failures: map[string]int{}} })
	status := func(key string) (int, string) {
		req, _ := http.NewRequest("POST", f.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 3 {
		if code, _ := status(fmt.Sprint("guess-", i)); code != 401 {
			t.Fatalf("attempt %d: status %d, want 401", i, code)
		}
	}
	// Locked now, even with a valid key.
	if code, ra := status("admin-key"); code != 429 || ra != "60" {
		t.Fatalf("after lockout: status %d Retry-After %q, want 429 and 60", code, ra)
	}
	recs := f.sink.find(guard.AuthFailed, "ping")
	if len(recs) != 4 || !strings.Contains(recs[2].Reason, "locked out") || !strings.Contains(recs[3].Reason, "locked out") {
		t.Fatalf("lockout not audited: %+v", recs)
	}
}

func TestOriginAndBodyLimits(t *testing.T) {
	f := newHTTPFixture(t, func(g *guard.Guard) {
		g.HTTP.AllowedOrigins = []string{"https://app.example.com"}
		g.HTTP.MaxBodyBytes = 1024
	})
	do := func(origin, body string) int {
		req, _ := http.NewRequest("POST", f.url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin-key")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	ping := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for origin, want := range map[string]int{
		"https://evil.example":    403,
		"http://evil.localhost.x": 403,
		"null":                    403,
		"https://app.example.com": 200,
		"http://localhost:3000":   200, // loopback page to loopback server
		"":                        200,
	} {
		if got := do(origin, ping); got != want {
			t.Errorf("Origin %q: status %d, want %d", origin, got, want)
		}
	}
	if got := do("", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"`+strings.Repeat("a", 2000)+`"}}`); got != 413 {
		t.Errorf("oversized body: status %d, want 413", got)
	}
}

func TestAuditFailureFailsClosed(t *testing.T) {
	f := newHTTPFixture(t, nil)
	cs, err := mcptest.Connect(t, f.url, mcptest.Bearer("admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	f.sink.mu.Lock()
	f.sink.fail = true
	f.sink.mu.Unlock()
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != guard.CodeUnavailable {
		t.Fatalf("call with a failing audit sink: err = %v, want CodeUnavailable", err)
	}
}

func TestResourcesAndPrompts(t *testing.T) {
	f := newHTTPFixture(t, nil)
	ctx := context.Background()
	admin, err := mcptest.Connect(t, f.url, mcptest.Bearer("admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := mcptest.Connect(t, f.url, mcptest.Bearer("view-key"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := admin.ListResources(ctx, nil); err != nil || len(r.Resources) != 1 {
		t.Fatalf("admin resources/list = %v, %v", r, err)
	}
	if r, err := viewer.ListResources(ctx, nil); err != nil || len(r.Resources) != 0 {
		t.Fatalf("viewer resources/list = %+v, %v", r, err)
	}
	if _, err := viewer.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///secret.txt"}); err == nil || !strings.Contains(err.Error(), "ACCESS DENIED") {
		t.Fatalf("viewer resources/read error = %v", err)
	}
	if _, err := admin.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///secret.txt"}); err != nil {
		t.Fatal(err)
	}
	if r, err := viewer.ListPrompts(ctx, nil); err != nil || len(r.Prompts) != 0 {
		t.Fatalf("viewer prompts/list = %+v, %v", r, err)
	}
	if _, err := viewer.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize"}); err == nil {
		t.Fatal("viewer got a prompt no rule grants")
	}
	if _, err := admin.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize"}); err != nil {
		t.Fatal(err)
	}
}

func TestSessionBoundToPrincipal(t *testing.T) {
	f := newHTTPFixture(t, nil)
	cs, err := mcptest.Connect(t, f.url, mcptest.Bearer("admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", f.url, strings.NewReader(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"query","arguments":{}}}`))
	req.Header.Set("Authorization", "Bearer view-key")
	req.Header.Set("Mcp-Session-Id", cs.ID())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("another principal used admin's session: status %d", resp.StatusCode)
	}
}

func TestStdioStyleInBand(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		cred    *guard.Credential
		wantErr int64
	}{
		"no credential":      {nil, guard.CodeUnauthenticated},
		"invalid credential": {&guard.Credential{Kind: guard.APIKeyHeader, Secret: "nope"}, guard.CodeUnauthenticated},
		"valid credential":   {&guard.Credential{Kind: guard.APIKeyHeader, Secret: "dev-key"}, 0},
	} {
		t.Run(name, func(t *testing.T) {
			sink := &memSink{}
			g := &guard.Guard{Authenticator: keyAuth{"dev-key": {Subject: "dave", Roles: []string{"developer"}}},
				Authorizer: rbac(t), Audit: sink, Limiter: &budget{n: 3, used: map[string]int{}}}
			server := newServer(g, guard.MCPOptions{Transport: "stdio", Credential: tc.cred})
			cs := mcptest.ConnectInMemory(t, server)
			if err := cs.Ping(ctx, nil); err != nil {
				t.Fatalf("ping must work without credentials: %v", err)
			}
			_, err := cs.ListTools(ctx, nil)
			var rpcErr *jsonrpc.Error
			if tc.wantErr != 0 {
				if !errors.As(err, &rpcErr) || rpcErr.Code != tc.wantErr {
					t.Fatalf("tools/list err = %v, want code %d", err, tc.wantErr)
				}
				if len(sink.find(guard.AuthFailed, "tools/list")) != 1 {
					t.Fatal("auth failure not audited")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "drop_table", Arguments: map[string]any{}})
			if err != nil || !res.IsError || !strings.Contains(mcptest.Text(res), "Required role: admin") {
				t.Fatalf("drop_table as developer: %v %v", res, err)
			}
			// Budget of 3: list, drop_table, then this one; the fourth is refused.
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}}); err != nil {
				t.Fatal(err)
			}
			_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}})
			if !errors.As(err, &rpcErr) || rpcErr.Code != guard.CodeRateLimited {
				t.Fatalf("over budget: err = %v, want CodeRateLimited", err)
			}
			var data map[string]any
			if json.Unmarshal(rpcErr.Data, &data) != nil || data["retry_after_seconds"] != float64(2) || data["reset_at"] == "" {
				t.Fatalf("rate-limit error data = %s", rpcErr.Data)
			}
			if recs := sink.find(guard.RateLimited, "tools/call"); len(recs) != 1 || recs[0].Transport != "stdio" {
				t.Fatalf("rate limit not audited: %+v", recs)
			}
		})
	}
}

func TestSlowBodyIsCut(t *testing.T) {
	f := newHTTPFixture(t, func(g *guard.Guard) { g.HTTP.BodyReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer admin-key\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to a slow body: %v", err)
	}
	resp.Body.Close()
	if elapsed := time.Since(start); elapsed > 3*time.Second || resp.StatusCode != 400 {
		t.Fatalf("slow body: status %d after %v; want 400 within the body timeout", resp.StatusCode, elapsed)
	}
}

func TestPrincipalIDUnambiguous(t *testing.T) {
	a := &guard.Principal{Method: guard.MethodJWT, Issuer: "https://x", Subject: "y"}
	b := &guard.Principal{Method: guard.MethodJWT, Issuer: "https", Subject: "//x:y"}
	if a.ID() == b.ID() {
		t.Fatalf("distinct principals share ID %q", a.ID())
	}
}

// stageLog is a unit-test Observer recording stage names and decisions.
type stageLog struct {
	mu        sync.Mutex
	stages    []guard.Stage
	decisions []guard.Outcome
}

func (s *stageLog) StartStage(ctx context.Context, st guard.Stage) (context.Context, func(time.Duration)) {
	return ctx, func(d time.Duration) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stages = append(s.stages, st)
	}
}

func (s *stageLog) Recorded(_ context.Context, r *guard.Record, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.decisions = append(s.decisions, r.Decision)
}

func TestObserverSeesEveryStage(t *testing.T) {
	obs := &stageLog{}
	f := newHTTPFixture(t, func(g *guard.Guard) {
		g.Observer = obs
		g.Limiter = &budget{n: 100, used: map[string]int{}}
	})
	cs, err := mcptest.Connect(t, f.url, mcptest.Bearer("dev-key"))
	if err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	obs.stages, obs.decisions = nil, nil
	obs.mu.Unlock()
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "drop_table", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []guard.Stage{
		guard.StageAuthenticate, guard.StageRateLimit, guard.StageAuthorize, guard.StageExecute, guard.StageAudit, // query
		guard.StageAuthenticate, guard.StageRateLimit, guard.StageAuthorize, guard.StageAudit, // drop_table: denied, not executed
	}
	if !slices.Equal(obs.stages, want) {
		t.Fatalf("stages = %v\nwant     %v", obs.stages, want)
	}
	if !slices.Equal(obs.decisions, []guard.Outcome{guard.Allowed, guard.Denied}) {
		t.Fatalf("decisions = %v", obs.decisions)
	}
}

// notReadySink is an AuditSink that knows it cannot write.
type notReadySink struct{ memSink }

func (*notReadySink) Ready() error { return errors.New("no space left on device") }

func TestAuditNotReadyRefusesBeforeExecution(t *testing.T) {
	ran := false
	sink := &notReadySink{}
	g := &guard.Guard{Authenticator: keyAuth{"k": {Subject: "a", Roles: []string{"admin"}}}, Authorizer: rbac(t), Audit: sink}
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	s.AddReceivingMiddleware(g.MCPMiddleware(guard.MCPOptions{Transport: "stdio", Credential: &guard.Credential{Kind: guard.Bearer, Secret: "k"}}))
	mcp.AddTool(s, &mcp.Tool{Name: "query"}, func(context.Context, *mcp.CallToolRequest, echoArgs) (*mcp.CallToolResult, any, error) {
		ran = true
		return &mcp.CallToolResult{}, nil, nil
	})
	ctx := context.Background()
	cs := mcptest.ConnectInMemory(t, s)
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != guard.CodeUnavailable {
		t.Fatalf("call with an unready audit sink: %v", err)
	}
	if ran {
		t.Fatal("the tool ran although its outcome could not be audited")
	}
}

func TestRequirePrincipal(t *testing.T) {
	sink := &memSink{}
	g := &guard.Guard{Authenticator: keyAuth{
		"admin-key": {Subject: "ann", Roles: []string{"admin"}},
		"view-key":  {Subject: "vic", Roles: []string{"viewer"}},
	}, Authorizer: rbac(t), Audit: sink}
	h := g.RequirePrincipal("metrics", func(p *guard.Principal) bool { return p.HasRole("admin") },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret metrics") }))
	ts := httptest.NewServer(h)
	defer ts.Close()
	for key, want := range map[string]int{"admin-key": 200, "view-key": 403, "wrong": 401, "": 401} {
		req, _ := http.NewRequest("GET", ts.URL, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200) != strings.Contains(string(body), "secret metrics") {
			t.Errorf("key %q: status %d body %q, want %d", key, resp.StatusCode, body, want)
		}
	}
	for _, d := range []guard.Outcome{guard.Allowed, guard.Denied, guard.AuthFailed} {
		if len(sink.find(d, "metrics")) == 0 {
			t.Errorf("no %s record for metrics", d)
		}
	}
}

// toolLog is a unit-test Limiter that allows everything and records which
// tools it was charged for.
type toolLog struct {
	mu    sync.Mutex
	tools []string
}

func (l *toolLog) Limit(_ context.Context, _ *guard.Principal, tool string) (guard.LimitResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tools = append(l.tools, tool)
	return guard.LimitResult{Allowed: true}, nil
}

// rawSession opens a session for key and returns a function that POSTs one
// raw message in it.
func rawSession(t *testing.T, url, key string) func(body string, timeout time.Duration) (int, string) {
	t.Helper()
	cs, err := mcptest.Connect(t, url, mcptest.Bearer(key))
	if err != nil {
		t.Fatal(err)
	}
	return func(body string, timeout time.Duration) (int, string) {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Mcp-Session-Id", cs.ID())
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := (&http.Client{Timeout: timeout}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// The review found that encoding/json and go-sdk could read one body
// differently, so that the limiter was charged for another tool, or for
// one message of a batch that ran many.
func TestRateLimitChargesTheToolThatRuns(t *testing.T) {
	lim := &toolLog{}
	f := newHTTPFixture(t, func(g *guard.Guard) { g.Limiter = lim })
	send := rawSession(t, f.url, "admin-key")
	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `","arguments":{}}}`
	}
	for name, body := range map[string]string{
		"batch":         "[" + call("execute_sql") + "," + call("execute_sql") + "]",
		"trailing data": call("execute_sql") + "x",
	} {
		if code, _ := send(body, 5*time.Second); code != 400 {
			t.Errorf("%s: status %d, want 400", name, code)
		}
	}
	if n := len(f.sink.find(guard.Denied, "")) + len(f.sink.find(guard.Denied, "tools/call")); n < 2 {
		t.Errorf("malformed bodies not audited: %d records", n)
	}
	// Bodies that two JSON readers could disagree on: whatever go-sdk runs
	// is what the limiter was charged for.
	for name, body := range map[string]string{
		"keys differing in case": `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"query","NAME":"execute_sql","arguments":{}}}`,
		"type confusion":         `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"execute_sql","arguments":{}},"Params":7}`,
		"method in other case":   `{"jsonrpc":"2.0","id":10,"method":"tools/call","METHOD":"ping","params":{"name":"drop_table","arguments":{}}}`,
	} {
		lim.mu.Lock()
		lim.tools = nil
		lim.mu.Unlock()
		before := len(f.sink.find(guard.Allowed, "tools/call"))
		code, _ := send(body, 5*time.Second)
		ran := f.sink.find(guard.Allowed, "tools/call")
		if code != 200 || len(ran) != before+1 {
			t.Fatalf("%s: status %d, %d new records", name, code, len(ran)-before)
		}
		lim.mu.Lock()
		if !slices.Contains(lim.tools, ran[len(ran)-1].Target) {
			t.Errorf("%s: ran %q but the limiter was charged for %q", name, ran[len(ran)-1].Target, lim.tools)
		}
		lim.mu.Unlock()
	}
}

func TestSubscriptionsListenIsAuthorized(t *testing.T) {
	f := newHTTPFixture(t, nil)
	send := rawSession(t, f.url, "view-key")
	_, body := send(`{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["file:///secret.txt"]}}}`, 3*time.Second)
	if !strings.Contains(body, "-32003") || !strings.Contains(body, "ACCESS DENIED") {
		t.Fatalf("viewer subscribed to a resource it may not read: %.300s", body)
	}
	recs := f.sink.find(guard.Denied, "subscriptions/listen")
	if len(recs) != 1 || recs[0].Target != "file:///secret.txt" {
		t.Fatalf("listen denial not audited: %+v", recs)
	}
}

func TestTargetBounds(t *testing.T) {
	f := newHTTPFixture(t, func(g *guard.Guard) {
		g.Authenticator = keyAuth{"pub-key": {Subject: "pat", Permissions: []string{"resources:read:file:///*"}}}
	})
	ctx := context.Background()
	cs, err := mcptest.Connect(t, f.url, mcptest.Bearer("pub-key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///secret.txt"}); err != nil {
		t.Fatalf("granted read refused: %v", err)
	}
	for _, uri := range []string{"file:///pub/../secret.txt", "file:///pub/%2e%2e/secret.txt", "file:///" + strings.Repeat("a", 2000)} {
		if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err == nil || !strings.Contains(err.Error(), "ACCESS DENIED") {
			t.Errorf("read %.40q: %v, want ACCESS DENIED", uri, err)
		}
	}
	for _, r := range f.sink.find(guard.Denied, "resources/read") {
		if len(r.Target) > 1100 {
			t.Fatalf("audit target not bounded: %d bytes", len(r.Target))
		}
	}
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	if len(f.sink.find(guard.Allowed, "logging/setLevel")) != 1 {
		t.Fatal("logging/setLevel not audited")
	}
}
