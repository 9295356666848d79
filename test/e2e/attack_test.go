package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestAttacks runs attacks on the HTTP transport against one served
// mcpguard, each asserting the refusal, its status, the audit record and
// that nothing ran. (JWT forgeries are in jwt_test.go, OAuth attacks in
// package oauth and oauth_node_test.go, lockout in limits_test.go; the
// catalogue is in SECURITY.md.)
func TestAttacks(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `rate_limit:
  enabled: true
  requests_per_minute: 1000
  burst: 1000
  tools:
    execute_sql: {requests_per_minute: 5, burst: 5}
  lockout: {max_failures: 0}
audit:
  argument_fields: [sql, table]
`)
	s := start(t, dir, nil, "--config", cfg, "--demo")
	admin := bearer(s.keys["admin"])
	ctx := context.Background()
	usersLeft := func() string {
		cs := mustConnect(t, s.url, admin)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT COUNT(*) FROM users"}})
		if err != nil {
			t.Fatal(err)
		}
		return text(res)
	}
	before := usersLeft()
	session := func(h http.Header) http.Header {
		r := post(t, s.url, h, initBody)
		out := h.Clone()
		out.Set("Mcp-Session-Id", r.Header.Get("Mcp-Session-Id"))
		out.Set("Mcp-Protocol-Version", "2025-06-18")
		post(t, s.url, out, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		return out
	}
	deleteAll := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_users","arguments":{"ids":[1,2,3]}}}`

	t.Run("token in the query string", func(t *testing.T) {
		for _, q := range []string{"access_token", "api_key", "token"} {
			r := post(t, s.url+"?"+q+"="+url.QueryEscape(s.keys["admin"]), http.Header{}, deleteAll)
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("?%s=: status %d, want 401", q, r.StatusCode)
			}
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["decision"] == "AUTH_FAILED" && r["reason"] == "no credentials" })
	})

	t.Run("JSON-RPC batch", func(t *testing.T) {
		h := session(admin)
		r := post(t, s.url, h, "["+deleteAll+"]")
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("batch: status %d, want 400", r.StatusCode)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["decision"] == "DENIED" && strings.Contains(reason, "batches are not supported")
		})
	})

	t.Run("oversized body", func(t *testing.T) {
		h := session(admin)
		body := `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"delete_users","arguments":{"ids":[1],"pad":"` + strings.Repeat("x", 2<<20) + `"}}}`
		r := post(t, s.url, h, body)
		if r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("2 MiB body: status %d, want 413", r.StatusCode)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["decision"] == "DENIED" && strings.HasPrefix(reason, "request body larger than")
		})
	})

	t.Run("deeply nested JSON", func(t *testing.T) {
		h := session(admin)
		depth := 200000
		body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_users","arguments":{"ids":[1],"x":` +
			strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}}}`
		r := post(t, s.url, h, body)
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("nested %d deep: status %d, want 400", depth, r.StatusCode)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["decision"] == "DENIED" && strings.Contains(reason, "not a single valid JSON-RPC message")
		})
		// The server still serves.
		if r := post(t, s.url, admin, initBody); r.StatusCode != http.StatusOK {
			t.Fatalf("after the nested body: %d", r.StatusCode)
		}
	})

	t.Run("huge headers", func(t *testing.T) {
		h := admin.Clone()
		h.Set("X-Padding", strings.Repeat("a", 200<<10))
		req, _ := http.NewRequest("POST", s.url, strings.NewReader(initBody))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("200 KiB header: status %d, want 431", resp.StatusCode)
			}
		}
		if r := post(t, s.url, admin, initBody); r.StatusCode != http.StatusOK {
			t.Fatalf("after huge headers: %d", r.StatusCode)
		}
	})

	t.Run("concurrent calls racing the rate limiter", func(t *testing.T) {
		const limit, tries = 5, 30
		var ok, limited atomic.Int32
		var wg sync.WaitGroup
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := session(admin)
				body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"execute_sql","arguments":{"sql":"UPDATE products SET stock = stock + 1 WHERE id = 1"}}}`, 100+i)
				r := post(t, s.url, h, body)
				switch r.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() > limit || ok.Load()+limited.Load() != tries {
			t.Fatalf("%d of %d concurrent calls ran, %d limited; the limit is %d", ok.Load(), tries, limited.Load(), limit)
		}
		cs := mustConnect(t, s.url, admin)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT stock FROM products WHERE id = 1"}})
		if err != nil || !strings.Contains(text(res), fmt.Sprintf("[[%d]]", 42+ok.Load())) {
			t.Fatalf("stock after %d allowed updates: %v %s", ok.Load(), err, text(res))
		}
		n := 0
		for _, r := range auditLines(t, s.auditLg) {
			if r["decision"] == "RATE_LIMITED" && r["target"] == "execute_sql" {
				n++
			}
		}
		if n != int(limited.Load()) {
			t.Fatalf("%d RATE_LIMITED records for %d refusals", n, limited.Load())
		}
	})

	t.Run("log injection in tool names and arguments", func(t *testing.T) {
		h := session(bearer(s.keys["viewer"]))
		evil := "x\n{\"decision\":\"ALLOWED\",\"user\":\"admin\"}\u001b[2J\u001b[31m\u2028"
		quoted, _ := json.Marshal(evil)
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":%s,"arguments":{"sql":%s}}}`, quoted, quoted)
		post(t, s.url, h, body)
		raw, err := os.ReadFile(s.auditLg)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte{0x1b}) || bytes.Contains(raw, []byte("\u2028")) {
			t.Fatal("the audit log holds a raw escape or line separator")
		}
		found := false
		for _, r := range auditLines(t, s.auditLg) { // every line is one JSON object...
			if r["mac"] == nil || r["seq"] == nil { // ...and one the log wrote, not a forged one
				t.Fatalf("a line without the log's own seq and mac: %v", r)
			}
			if target, _ := r["target"].(string); strings.HasPrefix(target, "x") && r["user"] == "viewer" {
				found = true // the attempt itself, recorded with its name escaped
			}
		}
		if !found {
			lines := auditLines(t, s.auditLg)
			t.Fatalf("the attempt was not audited; last record: %v", lines[len(lines)-1])
		}
		out, err := run(t, dir, nil, "--config", cfg, "audit", "tail", "-n", "50")
		if err != nil || strings.ContainsRune(out, 0x1b) {
			t.Fatalf("audit tail: %v, raw escape in output: %v", err, strings.ContainsRune(out, 0x1b))
		}
	})

	if after := usersLeft(); after != before {
		t.Fatalf("users before the attacks %s, after %s", before, after)
	}
}
