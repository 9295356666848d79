package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/mcpguard/mcpguard/proxy"
	"github.com/mcpguard/mcpguard/store/sqlite"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var fixture string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	const pkg = "github.com/mcpguard/mcpguard/test/gateway-conformance/fixture"
	bins, err := mcptest.Build(dir, pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixture = bins[pkg]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// start runs a gateway in front of the fixture on an in-process server.
func start(t *testing.T, opts proxy.Options) (*proxy.Gateway, *mcp.Server) {
	t.Helper()
	gw, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	so := &mcp.ServerOptions{}
	gw.Configure(so)
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, so)
	if err := gw.Start(context.Background(), server); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw, server
}

func TestToolHash(t *testing.T) {
	a := &mcp.Tool{Name: "t", Description: "d", InputSchema: json.RawMessage(`{"type":"object","properties":{"x":{"type":"string"},"y":{"type":"integer"}}}`)}
	b := &mcp.Tool{Name: "t", Description: "d", InputSchema: map[string]any{"properties": map[string]any{"y": map[string]any{"type": "integer"}, "x": map[string]any{"type": "string"}}, "type": "object"}}
	ha, err := proxy.ToolHash(a)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := proxy.ToolHash(b)
	if ha != hb || len(ha) != 64 {
		t.Fatalf("key order changed the hash: %s %s", ha, hb)
	}
	for _, changed := range []*mcp.Tool{
		{Name: "t", Description: "d2", InputSchema: a.InputSchema},
		{Name: "t2", Description: "d", InputSchema: a.InputSchema},
		{Name: "t", Description: "d", InputSchema: json.RawMessage(`{"type":"object"}`)},
		{Name: "t", Description: "d", InputSchema: a.InputSchema, OutputSchema: json.RawMessage(`{"type":"object"}`)},
	} {
		if h, _ := proxy.ToolHash(changed); h == ha {
			t.Errorf("change not detected: %+v", changed)
		}
	}
}

func TestParseCommandFlag(t *testing.T) {
	u, err := proxy.ParseCommandFlag(`gh=npx -y "@scope/server x" --flag='a b'`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"npx", "-y", "@scope/server x", "--flag=a b"}
	if u.Name != "gh" || u.Prefix != "gh" || strings.Join(u.Command, "|") != strings.Join(want, "|") {
		t.Fatalf("got %+v", u)
	}
	if u, err := proxy.ParseCommandFlag("docs=https://docs.example.com/mcp"); err != nil || u.URL != "https://docs.example.com/mcp" {
		t.Fatalf("url form: %+v %v", u, err)
	}
	for _, bad := range []string{"nocommand", "=x", `a=x "unterminated`, "a b=x"} {
		if _, err := proxy.ParseCommandFlag(bad); err == nil {
			t.Errorf("ParseCommandFlag(%q) succeeded", bad)
		}
	}
}

func TestCollisionsReportedAtStart(t *testing.T) {
	gw, err := proxy.New(proxy.Options{
		Reserved: []string{"test_simple_text"},
		Upstreams: []proxy.Upstream{
			{Name: "a", Prefix: "a", Command: []string{fixture}},
			{Name: "b", Prefix: "b", Command: []string{fixture, "-resources=false"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = gw.Start(context.Background(), mcp.NewServer(&mcp.Implementation{Name: "x", Version: "1"}, nil))
	if err != nil {
		t.Fatalf("distinct prefixes should not collide: %v", err)
	}
	gw.Close()
	gw, _ = proxy.New(proxy.Options{
		Reserved:  []string{"test_simple_text"},
		Upstreams: []proxy.Upstream{{Name: "a", Command: []string{fixture, "-resources=false"}}},
	})
	err = gw.Start(context.Background(), mcp.NewServer(&mcp.Implementation{Name: "x", Version: "1"}, nil))
	if err == nil || !strings.Contains(err.Error(), `tool "test_simple_text" of upstream a collides with a built-in tool`) {
		t.Fatalf("collision with a built-in tool: %v", err)
	}
}

// TestConcurrentCallsAndProgress runs calls from several sessions at once
// on one shared upstream connection: each caller gets its own result and
// only its own progress notifications, under its own token.
func TestConcurrentCallsAndProgress(t *testing.T) {
	_, server := start(t, proxy.Options{Upstreams: []proxy.Upstream{{Name: "fx", Prefix: "fx", Command: []string{fixture}, Isolation: proxy.Shared}}})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mu sync.Mutex
			var tokens []any
			client := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
					mu.Lock()
					tokens = append(tokens, req.Params.ProgressToken)
					mu.Unlock()
				},
			})
			st, ct := mcp.NewInMemoryTransports()
			ss, err := server.Connect(context.Background(), st, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer ss.Close()
			cs, err := client.Connect(context.Background(), ct, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer cs.Close()
			token := fmt.Sprintf("caller-%d", i)
			params := &mcp.CallToolParams{Name: "fx__test_tool_with_progress"}
			params.SetProgressToken(token)
			res, err := cs.CallTool(context.Background(), params)
			if err != nil || mcptest.Text(res) != "Tool with progress executed successfully" {
				t.Errorf("caller %d: %v %v", i, err, res)
				return
			}
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if len(tokens) != 3 {
				t.Errorf("caller %d got %d progress notifications, want 3: %v", i, len(tokens), tokens)
			}
			for _, tok := range tokens {
				if tok != token {
					t.Errorf("caller %d got progress for token %v", i, tok)
				}
			}
		}()
	}
	wg.Wait()
}

// TestSamplingNeverGoesToAnotherCaller checks that a sampling request from
// a shared upstream, made while calls from two sessions are in progress, is
// refused instead of being sent to either.
func TestSamplingNeverGoesToAnotherCaller(t *testing.T) {
	_, server := start(t, proxy.Options{Upstreams: []proxy.Upstream{{Name: "fx", Prefix: "fx", Command: []string{fixture}, Timeout: 5 * time.Second}}})
	var asked sync.Map
	connect := func(name string) *mcp.ClientSession {
		client := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ClientOptions{
			CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				asked.Store(name, true)
				return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "from " + name}}, nil
			},
		})
		st, ct := mcp.NewInMemoryTransports()
		ss, err := server.Connect(context.Background(), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		// Sampling requests during a call exist up to 2025-11-25; later
		// protocol versions use multi round-trip results instead.
		cs, err := client.Connect(context.Background(), ct, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	alice, bob := connect("alice"), connect("bob")
	// Alice alone: her sampling request reaches her.
	res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fx__test_sampling", Arguments: map[string]any{"prompt": "hi"}})
	if err != nil || mcptest.Text(res) != "LLM response: from alice" {
		t.Fatalf("sampling with one caller: %v %v", err, res)
	}
	asked.Delete("alice")
	// Bob's call is in progress (sleeping) while Alice's asks for sampling.
	done := make(chan struct{})
	go func() {
		bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fx__fixture_sleep", Arguments: map[string]any{"ms": 1500}})
		close(done)
	}()
	time.Sleep(200 * time.Millisecond)
	res, err = alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fx__test_sampling", Arguments: map[string]any{"prompt": "hi"}})
	if err == nil && !res.IsError {
		t.Fatalf("ambiguous sampling request was answered: %v", mcptest.Text(res))
	}
	if _, ok := asked.Load("bob"); ok {
		t.Fatal("alice's upstream request was sent to bob")
	}
	<-done
}

type sessionKey struct{}

// TestPerUserConnectionLimit checks max_connections: a new caller beyond
// it takes the place of the least recently used idle one, and is refused
// while every connection has a call in progress.
func TestPerUserConnectionLimit(t *testing.T) {
	gw, err := proxy.New(proxy.Options{
		Upstreams: []proxy.Upstream{{Name: "fx", Prefix: "fx", Command: []string{fixture}, Isolation: proxy.PerUser, MaxConnections: 1}},
		Identity:  func(ctx context.Context) string { id, _ := ctx.Value(sessionKey{}).(string); return id },
	})
	if err != nil {
		t.Fatal(err)
	}
	so := &mcp.ServerOptions{}
	gw.Configure(so)
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, so)
	// Stand-in for guard.MCPMiddleware: each session is one identity.
	server.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			return next(context.WithValue(ctx, sessionKey{}, fmt.Sprintf("%p", req.GetSession())), method, req)
		}
	})
	if err := gw.Start(context.Background(), server); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	a, b := mcptest.ConnectInMemory(t, server), mcptest.ConnectInMemory(t, server)
	pid := func(cs *mcp.ClientSession) (string, bool) {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fx__fixture_counter"})
		if err != nil {
			t.Fatal(err)
		}
		return mcptest.Text(res), res.IsError
	}
	first, _ := pid(a)
	second, isErr := pid(b)
	if isErr || first == second {
		t.Fatalf("b did not get its own process in place of a's idle one: %s / %s", first, second)
	}
	if st := gw.Status(); st[0].Connections != 1 {
		t.Fatalf("connections = %d, want 1", st[0].Connections)
	}
	// b is busy: a new caller is refused rather than waiting or evicting.
	done := make(chan struct{})
	go func() {
		b.CallTool(context.Background(), &mcp.CallToolParams{Name: "fx__fixture_sleep", Arguments: map[string]any{"ms": 1000}})
		close(done)
	}()
	time.Sleep(200 * time.Millisecond)
	text, isErr := pid(a)
	if !isErr || !strings.Contains(text, "max_connections") {
		t.Fatalf("caller beyond the limit while all are busy: isError=%v %q", isErr, text)
	}
	<-done
}

// TestPaginationFollowed checks that every page of an upstream's lists is
// read: the fixture serving two items per page exposes as much as with one
// page.
func TestPaginationFollowed(t *testing.T) {
	one, _ := start(t, proxy.Options{Upstreams: []proxy.Upstream{{Name: "fx", Prefix: "fx", Command: []string{fixture}}}})
	paged, server := start(t, proxy.Options{Upstreams: []proxy.Upstream{{Name: "fx", Prefix: "fx", Command: []string{fixture, "-page-size", "2"}}}})
	want, got := one.Status()[0].Tools, paged.Status()[0].Tools
	if want < 20 || got != want {
		t.Fatalf("tools with 2 per page: %d, with one page: %d", got, want)
	}
	cs := mcptest.ConnectInMemory(t, server)
	n := 0
	for _, err := range cs.ResourceTemplates(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	var resources []string
	for r, err := range cs.Resources(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, r.URI)
	}
	if n != 1 || len(resources) != 3 {
		t.Fatalf("templates %d, resources %v", n, resources)
	}
}

// auditRecorder is an AuditSink that keeps records.
type auditRecorder struct {
	mu   sync.Mutex
	recs []*guard.Record
}

func (a *auditRecorder) Record(_ context.Context, r *guard.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
	return nil
}

// TestPinningFlagAndBlock checks both pinning modes against a real store:
// a changed definition is audited either way, hidden only with block.
func TestPinningFlagAndBlock(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	up := func(desc string, mode proxy.PinMode) proxy.Upstream {
		return proxy.Upstream{Name: "fx", Prefix: "fx", Command: []string{fixture}, Env: map[string]string{"FIXTURE_DESCRIPTION": desc}, Pinning: mode}
	}
	first, _ := start(t, proxy.Options{Pins: st, Upstreams: []proxy.Upstream{up("original", proxy.PinBlock)}})
	first.Close()
	pin, err := st.GetToolPin(context.Background(), "fx", "fixture_changing")
	if err != nil || len(pin.Hash) != 64 {
		t.Fatalf("not pinned on first sight: %+v %v", pin, err)
	}
	for _, mode := range []proxy.PinMode{proxy.PinFlag, proxy.PinBlock} {
		rec := &auditRecorder{}
		gw, server := start(t, proxy.Options{Pins: st, Audit: rec, Upstreams: []proxy.Upstream{up("changed", mode)}})
		cs := mcptest.ConnectInMemory(t, server)
		listed := false
		for tool, err := range cs.Tools(context.Background(), nil) {
			if err != nil {
				t.Fatal(err)
			}
			listed = listed || tool.Name == "fx__fixture_changing"
		}
		if listed != (mode == proxy.PinFlag) {
			t.Errorf("%s: changed tool listed = %v", mode, listed)
		}
		if got := gw.Status()[0].Blocked; got != map[proxy.PinMode]int{proxy.PinFlag: 0, proxy.PinBlock: 1}[mode] {
			t.Errorf("%s: blocked = %d", mode, got)
		}
		rec.mu.Lock()
		if len(rec.recs) != 1 || rec.recs[0].Method != "tools/pin" || rec.recs[0].Target != "fx__fixture_changing" ||
			(mode == proxy.PinBlock) != (rec.recs[0].Decision == guard.Denied) {
			t.Errorf("%s: audit records %+v", mode, rec.recs)
		}
		rec.mu.Unlock()
		gw.Close()
	}
	// The pin is unchanged until someone re-pins.
	if again, _ := st.GetToolPin(context.Background(), "fx", "fixture_changing"); again.Hash != pin.Hash {
		t.Fatal("a changed definition replaced the pin by itself")
	}
}

// TestHTTPUpstreamCredentialsStayHome checks that an HTTP upstream's
// configured credential is not sent to where a redirect points.
func TestHTTPUpstreamCredentialsStayHome(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	gw, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Name: "r", URL: redirector.URL + "/mcp", Headers: map[string]string{"Authorization": "Bearer upstream-secret"}, Timeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	err = gw.Start(context.Background(), mcp.NewServer(&mcp.Implementation{Name: "x", Version: "1"}, nil))
	if err == nil {
		t.Fatal("a redirecting upstream was accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Fatalf("the credential followed the redirect: %v", leaked)
	}
}

func TestToolsChangedReportsExposedNames(t *testing.T) {
	var got []string
	start(t, proxy.Options{
		Upstreams:    []proxy.Upstream{{Name: "fx", Prefix: "fx", Command: []string{fixture}}},
		ToolsChanged: func(names []string) { got = names },
	})
	if len(got) < 20 || !slices.Contains(got, "fx__test_simple_text") || !slices.IsSorted(got) {
		t.Fatalf("ToolsChanged got %v", got)
	}
}
