package guard

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpguard/mcpguard/internal/tick"
)

// SessionRegistry binds MCP sessions (Mcp-Session-Id) to the principal
// that opened them ([HTTPOptions.Sessions]). Sessions never authenticate:
// every request is authenticated first, and a session is then only usable
// by its owner, as [SessionOwner] names it.
type SessionRegistry interface {
	// Open records the new session id for its owner.
	Open(ctx context.Context, id string, p *Principal) error
	// Use checks that the live session id belongs to owner (a
	// [SessionOwner] value) and records the use. It returns an error
	// wrapping ErrSessionNotFound when the session is unknown, expired,
	// idle too long, evicted or terminated, and ErrSessionOwner when it
	// belongs to someone else (whose use is then not recorded).
	Use(ctx context.Context, id, owner string) error
	// Close terminates a session (HTTP DELETE).
	Close(ctx context.Context, id string) error
	// Ended returns those of ids that are no longer live (unknown,
	// expired, idle too long, evicted or terminated).
	Ended(ctx context.Context, ids []string) ([]string, error)
}

// Session refusals.
var (
	// ErrSessionNotFound marks an unknown or terminated session.
	ErrSessionNotFound = errors.New("session not found or terminated")
	// ErrSessionOwner marks a session presented by a principal other
	// than its owner.
	ErrSessionOwner = errors.New("session belongs to another principal")
)

// SessionOwner is the binding of a session: the principal's ID (method,
// issuer, subject: stable across token refreshes) and its OAuth client.
func SessionOwner(p *Principal) string {
	return url.QueryEscape(p.ClientID) + "|" + p.ID()
}

// NewSessionID returns a new session id: 256 bits from crypto/rand in
// unpadded base32 (52 visible ASCII characters, A-Z and 2-7, so that an id
// never looks like a command-line flag). It suits
// mcp.ServerOptions.GetSessionID.
func NewSessionID() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

// SessionlessVersion is the first MCP revision without protocol sessions.
const SessionlessVersion = "2026-07-28"

// sessionful reports whether a request with this MCP-Protocol-Version uses
// the session-based (2025) transport: no header (an initialize, or a
// 2025-03-26 client) or a 2025 revision.
func sessionful(version string) bool { return version == "" || version < SessionlessVersion }

// validVersion reports whether the MCP-Protocol-Version header is absent or
// a revision go-sdk negotiates.
func validVersion(version string) bool {
	return version == "" || slices.Contains(mcp.SupportedProtocolVersions(), version)
}

// streamLimiter caps the concurrent requests of each principal.
type streamLimiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// acquire takes a slot for key; false when key already holds max.
func (l *streamLimiter) acquire(key string) bool {
	if l.max <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[key] >= l.max {
		return false
	}
	l.n[key]++
	return true
}

func (l *streamLimiter) release(key string) {
	if l.max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[key]--; l.n[key] <= 0 {
		delete(l.n, key)
	}
}

// sessionWriter calls onHeader just before the response header is
// written, so that a new session is registered before its id reaches the
// client; when onHeader answers instead (false), the wrapped handler's
// response is discarded.
type sessionWriter struct {
	http.ResponseWriter
	onHeader   func(status int) bool
	wrote      bool
	suppressed bool
}

func (w *sessionWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if !w.onHeader(code) {
			w.suppressed = true
			return
		}
	}
	if !w.suppressed {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.suppressed {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher for streamed (SSE) responses.
func (w *sessionWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.suppressed {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// liveSessions are the sessions this process opened, with their owners,
// so that SweepSessions can close the handler's copy of one that ended
// elsewhere (revoked, evicted, expired): its open streams end with it.
type liveSessions struct {
	mu      sync.Mutex
	owners  map[string]*Principal
	handler http.Handler // the handler behind HTTPMiddleware, with identity injection
}

func (l *liveSessions) add(id string, p *Principal, h http.Handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owners == nil {
		l.owners = map[string]*Principal{}
	}
	l.owners[id] = p
	l.handler = h
}

func (l *liveSessions) has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.owners[id]
	return ok
}

// elsewhereKey marks a request's context when its session is live in the
// registry but was not opened by this process.
type elsewhereKey struct{}

// SessionHeldElsewhere reports whether the request with this context (as
// passed on by the HTTP middleware) belongs to a live session of its
// principal that this process did not open: one opened by another replica
// sharing the session registry, or by this process before a restart. The
// session-based go-sdk handler does not know such a session; the handler
// behind the middleware serves it statelessly instead (see
// internal/app's mcpHandler).
func SessionHeldElsewhere(ctx context.Context) bool {
	v, _ := ctx.Value(elsewhereKey{}).(bool)
	return v
}

func (l *liveSessions) remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.owners, id)
}

// SweepSessions checks every interval, until ctx is done, whether the
// sessions this process opened are still live in HTTPOptions.Sessions, and
// terminates the handler's copy of those that ended, closing their open
// streams. Without it, an ended session is refused on its next request
// (404) but its streams stay open until the handler's idle timeout.
func (g *Guard) SweepSessions(ctx context.Context, interval time.Duration) {
	if g.HTTP.Sessions == nil {
		return
	}
	tick.Every(ctx, interval, func() { g.sweepSessions(ctx) })
}

// sweepSessions is one pass of SweepSessions.
func (g *Guard) sweepSessions(ctx context.Context) {
	g.live.mu.Lock()
	ids := make([]string, 0, len(g.live.owners))
	for id := range g.live.owners {
		ids = append(ids, id)
	}
	h := g.live.handler
	g.live.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ended, err := g.HTTP.Sessions.Ended(ctx, ids)
	if err != nil {
		g.logger().Warn("session: checking open sessions failed", "err", err)
		return
	}
	for _, id := range ended {
		g.live.mu.Lock()
		owner := g.live.owners[id]
		delete(g.live.owners, id)
		g.live.mu.Unlock()
		if owner != nil && h != nil {
			terminate(ctx, h, id, owner)
		}
	}
}

// terminate sends the handler a DELETE for session id on behalf of its
// owner, as the owner's client would.
func terminate(ctx context.Context, h http.Handler, id string, owner *Principal) {
	c := &caller{principal: owner, requestID: newRequestID(), transport: "http"}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, callerKey{}, c), http.MethodDelete, "/", nil)
	if err != nil {
		return
	}
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Authorization", "Bearer mcpguard-authenticated")
	h.ServeHTTP(discardWriter{header: http.Header{}}, req)
}

// discardWriter is a ResponseWriter that drops the response.
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
