package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "mcpguard.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRateLimitAndLockout(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `rate_limit:
  enabled: true
  requests_per_minute: 10
  tools:
    execute_sql: {requests_per_minute: 2}
  lockout: {max_failures: 3, window: 1m, duration: 2m}
`)
	s := start(t, dir, nil, "--config", cfg, "--demo")
	if !strings.Contains(s.output.String(), "[OK] Rate limiting: 10 req/min per user") {
		t.Fatalf("startup report:\n%s", s.output)
	}
	ctx := context.Background()

	t.Run("per tool", func(t *testing.T) {
		cs := mustConnect(t, s.url, bearer(s.keys["admin"]))
		for i := range 2 {
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "SELECT 1"}}); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "SELECT 1"}}); err == nil {
			t.Fatal("third execute_sql within a minute was allowed")
		}
		// Other tools still work for the same identity.
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_tables", Arguments: map[string]any{}}); err != nil {
			t.Fatalf("list_tables after execute_sql limit: %v", err)
		}
	})

	t.Run("per identity with Retry-After", func(t *testing.T) {
		h := bearer(s.keys["viewer"])
		var last *http.Response
		n := 0
		for n < 50 {
			last = post(t, s.url, h, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
			if last.StatusCode == 429 {
				break
			}
			n++
		}
		if last.StatusCode != 429 || n > 10 {
			t.Fatalf("got %d after %d requests, want 429 after at most 10", last.StatusCode, n)
		}
		ra, err := strconv.Atoi(last.Header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After = %q", last.Header.Get("Retry-After"))
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["decision"] == "RATE_LIMITED" && r["user"] == "viewer" })
	})

	t.Run("lockout", func(t *testing.T) {
		for i := range 3 {
			if resp := post(t, s.url, bearer(fmt.Sprintf("mcp_%016x_%s", i, strings.Repeat("A", 43))), initBody); resp.StatusCode != 401 {
				t.Fatalf("guess %d: %d", i, resp.StatusCode)
			}
		}
		resp := post(t, s.url, bearer(s.keys["developer"]), initBody)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("valid key from a locked-out source: %d", resp.StatusCode)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["decision"] == "AUTH_FAILED" && strings.Contains(reason, "locked out")
		})
	})
}

// TestAuditNoSecrets runs every kind of decision and checks that no key,
// token or secret argument reaches the audit log, and that a hostile key
// name cannot forge a record.
func TestAuditNoSecrets(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, nil, "--demo")
	ctx := context.Background()
	forged := "eve\n{\"decision\":\"ALLOWED\",\"user\":\"admin\"}\x1b[2J"
	eveKey, _ := createKey(t, dir, "--name", forged, "--role", "developer")
	cs := mustConnect(t, s.url, bearer(eveKey))
	const secretArg = "correct-horse-battery-staple"
	cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "SELECT '" + secretArg + "'"}})
	cs.CallTool(ctx, &mcp.CallToolParams{Name: "drop_table", Arguments: map[string]any{"table": "users", "password": secretArg}})
	post(t, s.url, bearer(s.keys["admin"][:30]+strings.Repeat("B", 43)), initBody)
	post(t, s.url, http.Header{"X-Api-Key": {"garbage-" + secretArg}}, initBody)

	allowed := waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["decision"] == "ALLOWED" && r["target"] == "execute_sql" })
	if allowed["user"] != forged || allowed["args_sha256"] == nil || allowed["duration_ns"] == nil || allowed["key_id"] == nil {
		t.Fatalf("ALLOWED record = %v", allowed)
	}
	rec := waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["decision"] == "DENIED" && r["target"] == "drop_table" })
	if rec["user"] != forged {
		t.Fatalf("user round-trip = %q", rec["user"])
	}
	if args, _ := rec["args"].(map[string]any); args["table"] != "users" || args["password"] != nil {
		t.Fatalf("args = %v", rec["args"])
	}
	data, err := os.ReadFile(s.auditLg)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{eveKey, eveKey[21:], s.keys["admin"], s.keys["admin"][21:], s.keys["developer"][21:], secretArg} {
		if strings.Contains(string(data), secret) {
			t.Fatalf("audit log contains a secret (%.12s…)", secret)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(line, `{"ts":"`) || strings.ContainsRune(line, '\x1b') {
			t.Fatalf("malformed or injected audit line: %q", line)
		}
	}
	// audit tail shows the record with the control characters neutralised.
	out, err := run(t, dir, nil, "audit", "tail", "--decision", "DENIED")
	if err != nil || !strings.Contains(out, "drop_table") || strings.ContainsRune(out, '\x1b') {
		t.Fatalf("audit tail: %v\n%q", err, out)
	}
	out, err = run(t, dir, nil, "audit", "tail", "--decision", "AUTH_FAILED")
	if err != nil || strings.Count(out, "AUTH_FAILED") != 2 {
		t.Fatalf("audit tail --decision AUTH_FAILED: %v\n%s", err, out)
	}
	// The same records are in the store, for audit query (JSON Lines).
	// (The store copy is written in batches: allow it a moment.)
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err = run(t, dir, nil, "audit", "query", "--decision", "DENIED", "--tool", "drop_table", "--format", "json")
		if err != nil {
			t.Fatalf("audit query: %v\n%s", err, out)
		}
		if strings.TrimSpace(out) != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var got map[string]any
	if len(lines) != 1 || jsonUnmarshal([]byte(lines[0]), &got) != nil || got["user"] != forged || got["target"] != "drop_table" {
		t.Fatalf("audit query output:\n%s", out)
	}
	if strings.Contains(out, secretArg) || strings.Contains(out, eveKey[21:]) {
		t.Fatal("audit query output contains a secret")
	}
	// The admin page asks a browser to sign in.
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(strings.TrimSuffix(s.url, "/mcp") + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || !strings.Contains(resp.Header.Get("Location"), "/admin/login") {
		t.Fatalf("GET /admin/ without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeConfig(t, dir, "server:\n  addr: 127.0.0.1:8080\nrate_limit:\n  requests_per_minute: lots\nauth:\n  jwt:\n    enabled: true\n    issuer: https://x\n    audiences: [a]\n    keys:\n      - {kid: k, alg: HS256, secret: hunter2-inline-secret}\n")
	out, err := run(t, dir, nil, "config", "check", bad)
	if err == nil {
		t.Fatalf("config check accepted a bad file:\n%s", out)
	}
	for _, want := range []string{"mcpguard.yaml:4", "rate_limit.requests_per_minute", "mcpguard.yaml:11", "auth.jwt.keys[0].secret"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2-inline-secret") {
		t.Fatal("config check echoed the inline secret")
	}
	// serve refuses to start with the same message.
	out, err = run(t, dir, nil, "serve", "--config", bad)
	if err == nil || !strings.Contains(out, "mcpguard.yaml:4") {
		t.Fatalf("serve with a bad config: %v\n%s", err, out)
	}
	good := writeConfig(t, dir, "rate_limit:\n  requests_per_minute: 50\n")
	if out, err := run(t, dir, nil, "config", "check", good); err != nil {
		t.Fatalf("good config refused: %v\n%s", err, out)
	}
	// Every setting can come from the environment.
	out, err = run(t, dir, []string{"MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE=nope"}, "config", "check", good)
	if err == nil || !strings.Contains(out, "MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE") {
		t.Fatalf("bad env value: %v\n%s", err, out)
	}
}
