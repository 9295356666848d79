package proxy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
)

// upstream is the gateway's state for one configured upstream.
type upstream struct {
	cfg Upstream
	g   *Gateway

	mu        sync.Mutex
	slots     map[string]*slot
	state     string
	lastErr   string
	restarts  int
	tools     map[string]*mcp.Tool // exposed name → upstream definition
	blocked   map[string]string    // exposed name → why
	init      *mcp.InitializeResult
	prompts   map[string]*mcp.Prompt // guarded by g.mu
	resources map[string]*mcp.Resource
	templates map[string]*mcp.ResourceTemplate
}

// slot holds the connection for one key; its mutex serializes dialing.
// Backoff is per slot, so that one user's failing process does not delay
// the others'.
type slot struct {
	mu sync.Mutex
	c  *conn

	// guarded by upstream.mu
	failures int // consecutive failed starts or crashes
	retryAt  time.Time
	lastErr  string
}

// maxBackoff caps the wait between restarts of a failing upstream.
const maxBackoff = 30 * time.Second

// backoff is the wait after n consecutive failures: 250ms, 500ms, 1s, ...
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := 250 * time.Millisecond << min(n-1, 10)
	return min(d, maxBackoff)
}

// get returns a live connection for key, dialing (or redialing after a
// crash, once the backoff has passed) as needed. It never waits longer than
// the upstream's timeout.
func (u *upstream) get(ctx context.Context, key string) (*conn, error) {
	u.mu.Lock()
	s := u.slots[key]
	if s == nil {
		if len(u.slots) >= u.cfg.maxConnections() {
			u.mu.Unlock()
			if !u.evictIdle() {
				return nil, fmt.Errorf("upstream %s has %d connections in use, its max_connections; retry later", u.cfg.Name, u.cfg.maxConnections())
			}
			u.mu.Lock()
		}
		if s = u.slots[key]; s == nil {
			s = &slot{}
			u.slots[key] = s
		}
	}
	u.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil && s.c.alive() {
		return s.c, nil
	}
	u.mu.Lock()
	wait := time.Until(s.retryAt)
	last := s.lastErr
	u.mu.Unlock()
	if wait > 0 {
		return nil, fmt.Errorf("upstream %s is unavailable (%s); it is restarted in %s, retry then", u.cfg.Name, last, wait.Round(time.Millisecond))
	}
	restart := s.c != nil
	c, err := u.dial(ctx, key)
	var ue *userError
	if errors.As(err, &ue) {
		return nil, fmt.Errorf("upstream %s: %v", u.cfg.Name, ue.err)
	}
	if err != nil {
		u.failed(s, err.Error())
		return nil, fmt.Errorf("upstream %s could not be started: %v", u.cfg.Name, err)
	}
	s.c = c
	u.mu.Lock()
	if restart {
		u.restarts++
	}
	u.init = c.cs.InitializeResult()
	u.state = "ready"
	u.mu.Unlock()
	return c, nil
}

// evictIdle closes the least recently used connection with no call in
// progress, reporting whether there was one.
func (u *upstream) evictIdle() bool {
	var oldKey string
	var old *conn
	for key, c := range u.conns() {
		if !c.busy() && (old == nil || c.lastUsed.Load() < old.lastUsed.Load()) {
			oldKey, old = key, c
		}
	}
	if old == nil {
		return false
	}
	u.g.logger.Info("closing the least recently used upstream connection to make room", "upstream", u.cfg.Name, "pid", old.pid())
	u.drop(oldKey, old)
	return true
}

// drop closes key's connection if it is still c.
func (u *upstream) drop(key string, c *conn) {
	u.mu.Lock()
	s := u.slots[key]
	u.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		if s.c == c {
			s.c = nil
			u.mu.Lock()
			delete(u.slots, key)
			u.mu.Unlock()
		}
		s.mu.Unlock()
	}
	c.close()
}

// lost records a connection that ended without being closed.
func (u *upstream) lost(c *conn, reason string) {
	u.g.logger.Warn("upstream connection lost", "upstream", u.cfg.Name, "pid", c.pid(), "reason", reason)
	u.mu.Lock()
	s := u.slots[c.key]
	u.mu.Unlock()
	u.failed(s, reason)
}

// failed records a failed start or a crash for s (nil: the slot is gone).
func (u *upstream) failed(s *slot, reason string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lastErr = reason
	u.state = "failing"
	if s != nil {
		s.failures++
		s.lastErr = reason
		s.retryAt = time.Now().Add(backoff(s.failures))
	}
}

// succeeded resets the backoff of c's slot after a request the upstream
// answered.
func (u *upstream) succeeded(c *conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.slots[c.key]; s != nil && s.failures != 0 {
		s.failures = 0
	}
	u.state = "ready"
}

func (u *upstream) setState(state, lastErr string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.state = state
	if lastErr != "" {
		u.lastErr = lastErr
	}
}

func (u *upstream) lastError() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastErr
}

func (u *upstream) initResult() *mcp.InitializeResult {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.init
}

// conns returns the live connections by key.
func (u *upstream) conns() map[string]*conn {
	u.mu.Lock()
	slots := make(map[string]*slot, len(u.slots))
	for k, s := range u.slots {
		slots[k] = s
	}
	u.mu.Unlock()
	out := map[string]*conn{}
	for k, s := range slots {
		s.mu.Lock()
		if s.c != nil {
			out[k] = s.c
		}
		s.mu.Unlock()
	}
	return out
}

// Status is a snapshot of one upstream's health.
type Status struct {
	// Name is the upstream's name.
	Name string `json:"name"`
	// Kind is "stdio" or "http".
	Kind string `json:"kind"`
	// Isolation is "shared" or "per-user".
	Isolation Isolation `json:"isolation"`
	// State is "starting", "ready" or "failing".
	State string `json:"state"`
	// PIDs are the process ids of a stdio upstream's live processes.
	PIDs []int `json:"pids,omitempty"`
	// Connections counts live connections (processes for stdio).
	Connections int `json:"connections"`
	// Restarts counts connections re-established after one was lost.
	Restarts int `json:"restarts"`
	// LastError is the most recent failure, if any.
	LastError string `json:"last_error,omitempty"`
	// Tools counts the tools exposed; Blocked those withheld by pinning.
	Tools   int `json:"tools"`
	Blocked int `json:"blocked"`
}

// Status returns the health of every upstream, in configuration order.
func (g *Gateway) Status() []Status {
	var out []Status
	for _, u := range g.upstreams {
		st := Status{Name: u.cfg.Name, Kind: "stdio", Isolation: u.cfg.Isolation}
		if u.cfg.URL != "" {
			st.Kind = "http"
		}
		for _, c := range u.conns() {
			if c.alive() {
				st.Connections++
				if pid := c.pid(); pid != 0 {
					st.PIDs = append(st.PIDs, pid)
				}
			}
		}
		sort.Ints(st.PIDs)
		u.mu.Lock()
		st.State, st.Restarts, st.LastError = u.state, u.restarts, u.lastErr
		st.Tools, st.Blocked = len(u.tools), len(u.blocked)
		u.mu.Unlock()
		out = append(out, st)
	}
	return out
}

func validTemplate(t string) bool {
	_, err := uritemplate.New(t)
	return err == nil
}

// matchTemplate reports whether uri is an instance of the URI template.
func matchTemplate(tpl, uri string) bool {
	t, err := uritemplate.New(tpl)
	if err != nil {
		return false
	}
	return t.Regexp().MatchString(uri)
}
