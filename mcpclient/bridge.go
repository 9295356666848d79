package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BridgeOptions configures [Bridge].
type BridgeOptions struct {
	// Header is added to every request to the remote server (not
	// Authorization, which comes from the handler).
	Header http.Header
	// IgnoreTools are path.Match patterns of tool names to hide: they are
	// removed from tools/list results and calls to them are refused
	// locally, never reaching the server.
	IgnoreTools []string
	// Log receives one line per problem the local client cannot see
	// otherwise (never secrets). Default: discard.
	Log io.Writer
	// MaxInFlight bounds the requests relayed concurrently. Default 64.
	MaxInFlight int
}

// Bridge relays JSON-RPC messages between a local MCP transport (for
// `mcpguard connect`, mcp.StdioTransport) and the remote MCP server at
// serverURL over streamable HTTP, authenticating with h. It relays messages
// as they are — requests, responses, notifications (progress,
// cancellation, list changes) and server-to-client requests (sampling,
// elicitation, roots) — so it needs no knowledge of the methods, except
// that it hides the IgnoreTools. A request the remote side cannot take
// (for instance because a login is required) is answered locally with a
// JSON-RPC error that says why. Bridge returns when the local side closes
// or ctx is done.
func Bridge(ctx context.Context, local mcp.Transport, serverURL string, h *Handler, opts BridgeOptions) error {
	for _, p := range opts.IgnoreTools {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("--ignore-tool %q: %w", p, err)
		}
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 64
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	b := &bridge{opts: opts, pending: map[jsonrpc.ID]string{}}
	ht := &headerTransport{base: http.DefaultTransport, header: opts.Header, version: &b.version, server: serverURL}
	hc := &http.Client{Transport: ht, CheckRedirect: refuseCrossOrigin(serverURL)}
	b.startListening = sync.OnceFunc(func() {
		if v, _ := b.version.Load().(string); v >= "2026-07-28" {
			return // that revision has no standalone stream
		}
		go b.listen(ctx, &http.Client{Transport: h.RoundTripper(ht), CheckRedirect: refuseCrossOrigin(serverURL)}, serverURL)
	})
	remote, err := (&mcp.StreamableClientTransport{Endpoint: serverURL, HTTPClient: hc, OAuthHandler: h, MaxRetries: 3}).Connect(ctx)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", serverURL, err)
	}
	defer remote.Close()
	lconn, err := local.Connect(ctx)
	if err != nil {
		return fmt.Errorf("opening the local transport: %w", err)
	}
	defer lconn.Close()
	b.local, b.remote = lconn, remote

	errc := make(chan error, 2)
	go func() { errc <- b.fromRemote(ctx) }()
	go func() { errc <- b.fromLocal(ctx) }()
	err = <-errc
	cancel()
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type bridge struct {
	opts          BridgeOptions
	local, remote mcp.Connection
	version       atomic.Value // string: the negotiated protocol version

	mu      sync.Mutex
	pending map[jsonrpc.ID]string // local requests whose responses are rewritten: id → method

	startListening func() // opens the standalone SSE stream, once
}

// fromLocal relays the local client's messages to the server.
func (b *bridge) fromLocal(ctx context.Context) error {
	sem := make(chan struct{}, b.opts.MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		msg, err := b.local.Read(ctx)
		if err != nil {
			return err
		}
		req, ok := msg.(*jsonrpc.Request)
		if !ok || !req.IsCall() {
			// Notifications and responses are sent in order (the server
			// answers them at once with 202): initialized before the next
			// request, a cancellation after its request.
			if b.send(ctx, msg) && ok && req.Method == "notifications/initialized" {
				b.startListening()
			}
			continue
		}
		{
			switch req.Method {
			case "tools/call":
				if name := toolName(req.Params); b.ignored(name) {
					b.reply(ctx, req.ID, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("tool %q is not available through this connection", name)})
					continue
				}
			case "initialize", "tools/list":
				b.mu.Lock()
				b.pending[req.ID] = req.Method
				b.mu.Unlock()
			}
			if req.Method == "initialize" { // the session must exist before anything else is sent
				b.send(ctx, msg)
				continue
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.send(ctx, msg)
		}()
	}
}

// send writes msg to the server; a call that cannot be sent is answered
// locally with the reason.
func (b *bridge) send(ctx context.Context, msg jsonrpc.Message) (ok bool) {
	err := b.remote.Write(ctx, msg)
	if err == nil {
		return true
	}
	fmt.Fprintf(b.opts.Log, "mcpguard connect: %v\n", err)
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
		b.mu.Lock()
		delete(b.pending, req.ID)
		b.mu.Unlock()
		b.reply(ctx, req.ID, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "mcpguard connect: " + err.Error()})
	}
	return false
}

func (b *bridge) reply(ctx context.Context, id jsonrpc.ID, e *jsonrpc.Error) {
	b.local.Write(ctx, &jsonrpc.Response{ID: id, Error: e})
}

// fromRemote relays the server's messages to the local client.
func (b *bridge) fromRemote(ctx context.Context) error {
	for {
		msg, err := b.remote.Read(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				fmt.Fprintf(b.opts.Log, "mcpguard connect: the connection to the server ended: %v\n", err)
			}
			return err
		}
		if resp, ok := msg.(*jsonrpc.Response); ok {
			b.mu.Lock()
			method, found := b.pending[resp.ID]
			delete(b.pending, resp.ID)
			b.mu.Unlock()
			if found && resp.Error == nil {
				switch method {
				case "initialize":
					var r struct {
						ProtocolVersion string `json:"protocolVersion"`
					}
					if json.Unmarshal(resp.Result, &r) == nil && r.ProtocolVersion != "" {
						b.version.Store(r.ProtocolVersion)
					}
				case "tools/list":
					resp.Result = b.filterTools(resp.Result)
				}
			}
		}
		if err := b.local.Write(ctx, msg); err != nil {
			return err
		}
	}
}

func (b *bridge) ignored(name string) bool {
	for _, p := range b.opts.IgnoreTools {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func toolName(params json.RawMessage) string {
	var p struct {
		Name string `json:"name"`
	}
	json.Unmarshal(params, &p)
	return p.Name
}

// filterTools removes the ignored tools from a tools/list result, keeping
// every other field as the server sent it.
func (b *bridge) filterTools(result json.RawMessage) json.RawMessage {
	if len(b.opts.IgnoreTools) == 0 {
		return result
	}
	var r map[string]json.RawMessage
	if err := json.Unmarshal(result, &r); err != nil {
		return result
	}
	var tools []json.RawMessage
	if err := json.Unmarshal(r["tools"], &tools); err != nil {
		return result
	}
	kept := tools[:0]
	for _, t := range tools {
		if !b.ignored(toolName(t)) {
			kept = append(kept, t)
		}
	}
	enc, err := json.Marshal(kept)
	if err != nil {
		return result
	}
	r["tools"] = enc
	out, err := json.Marshal(r)
	if err != nil {
		return result
	}
	return out
}

// headerTransport adds the configured headers to requests to the server's
// origin (never elsewhere: they may be credentials), and the negotiated
// MCP-Protocol-Version when the go-sdk connection (used below the MCP
// session layer here) has not set it.
type headerTransport struct {
	base    http.RoundTripper
	header  http.Header
	version *atomic.Value
	server  string
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if !sameOrigin(r.URL, t.server) {
		return t.base.RoundTrip(r)
	}
	for k, vs := range t.header {
		if http.CanonicalHeaderKey(k) == "Authorization" {
			continue
		}
		r.Header[http.CanonicalHeaderKey(k)] = vs
	}
	if v, _ := t.version.Load().(string); v != "" && r.Header.Get("Mcp-Protocol-Version") == "" {
		r.Header.Set("Mcp-Protocol-Version", v)
	}
	return t.base.RoundTrip(r)
}
