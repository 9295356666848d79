package mcpclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// upstream is a go-sdk MCP server over streamable HTTP whose tools use the
// server-to-client features a relay must carry.
type upstream struct {
	url       string
	server    *mcp.Server
	cancelled chan struct{} // closed when "wait" sees its request cancelled
	headers   chan http.Header
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{cancelled: make(chan struct{}), headers: make(chan http.Header, 100)}
	u.server = mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	mcp.AddTool(u.server, &mcp.Tool{Name: "chatty"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		ss := req.Session
		for i := range 3 {
			if err := ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: float64(i + 1), Total: 3}); err != nil {
				return nil, nil, err
			}
		}
		ss.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "working"})
		msg, err := ss.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}})
		if err != nil {
			return nil, nil, err
		}
		el, err := ss.Elicit(ctx, &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, err
		}
		text := msg.Content.(*mcp.TextContent).Text + "/" + el.Action + "/" + el.Content["name"].(string)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	mcp.AddTool(u.server, &mcp.Tool{Name: "wait"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		<-ctx.Done()
		close(u.cancelled)
		return nil, nil, ctx.Err()
	})
	mcp.AddTool(u.server, &mcp.Tool{Name: "secret_admin"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "should not run"}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return u.server }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case u.headers <- r.Header.Clone():
		default:
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	u.url = ts.URL + "/mcp"
	return u
}

func newTestHandler(t *testing.T, serverURL string, interactive bool) *Handler {
	t.Helper()
	st, err := OpenStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{ServerURL: serverURL, Store: st, Interactive: interactive, Log: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// bridged starts Bridge on one end of an in-memory pipe and connects a
// go-sdk client with opts to the other.
func bridged(t *testing.T, serverURL string, h *Handler, bo BridgeOptions, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	clientT, bridgeT := mcp.NewInMemoryTransports()
	done := make(chan error, 1)
	go func() { done <- Bridge(ctx, bridgeT, serverURL, h, bo) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "local", Version: "1"}, opts).Connect(ctx, clientT, nil)
	if err != nil {
		t.Fatalf("connect through the bridge: %v", err)
	}
	t.Cleanup(func() {
		cs.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Bridge did not return after the client closed")
		}
	})
	return cs
}

func TestBridgeRelaysServerFeatures(t *testing.T) {
	up := newUpstream(t)
	var mu sync.Mutex
	var progress []float64
	var logs []string
	listChanged := make(chan struct{}, 1)
	opts := &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "sampled"}}, nil
		},
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "ada"}}, nil
		},
		ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Progress)
			mu.Unlock()
		},
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
			mu.Lock()
			logs = append(logs, req.Params.Data.(string))
			mu.Unlock()
		},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case listChanged <- struct{}{}:
			default:
			}
		},
	}
	hdr, err := ParseHeaders([]string{"X-Tenant=blue"})
	if err != nil {
		t.Fatal(err)
	}
	cs := bridged(t, up.url, newTestHandler(t, up.url, false), BridgeOptions{Header: hdr, IgnoreTools: []string{"secret_*"}}, opts)
	ctx := context.Background()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}

	t.Run("sampling, elicitation, progress, logging", func(t *testing.T) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "chatty", Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "p1"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Content[0].(*mcp.TextContent).Text; got != "sampled/accept/ada" {
			t.Errorf("result = %q", got)
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			mu.Lock()
			n, l := len(progress), len(logs)
			mu.Unlock()
			if n == 3 && l == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("progress = %v, logs = %v", progress, logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("ignore-tool", func(t *testing.T) {
		lt, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range lt.Tools {
			names = append(names, tool.Name)
		}
		if slices.Contains(names, "secret_admin") || !slices.Contains(names, "chatty") {
			t.Errorf("tools = %v", names)
		}
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "secret_admin"}); err == nil || !strings.Contains(err.Error(), "not available") {
			t.Errorf("ignored tool call: %v", err)
		}
	})

	t.Run("cancellation", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "wait"})
			errc <- err
		}()
		time.Sleep(200 * time.Millisecond)
		cancel()
		select {
		case <-up.cancelled:
		case <-time.After(3 * time.Second):
			t.Fatal("the server never saw the cancellation")
		}
		<-errc
	})

	t.Run("notification outside a request (standalone stream)", func(t *testing.T) {
		mcp.AddTool(up.server, &mcp.Tool{Name: "added"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
		select {
		case <-listChanged:
		case <-time.After(3 * time.Second):
			t.Fatal("tools/list_changed did not reach the local client")
		}
	})

	t.Run("headers", func(t *testing.T) {
		var sawTenant, sawVersion bool
		for {
			select {
			case h := <-up.headers:
				sawTenant = sawTenant || h.Get("X-Tenant") == "blue"
				sawVersion = sawVersion || h.Get("Mcp-Protocol-Version") != ""
				continue
			default:
			}
			break
		}
		if !sawTenant || !sawVersion {
			t.Errorf("X-Tenant seen %v, Mcp-Protocol-Version seen %v", sawTenant, sawVersion)
		}
	})
}
