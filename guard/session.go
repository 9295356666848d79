package guard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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

// NewSessionID returns a new session id: 256 bits from crypto/rand,
// base64url (visible ASCII). It suits mcp.ServerOptions.GetSessionID.
func NewSessionID() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
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
