package e2e

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/internal/servicetest"
)

// partition forwards TCP connections from a loopback port to a server and
// can cut them all (a network partition: the server unreachable, open
// connections dead) and heal again on the same port.
type partition struct {
	t      *testing.T
	addr   string // where clients connect
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newPartition(t *testing.T, target string) *partition {
	t.Helper()
	p := &partition{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *partition) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *partition) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// heal listens on the same port again.
func (p *partition) heal() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("listen again on %s: %v", p.addr, err)
}

// TestPostgresOutage cuts mcpguard off from PostgreSQL while it serves:
// /readyz turns 503 naming the store, a request that needs the store gets
// a clear 503 (quickly, without internals) and an ERROR audit record, a
// key created meanwhile fails as a whole, and once the database is
// reachable again readiness and service come back without a restart.
func TestPostgresOutage(t *testing.T) {
	pg := servicetest.PostgresSchema(t)
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	p := newPartition(t, u.Host)
	u.Host = p.addr
	dir := t.TempDir()
	writeConfig(t, dir, "store: \""+u.String()+"\"\n")
	key, _ := createKey(t, dir, "--name", "olga", "--role", "viewer")
	s := start(t, dir, nil, "--demo")
	base := strings.TrimSuffix(s.url, "/mcp")
	ready := func() (int, string) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ready(); code != 200 {
		t.Fatalf("readyz before the outage: %d %q", code, body)
	}
	sid := openSession(t, s.url, bearer(key))
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	if resp := post(t, s.url, withSession(bearer(key), sid), list); resp.StatusCode != 200 {
		t.Fatalf("tools/list before the outage: %d", resp.StatusCode)
	}

	p.cut()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := ready()
		if code == http.StatusServiceUnavailable && strings.Contains(body, "store") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz during the outage: %d %q, want 503 naming the store", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, s.url, strings.NewReader(list))
	req.Header = withSession(bearer(key), sid)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "temporarily_unavailable") {
		t.Fatalf("tools/list during the outage: %d %s, want 503 temporarily_unavailable", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %s", d)
	}
	for _, internal := range []string{p.addr, "dial", "postgres", "pgx", "connection refused"} {
		if strings.Contains(strings.ToLower(string(body)), internal) {
			t.Errorf("the refusal leaks %q: %s", internal, body)
		}
	}
	waitAudit(t, s.auditLg, func(r map[string]any) bool {
		reason, _ := r["reason"].(string)
		return r["decision"] == "ERROR" && strings.Contains(reason, "session registry unavailable")
	})
	if out, err := run(t, dir, nil, "keys", "create", "--name", "during-outage", "--role", "viewer"); err == nil {
		t.Fatalf("keys create during the outage succeeded:\n%s", out)
	}

	p.heal()
	deadline = time.Now().Add(15 * time.Second)
	for {
		if code, _ := ready(); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			code, body := ready()
			t.Fatalf("readyz after the outage: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp := post(t, s.url, withSession(bearer(key), sid), list); resp.StatusCode != 200 {
		t.Fatalf("tools/list after the outage: %d", resp.StatusCode)
	}
	out, err := run(t, dir, nil, "keys", "list")
	if err != nil {
		t.Fatalf("keys list: %v\n%s", err, out)
	}
	if strings.Contains(out, "during-outage") {
		t.Fatalf("the key created during the outage exists:\n%s", out)
	}
	if !strings.Contains(out, "olga") {
		t.Fatalf("keys list lacks the key created before:\n%s", out)
	}
}
