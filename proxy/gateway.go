package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Options configure a Gateway.
type Options struct {
	// Upstreams are the servers to put behind the gateway.
	Upstreams []Upstream
	// Separator joins a prefix and a name; "" means DefaultSeparator.
	Separator string
	// Reserved are names already registered on the server (built-in tools
	// and prompts); an upstream exposing one of them is a collision.
	Reserved []string
	// Pins records tool definitions for pinning; nil turns pinning off.
	Pins PinStore
	// Audit receives the records of pinning decisions; nil records none.
	Audit guard.AuditSink
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// IdleTimeout closes per-user connections unused for this long. Zero
	// means 10 minutes.
	IdleTimeout time.Duration
	// ToolsChanged, if set, is called with every exposed upstream tool
	// name whenever the set changes (at start, after list_changed): for
	// metrics that label by tool, say. It must not call back into the
	// Gateway.
	ToolsChanged func(names []string)
	// Identity returns the key of the caller's connection for per-user
	// upstreams. Nil means guard.PrincipalFromContext(ctx).ID().
	Identity func(ctx context.Context) string
}

// Gateway aggregates upstream MCP servers into one mcp.Server.
type Gateway struct {
	opts      Options
	sep       string
	logger    *slog.Logger
	upstreams []*upstream
	byName    map[string]*upstream
	server    *mcp.Server

	mu        sync.Mutex
	owners    map[string]string    // exposed tool/prompt name or resource URI → upstream ("" built-in)
	templates map[string]*upstream // URI template → owner
	stop      chan struct{}
	stopped   sync.WaitGroup
}

// New validates the options and returns a Gateway that has not connected
// to anything yet.
func New(opts Options) (*Gateway, error) {
	g := &Gateway{opts: opts, sep: opts.Separator, logger: opts.Logger, byName: map[string]*upstream{},
		owners: map[string]string{}, templates: map[string]*upstream{}, stop: make(chan struct{})}
	if g.sep == "" {
		g.sep = DefaultSeparator
	}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if g.opts.IdleTimeout <= 0 {
		g.opts.IdleTimeout = 10 * time.Minute
	}
	prefixes := map[string]string{}
	for i := range opts.Upstreams {
		cfg := opts.Upstreams[i]
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if _, dup := g.byName[cfg.Name]; dup {
			return nil, fmt.Errorf("upstream %s is configured twice", cfg.Name)
		}
		if cfg.Prefix != "" {
			if other, dup := prefixes[cfg.Prefix]; dup {
				return nil, fmt.Errorf("upstreams %s and %s use the same prefix %q", other, cfg.Name, cfg.Prefix)
			}
			prefixes[cfg.Prefix] = cfg.Name
		}
		if cfg.Isolation == "" {
			cfg.Isolation = Shared
		}
		if cfg.Pinning == "" {
			cfg.Pinning = PinBlock
		}
		u := &upstream{cfg: cfg, g: g, slots: map[string]*slot{}, state: "starting"}
		g.upstreams = append(g.upstreams, u)
		g.byName[cfg.Name] = u
	}
	for _, r := range opts.Reserved {
		g.owners["tool\x00"+r] = ""
	}
	return g, nil
}

// Configure sets the server options the gateway needs before the
// mcp.Server is created: resource subscription and completion, which
// go-sdk only takes as options.
func (g *Gateway) Configure(o *mcp.ServerOptions) {
	if len(g.upstreams) == 0 {
		return
	}
	o.SubscribeHandler = g.subscribe
	o.UnsubscribeHandler = g.unsubscribe
	o.CompletionHandler = g.complete
}

// exposed returns the name a caller sees for an upstream's tool or prompt.
func (g *Gateway) exposed(u *upstream, name string) string {
	if u.cfg.Prefix == "" {
		return name
	}
	return u.cfg.Prefix + g.sep + name
}

// Start connects to every upstream, lists what each offers and registers
// it on server. Collisions between exposed names are an error naming all of
// them. A shared upstream stays connected; a per-user upstream's first
// connection is only used for discovery and closed.
func (g *Gateway) Start(ctx context.Context, server *mcp.Server) error {
	g.server = server
	var errs []error
	type listing struct {
		u   *upstream
		cat *catalog
	}
	var all []listing
	for _, u := range g.upstreams {
		c, err := u.get(ctx, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: %w", u.cfg.Name, err))
			continue
		}
		cat, err := u.list(ctx, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: listing its features: %w", u.cfg.Name, err))
			continue
		}
		all = append(all, listing{u, cat})
		if u.cfg.Isolation == PerUser {
			u.drop("", c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		g.Close()
		return err
	}
	// Collisions first, all of them, before anything is registered.
	seen := map[string]string{}
	for n, o := range g.owners {
		seen[n] = o
	}
	var collisions []string
	claim := func(kind, name, owner string) {
		if prev, ok := seen[kind+"\x00"+name]; ok {
			if prev == owner {
				return // listed twice by the same upstream: apply keeps the first
			}
			if prev == "" {
				prev = "a built-in tool"
			} else {
				prev = "upstream " + prev
			}
			collisions = append(collisions, fmt.Sprintf("%s %q of upstream %s collides with %s", kind, name, owner, prev))
			return
		}
		seen[kind+"\x00"+name] = owner
	}
	for _, l := range all {
		for _, t := range l.cat.tools {
			claim("tool", g.exposed(l.u, t.Name), l.u.cfg.Name)
		}
		for _, p := range l.cat.prompts {
			claim("prompt", g.exposed(l.u, p.Name), l.u.cfg.Name)
		}
		for _, r := range l.cat.resources {
			claim("resource", r.URI, l.u.cfg.Name)
		}
		for _, t := range l.cat.templates {
			claim("resource template", t.URITemplate, l.u.cfg.Name)
		}
	}
	if len(collisions) > 0 {
		sort.Strings(collisions)
		g.Close()
		return fmt.Errorf("name collisions between upstreams (set a different prefix or separator): %s", strings.Join(collisions, "; "))
	}
	for _, l := range all {
		g.apply(ctx, l.u, l.cat)
		l.u.setState("ready", "")
	}
	g.stopped.Add(1)
	go g.reap()
	return nil
}

// Close closes every upstream connection and stops their processes.
func (g *Gateway) Close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.stopped.Wait()
	var wg sync.WaitGroup
	for _, u := range g.upstreams {
		for key, c := range u.conns() {
			wg.Add(1)
			go func() { defer wg.Done(); u.drop(key, c) }()
		}
	}
	wg.Wait()
}

// reap closes idle per-user connections.
func (g *Gateway) reap() {
	defer g.stopped.Done()
	t := time.NewTicker(max(g.opts.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-g.opts.IdleTimeout).UnixNano()
		for _, u := range g.upstreams {
			if u.cfg.Isolation != PerUser {
				continue
			}
			for key, c := range u.conns() {
				if c.lastUsed.Load() < cutoff && !c.busy() {
					g.logger.Info("closing idle upstream connection", "upstream", u.cfg.Name, "pid", c.pid())
					u.drop(key, c)
				}
			}
		}
	}
}

// catalog is what an upstream offers.
type catalog struct {
	tools     []*mcp.Tool
	prompts   []*mcp.Prompt
	resources []*mcp.Resource
	templates []*mcp.ResourceTemplate
}

// list reads every page of every list the upstream supports.
func (u *upstream) list(ctx context.Context, c *conn) (*catalog, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.timeout())
	defer cancel()
	caps := &mcp.ServerCapabilities{}
	if r := c.cs.InitializeResult(); r != nil && r.Capabilities != nil {
		caps = r.Capabilities
	}
	cat := &catalog{}
	var err error
	if caps.Tools != nil {
		if cat.tools, err = collect(c.cs.Tools(ctx, nil)); err != nil {
			return nil, fmt.Errorf("tools/list: %w", err)
		}
	}
	if caps.Prompts != nil {
		if cat.prompts, err = collect(c.cs.Prompts(ctx, nil)); err != nil {
			return nil, fmt.Errorf("prompts/list: %w", err)
		}
	}
	if caps.Resources != nil {
		if cat.resources, err = collect(c.cs.Resources(ctx, nil)); err != nil {
			return nil, fmt.Errorf("resources/list: %w", err)
		}
		if cat.templates, err = collect(c.cs.ResourceTemplates(ctx, nil)); err != nil {
			return nil, fmt.Errorf("resources/templates/list: %w", err)
		}
	}
	return cat, nil
}

// maxListItems bounds how many items of one kind an upstream may list.
const maxListItems = 10_000

func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		if len(out) == maxListItems {
			return nil, fmt.Errorf("more than %d items", maxListItems)
		}
		out = append(out, v)
	}
	return out, nil
}

// resync re-lists an upstream after a list_changed notification. It runs
// in the background: the notification handler must not block the session.
func (g *Gateway) resync(u *upstream, c *conn) {
	if g.server == nil {
		return
	}
	go func() {
		ctx := context.Background()
		cat, err := u.list(ctx, c)
		if err != nil {
			g.logger.Warn("re-listing upstream after list_changed failed", "upstream", u.cfg.Name, "err", err)
			return
		}
		g.apply(ctx, u, cat)
	}()
}

// apply makes the server's registrations for u match cat.
func (g *Gateway) apply(ctx context.Context, u *upstream, cat *catalog) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.server
	name := u.cfg.Name
	listed := map[string]bool{}
	claim := func(key string) bool {
		if listed[key] {
			g.logger.Warn("upstream lists a name twice; the first is kept", "upstream", name, "name", key)
			return false
		}
		listed[key] = true
		if o, ok := g.owners[key]; ok && o != name {
			g.logger.Warn("upstream feature left out: the name is taken", "upstream", name, "name", key, "owner", o)
			return false
		}
		g.owners[key] = name
		return true
	}

	// Tools.
	want := map[string]*mcp.Tool{}
	blocked := map[string]string{}
	for _, t := range cat.tools {
		if err := checkSchemas(t); err != nil {
			g.logger.Warn("upstream tool left out", "upstream", name, "tool", t.Name, "err", err)
			continue
		}
		exp := g.exposed(u, t.Name)
		if !claim("tool\x00" + exp) {
			continue
		}
		if reason := g.checkPin(ctx, u, t, exp); reason != "" {
			blocked[exp] = reason
			continue
		}
		want[exp] = t
	}
	syncKind(g, "tool", u.tools, want, s.RemoveTools, func(exp string, t *mcp.Tool) {
		et := *t
		et.Name = exp
		s.AddTool(&et, g.callTool(u, t.Name))
	})
	for exp := range blocked {
		g.owners["tool\x00"+exp] = name
	}
	u.mu.Lock()
	u.tools, u.blocked = want, blocked
	u.mu.Unlock()
	if g.opts.ToolsChanged != nil {
		var names []string
		for key, owner := range g.owners {
			if name, ok := strings.CutPrefix(key, "tool\x00"); ok && owner != "" {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		g.opts.ToolsChanged(names)
	}

	// Prompts.
	wantP := map[string]*mcp.Prompt{}
	for _, p := range cat.prompts {
		exp := g.exposed(u, p.Name)
		if claim("prompt\x00" + exp) {
			wantP[exp] = p
		}
	}
	syncKind(g, "prompt", u.prompts, wantP, s.RemovePrompts, func(exp string, p *mcp.Prompt) {
		ep := *p
		ep.Name = exp
		s.AddPrompt(&ep, g.getPrompt(u, p.Name))
	})
	u.prompts = wantP

	// Resources and templates: URIs are kept.
	wantR := map[string]*mcp.Resource{}
	for _, r := range cat.resources {
		if claim("resource\x00" + r.URI) {
			wantR[r.URI] = r
		}
	}
	syncKind(g, "resource", u.resources, wantR, s.RemoveResources, func(_ string, r *mcp.Resource) {
		s.AddResource(r, g.readResource(u))
	})
	u.resources = wantR

	wantT := map[string]*mcp.ResourceTemplate{}
	for _, t := range cat.templates {
		if !validTemplate(t.URITemplate) {
			g.logger.Warn("upstream resource template left out: invalid URI template", "upstream", name, "template", t.URITemplate)
			continue
		}
		if claim("resource template\x00" + t.URITemplate) {
			wantT[t.URITemplate] = t
		}
	}
	syncKind(g, "resource template", u.templates, wantT, func(tpls ...string) {
		for _, tpl := range tpls {
			delete(g.templates, tpl)
		}
		s.RemoveResourceTemplates(tpls...)
	}, func(tpl string, t *mcp.ResourceTemplate) {
		s.AddResourceTemplate(t, g.readResource(u))
	})
	for tpl := range wantT {
		g.templates[tpl] = u
	}
	u.templates = wantT
}

// syncKind makes the server's registrations of one kind match want, given
// what is registered (have): it removes what is gone, releasing its name,
// and adds what is new or changed. g.mu is held.
func syncKind[T any](g *Gateway, kind string, have, want map[string]T, remove func(...string), add func(key string, item T)) {
	var gone []string
	for k := range have {
		if _, ok := want[k]; !ok {
			gone = append(gone, k)
			delete(g.owners, kind+"\x00"+k)
		}
	}
	if len(gone) > 0 {
		remove(gone...)
	}
	for k, item := range want {
		if old, ok := have[k]; ok && sameJSON(old, item) {
			continue
		}
		add(k, item)
	}
}

// checkSchemas refuses what mcp.Server.AddTool would panic on.
func checkSchemas(t *mcp.Tool) error {
	if t.InputSchema == nil {
		return errors.New("no input schema")
	}
	var in map[string]any
	if err := remarshal(t.InputSchema, &in); err != nil {
		return fmt.Errorf("input schema: %w", err)
	}
	if in["type"] != "object" {
		return errors.New(`input schema is not of type "object"`)
	}
	if t.OutputSchema != nil {
		var out any
		if err := remarshal(t.OutputSchema, &out); err != nil {
			return fmt.Errorf("output schema: %w", err)
		}
	}
	if t.Name == "" {
		return errors.New("no name")
	}
	return nil
}

func remarshal(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// identity returns the connection key for the caller in ctx.
func (g *Gateway) identity(ctx context.Context, u *upstream) (string, error) {
	if u.cfg.Isolation != PerUser {
		return "", nil
	}
	var id string
	if g.opts.Identity != nil {
		id = g.opts.Identity(ctx)
	} else {
		id = guard.PrincipalFromContext(ctx).ID()
	}
	if id == "" {
		return "", errors.New("no authenticated caller: a per-user upstream needs one")
	}
	return id, nil
}

// toolError is a tools/call result that reports a failure to the caller
// (and its model) in words.
func toolError(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// callTool returns the handler that forwards a tool call to u.
func (g *Gateway) callTool(u *upstream, name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		key, err := g.identity(ctx, u)
		if err != nil {
			return toolError("%v", err), nil
		}
		c, err := u.get(ctx, key)
		if err != nil {
			return toolError("%v", err), nil
		}
		cl := c.begin(ctx, req.Session, req.Params.GetProgressToken())
		defer c.end(cl)
		params := &mcp.CallToolParams{Name: name}
		if len(req.Params.Arguments) > 0 {
			params.Arguments = req.Params.Arguments
		}
		if cl.upToken != "" {
			params.SetProgressToken(cl.upToken)
		}
		cctx, cancel := context.WithTimeout(ctx, u.cfg.timeout())
		defer cancel()
		res, err := c.cs.CallTool(cctx, params)
		c.drain()
		if err != nil {
			return nil, g.forwardError(ctx, cctx, u, c, err)
		}
		u.succeeded(c)
		return res, nil
	}
}

// forwardError turns a failed forwarded request into the error the caller
// sees: the upstream's own JSON-RPC error unchanged, or a clear message for
// timeouts, oversized responses and lost connections.
func (g *Gateway) forwardError(ctx, cctx context.Context, u *upstream, c *conn, err error) error {
	var rpc *jsonrpc.Error
	switch {
	case errors.As(err, &rpc):
		return rpc
	case ctx.Err() != nil:
		return ctx.Err()
	case c.tripped.Load():
		return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("upstream %s sent a response larger than its max_response_bytes (%d); the response was dropped", u.cfg.Name, u.cfg.maxResponse())}
	case cctx.Err() != nil:
		return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("upstream %s did not answer within %s; the request was cancelled", u.cfg.Name, u.cfg.timeout())}
	}
	// A lost connection fails pending requests before the loss is
	// recorded: give it a moment to be.
	select {
	case <-c.dead:
		if c.tripped.Load() {
			return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("upstream %s sent a response larger than its max_response_bytes (%d); the response was dropped", u.cfg.Name, u.cfg.maxResponse())}
		}
		return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("upstream %s stopped while handling the request (%s); it is restarted on the next request", u.cfg.Name, u.lastError())}
	case <-time.After(2 * time.Second):
	}
	g.logger.Warn("upstream request failed", "upstream", u.cfg.Name, "err", err)
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("upstream %s failed to handle the request; see mcpguard's log", u.cfg.Name)}
}

// getPrompt returns the handler that forwards prompts/get to u.
func (g *Gateway) getPrompt(u *upstream, name string) mcp.PromptHandler {
	return func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		f, err := g.enter(ctx, u, req.Session)
		if err != nil {
			return nil, err
		}
		defer f.release()
		p := *req.Params
		p.Name = name
		res, err := f.c.cs.GetPrompt(f.ctx, &p)
		if err != nil {
			return nil, f.fail(ctx, err)
		}
		u.succeeded(f.c)
		return res, nil
	}
}

// readResource returns the handler that forwards resources/read to u.
func (g *Gateway) readResource(u *upstream) mcp.ResourceHandler {
	return func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		f, err := g.enter(ctx, u, req.Session)
		if err != nil {
			return nil, err
		}
		defer f.release()
		res, err := f.c.cs.ReadResource(f.ctx, req.Params)
		if err != nil {
			return nil, f.fail(ctx, err)
		}
		u.succeeded(f.c)
		return res, nil
	}
}

// forward is a request being forwarded to an upstream connection.
type forward struct {
	g   *Gateway
	u   *upstream
	c   *conn
	ctx context.Context // bounded by the upstream's timeout
	// release ends the forward: call it when the upstream has answered.
	release func()
}

// fail turns the upstream's error into the caller's; ctx is the caller's.
func (f *forward) fail(ctx context.Context, err error) error {
	return f.g.forwardError(ctx, f.ctx, f.u, f.c, err)
}

// enter gets the caller's connection to u and registers the request on it.
func (g *Gateway) enter(ctx context.Context, u *upstream, ss *mcp.ServerSession) (*forward, error) {
	key, err := g.identity(ctx, u)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: err.Error()}
	}
	c, err := u.get(ctx, key)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
	}
	cl := c.begin(ctx, ss, nil)
	cctx, cancel := context.WithTimeout(ctx, u.cfg.timeout())
	return &forward{g: g, u: u, c: c, ctx: cctx, release: func() { cancel(); c.end(cl) }}, nil
}

// enterURI is enter for the upstream serving a resource URI.
func (g *Gateway) enterURI(ctx context.Context, uri string, ss *mcp.ServerSession) (*forward, error) {
	u := g.ownerOfURI(uri)
	if u == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unknown resource"}
	}
	return g.enter(ctx, u, ss)
}

// ownerOfURI returns the upstream serving a resource URI.
func (g *Gateway) ownerOfURI(uri string) *upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	if o, ok := g.owners["resource\x00"+uri]; ok && o != "" {
		return g.byName[o]
	}
	for tpl, u := range g.templates {
		if matchTemplate(tpl, uri) {
			return u
		}
	}
	return nil
}

// subscribe forwards resources/subscribe; several downstream subscriptions
// to one URI on one upstream connection are one subscription upstream.
func (g *Gateway) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	f, err := g.enterURI(ctx, req.Params.URI, req.Session)
	if err != nil {
		return err
	}
	defer f.release()
	c := f.c
	c.mu.Lock()
	first := c.subs[req.Params.URI] == 0
	c.subs[req.Params.URI]++
	c.mu.Unlock()
	if !first {
		return nil
	}
	if err := c.cs.Subscribe(f.ctx, req.Params); err != nil {
		c.mu.Lock()
		c.subs[req.Params.URI]--
		c.mu.Unlock()
		return f.fail(ctx, err)
	}
	return nil
}

// unsubscribe forwards resources/unsubscribe when the last downstream
// subscription to the URI on the connection ends.
func (g *Gateway) unsubscribe(ctx context.Context, req *mcp.UnsubscribeRequest) error {
	f, err := g.enterURI(ctx, req.Params.URI, req.Session)
	if err != nil {
		return err
	}
	defer f.release()
	c := f.c
	c.mu.Lock()
	n := c.subs[req.Params.URI]
	if n > 1 {
		c.subs[req.Params.URI] = n - 1
	} else {
		delete(c.subs, req.Params.URI)
	}
	c.mu.Unlock()
	if n != 1 {
		return nil
	}
	if err := c.cs.Unsubscribe(f.ctx, req.Params); err != nil {
		return f.fail(ctx, err)
	}
	return nil
}

// complete forwards completion/complete to the upstream owning the prompt
// or resource template referred to.
func (g *Gateway) complete(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	empty := &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{}}}
	ref := req.Params.Ref
	if ref == nil {
		return empty, nil
	}
	var u *upstream
	p := *req.Params
	r := *ref
	p.Ref = &r
	switch ref.Type {
	case "ref/prompt":
		g.mu.Lock()
		owner := g.owners["prompt\x00"+ref.Name]
		g.mu.Unlock()
		if u = g.byName[owner]; u != nil {
			r.Name = strings.TrimPrefix(ref.Name, u.cfg.Prefix+g.sep)
			if u.cfg.Prefix == "" {
				r.Name = ref.Name
			}
		}
	case "ref/resource":
		g.mu.Lock()
		u = g.templates[ref.URI]
		g.mu.Unlock()
		if u == nil {
			u = g.ownerOfURI(ref.URI)
		}
	}
	if u == nil {
		return empty, nil
	}
	if r := u.initResult(); r == nil || r.Capabilities == nil || r.Capabilities.Completions == nil {
		return empty, nil
	}
	f, err := g.enter(ctx, u, req.Session)
	if err != nil {
		return nil, err
	}
	defer f.release()
	res, err := f.c.cs.Complete(f.ctx, &p)
	if err != nil {
		return nil, f.fail(ctx, err)
	}
	return res, nil
}

// Middleware returns receiving middleware that refuses calls to tools
// blocked by pinning with a clear message, instead of go-sdk's "unknown
// tool". Install it inside guard.MCPMiddleware, so that the refusal is
// authorized and audited like any call.
func (g *Gateway) Middleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/call" {
				if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok {
					if reason := g.blockedReason(p.Name); reason != "" {
						return toolError("BLOCKED by mcpguard: %s", reason), nil
					}
				}
			}
			return next(ctx, method, req)
		}
	}
}

func (g *Gateway) blockedReason(exposed string) string {
	g.mu.Lock()
	owner := g.owners["tool\x00"+exposed]
	g.mu.Unlock()
	u := g.byName[owner]
	if u == nil {
		return ""
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.blocked[exposed]
}

// Upstreams returns the names of the configured upstreams, in order.
func (g *Gateway) Upstreams() []string {
	var out []string
	for _, u := range g.upstreams {
		out = append(out, u.cfg.Name)
	}
	return slices.Clip(out)
}

// Owner returns the upstream that serves an item: kind is "tool",
// "prompt" or "resource", name the exposed tool or prompt name or the
// resource URI. It is "" for mcpguard's own items and for names no
// upstream serves (yet). Policies read it as resource.upstream.
func (g *Gateway) Owner(kind, name string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.owners[kind+"\x00"+name]
}
