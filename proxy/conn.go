package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// upstreamProtocol is the protocol version spoken to upstreams: the newest
// one in which servers may still send sampling, elicitation and logging
// requests over a session.
const upstreamProtocol = "2025-11-25"

// conn is one client session with an upstream: for stdio, one process.
type conn struct {
	u       *upstream
	key     string // principal ID for per-user upstreams, "" when shared
	cs      *mcp.ClientSession
	proc    *process // nil for HTTP upstreams
	tripped atomic.Bool
	started time.Time
	closing atomic.Bool
	dead    chan struct{}

	lastUsed atomic.Int64 // unix nanoseconds

	// ordered is set when pending counts the log and progress
	// notifications read but not yet relayed (stdio upstreams).
	ordered bool
	pending atomic.Int64

	mu       sync.Mutex
	nextID   uint64
	calls    map[uint64]*call
	progress map[string]*call
	subs     map[string]int
}

// call is a downstream request in progress on a conn.
type call struct {
	id      uint64
	done    bool // the call returned; kept briefly for late notifications
	ss      *mcp.ServerSession
	ctx     context.Context // the downstream request's: messages sent with it travel on that request's stream
	token   any             // the caller's progress token, if any
	upToken string          // the token sent upstream in its place
}

// dial connects to the upstream and completes the MCP handshake.
func (u *upstream) dial(ctx context.Context, key string) (*conn, error) {
	c := &conn{u: u, key: key, started: time.Now(), dead: make(chan struct{}),
		calls: map[uint64]*call{}, progress: map[string]*call{}, subs: map[string]int{}}
	c.lastUsed.Store(time.Now().UnixNano())
	var transport mcp.Transport
	cfg := &u.cfg
	var userEnv, userHeaders map[string]string
	if key != "" && cfg.UserCredentials != nil {
		var err error
		if userEnv, userHeaders, err = cfg.UserCredentials(ctx); err != nil {
			return nil, &userError{err}
		}
	}
	if cfg.URL != "" {
		base := http.DefaultTransport
		if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
			base = cfg.HTTPClient.Transport
		}
		headers := cfg.Headers
		if len(userHeaders) > 0 {
			headers = map[string]string{}
			for _, m := range []map[string]string{cfg.Headers, userHeaders} {
				for k, v := range m {
					headers[k] = v
				}
			}
		}
		hc := &http.Client{
			Transport: &headerTransport{next: base, headers: headers, max: cfg.maxResponse(), tripped: &c.tripped},
			// The upstream's credentials are added to every request this
			// client sends: following a redirect would send them to
			// wherever the upstream points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		transport = &mcp.StreamableClientTransport{Endpoint: cfg.URL, HTTPClient: hc, MaxRetries: 2}
	} else {
		p, err := startProcess(cfg, userEnv)
		if err != nil {
			return nil, err
		}
		c.proc = p
		c.ordered = true
		transport = orderedTransport{Transport: &mcp.IOTransport{
			Reader: readCloser{&boundedLines{r: p.stdout, max: cfg.maxResponse(), tripped: &c.tripped}, p.stdout},
			Writer: p.stdin,
		}, c: c}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpguard-gateway", Version: "1"}, c.clientOptions())
	dctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	type result struct {
		cs  *mcp.ClientSession
		err error
	}
	ch := make(chan result, 1)
	go func() {
		cs, err := client.Connect(dctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: upstreamProtocol})
		ch <- result{cs, err}
	}()
	var r result
	if c.proc != nil {
		// A process that exits during the handshake fails it at once.
		select {
		case r = <-ch:
		case <-c.proc.done:
			cancel()
			r = <-ch
			if r.err == nil {
				r.cs.Close()
			}
			r.err = errors.New(c.proc.exitReason())
		}
	} else {
		r = <-ch
	}
	if r.err != nil {
		if c.proc != nil {
			c.proc.stop(time.Second)
			if reason := c.proc.exitReason(); reason != "" && !errors.Is(r.err, errTooLarge) {
				r.err = fmt.Errorf("%w: %s", r.err, reason)
			}
		}
		if dctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("no MCP handshake within %s", cfg.timeout())
		}
		return nil, r.err
	}
	c.cs = r.cs
	if res := c.cs.InitializeResult(); res != nil && res.Capabilities != nil && res.Capabilities.Logging != nil {
		// Ask for everything; each caller's own level filters what it gets.
		if err := c.cs.SetLoggingLevel(dctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
			u.g.logger.Debug("upstream refused logging/setLevel", "upstream", cfg.Name, "err", err)
		}
	}
	go c.watch()
	return c, nil
}

// userError is a caller's own problem (missing per-user credentials), not
// the upstream's: it does not count as a failure of the upstream.
type userError struct{ err error }

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// watch waits for the session to end and reports an unexpected end.
func (c *conn) watch() {
	err := c.cs.Wait()
	if c.proc != nil {
		if c.closing.Load() {
			c.proc.stop(3 * time.Second)
		} else {
			// The process ended the session: give it a moment to exit so
			// its exit status can be reported.
			select {
			case <-c.proc.done:
			case <-time.After(time.Second):
				c.proc.stop(time.Second)
			}
		}
	}
	close(c.dead)
	if c.closing.Load() {
		return
	}
	reason := "connection closed"
	if err != nil {
		reason = err.Error()
	}
	if c.proc != nil {
		if r := c.proc.exitReason(); r != "" {
			reason = r
		}
	}
	if c.tripped.Load() {
		reason = fmt.Sprintf("closed after a message larger than max_response_bytes (%d)", c.u.cfg.maxResponse())
	}
	c.u.lost(c, reason)
}

func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return !c.closing.Load()
	}
}

// close ends the session on purpose (idle reaping, shutdown).
func (c *conn) close() {
	if c.closing.Swap(true) {
		return
	}
	c.cs.Close()
	<-c.dead
}

func (c *conn) pid() int {
	if c.proc != nil && c.proc.cmd.Process != nil {
		return c.proc.cmd.Process.Pid
	}
	return 0
}

// begin registers a downstream call so that the upstream's notifications
// and requests can be routed back to it.
func (c *conn) begin(ctx context.Context, ss *mcp.ServerSession, token any) *call {
	c.lastUsed.Store(time.Now().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	cl := &call{id: c.nextID, ss: ss, ctx: ctx, token: token}
	if token != nil {
		cl.upToken = "mcpguard-" + strconv.FormatUint(cl.id, 10)
		c.progress[cl.upToken] = cl
	}
	c.calls[cl.id] = cl
	return cl
}

// linger is how long a finished call still receives the upstream's
// notifications: go-sdk hands notifications to their handler apart from
// responses, so the last log or progress message sent before a result can
// be processed just after it.
const linger = 500 * time.Millisecond

func (c *conn) end(cl *call) {
	c.lastUsed.Store(time.Now().UnixNano())
	c.mu.Lock()
	cl.done = true
	c.mu.Unlock()
	time.AfterFunc(linger, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.calls, cl.id)
		if cl.upToken != "" {
			delete(c.progress, cl.upToken)
		}
	})
}

func (c *conn) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.calls {
		if !cl.done {
			return true
		}
	}
	// Subscriptions do not keep an idle connection: go-sdk forgets a
	// closed session's subscriptions without unsubscribing.
	return false
}

// orderedTransport counts the notifications its connection reads, so that
// a call's result is not returned before the log and progress messages the
// upstream sent ahead of it were relayed. (go-sdk reads responses and
// notifications in order, but hands notifications to their handlers apart.)
type orderedTransport struct {
	mcp.Transport
	c *conn
}

func (t orderedTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	conn, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &orderedConn{Connection: conn, c: t.c}, nil
}

type orderedConn struct {
	mcp.Connection
	c *conn
}

func (o *orderedConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := o.Connection.Read(ctx)
	if req, ok := msg.(*jsonrpc.Request); ok && !req.ID.IsValid() {
		switch req.Method {
		case "notifications/message", "notifications/progress":
			o.c.pending.Add(1)
		}
	}
	return msg, err
}

// relayed marks one counted notification as handled.
func (c *conn) relayed() {
	if c.ordered {
		c.pending.Add(-1)
	}
}

// drain waits, briefly, until the notifications read before a call's
// result have been relayed.
func (c *conn) drain() {
	for i := 0; c.pending.Load() > 0 && i < 200; i++ {
		time.Sleep(time.Millisecond)
	}
}

// errAmbiguous is returned to an upstream whose request cannot be
// attributed to exactly one downstream session.
var errAmbiguous = errors.New("mcpguard: this request cannot be attributed to a single caller (several sessions have calls in progress on this upstream); configure isolation: per-user")

// errNoCaller is returned to an upstream that sends a request while no call
// is in progress.
var errNoCaller = errors.New("mcpguard: no call is in progress to ask the client on behalf of")

// session returns the downstream session of the calls in progress, if they
// all belong to one; when none is in progress, that of the calls that just
// finished (late notifications).
//
// It also returns the context to send with: the call's own while it runs,
// so that go-sdk sends the message on that request's response stream, and
// fallback once it has finished.
func (c *conn) session(fallback context.Context) (*mcp.ServerSession, context.Context, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, finished := range []bool{false, true} {
		var found *call
		for _, cl := range c.calls {
			switch {
			case cl.done != finished || cl.ss == nil:
			case found == nil:
				found = cl
			case found.ss != cl.ss:
				return nil, nil, errAmbiguous
			}
		}
		if found != nil {
			if finished || found.ctx == nil {
				return found.ss, fallback, nil
			}
			return found.ss, found.ctx, nil
		}
	}
	return nil, nil, errNoCaller
}

// relayContext is the downstream call's context (for routing), cancelled
// also when the upstream's own request context is.
func relayContext(call, upstream context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(call, timeout)
	stop := context.AfterFunc(upstream, cancel)
	return ctx, func() { stop(); cancel() }
}

// clientOptions are the handlers through which the upstream reaches the
// downstream caller.
func (c *conn) clientOptions() *mcp.ClientOptions {
	u := c.u
	return &mcp.ClientOptions{
		Logger: u.g.logger,
		// No roots are exposed to upstreams.
		Capabilities:         &mcp.ClientCapabilities{},
		MultiRoundTrip:       &mcp.MultiRoundTripOptions{Disabled: true},
		CreateMessageHandler: c.sample,
		ElicitationHandler:   c.elicit,
		ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
			defer c.relayed()
			tok, _ := req.Params.ProgressToken.(string)
			c.mu.Lock()
			cl := c.progress[tok]
			c.mu.Unlock()
			if cl == nil || cl.ss == nil {
				return
			}
			p := *req.Params
			p.ProgressToken = cl.token
			c.mu.Lock()
			if !cl.done {
				ctx = cl.ctx
			}
			c.mu.Unlock()
			if err := cl.ss.NotifyProgress(ctx, &p); err != nil {
				u.g.logger.Debug("relaying progress failed", "upstream", u.cfg.Name, "err", err)
			}
		},
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
			defer c.relayed()
			ss, ctx, err := c.session(ctx)
			if err != nil {
				u.g.logger.Debug("upstream log message not relayed", "upstream", u.cfg.Name, "reason", err)
				return
			}
			if err := ss.Log(ctx, req.Params); err != nil {
				u.g.logger.Debug("relaying log message failed", "upstream", u.cfg.Name, "err", err)
			}
		},
		ToolListChangedHandler:     func(context.Context, *mcp.ToolListChangedRequest) { u.g.resync(u, c) },
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { u.g.resync(u, c) },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { u.g.resync(u, c) },
		ResourceUpdatedHandler: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			if s := u.g.server; s != nil {
				s.ResourceUpdated(ctx, req.Params)
			}
		},
	}
}

// sample relays sampling/createMessage to the caller whose call is in
// progress.
func (c *conn) sample(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	ss, cctx, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := relayContext(cctx, ctx, c.u.cfg.timeout())
	defer cancel()
	return ss.CreateMessage(cctx, req.Params)
}

// elicit relays elicitation/create to the caller whose call is in progress.
func (c *conn) elicit(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
	ss, cctx, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := relayContext(cctx, ctx, c.u.cfg.timeout())
	defer cancel()
	return ss.Elicit(cctx, req.Params)
}
