package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

var allTools = []string{"delete_users", "describe_table", "drop_table", "execute_sql", "list_tables", "query"}

// TestDemoRoleMatrix drives every demo identity through every built-in
// tool over HTTP, with tools/list and tools/call checked against the same
// expectations.
func TestDemoRoleMatrix(t *testing.T) {
	s := start(t, "", nil, "--demo")
	if len(s.keys) != 3 {
		t.Fatalf("demo printed %d keys, want 3; output:\n%s", len(s.keys), s.output)
	}
	for _, line := range []string{"[OK] API key authentication enabled", "[OK] Role-based access control active", "[OK] Audit logging to ./mcpguard-audit.log", "[OK] Rate limiting: 100 req/min per user", "[WARN] No master key (env:MCPGUARD_MASTER_KEY)"} {
		if !strings.Contains(s.output.String(), line) {
			t.Errorf("startup output lacks %q", line)
		}
	}
	ctx := context.Background()
	allowed := map[string][]string{
		"admin":     allTools,
		"developer": {"describe_table", "execute_sql", "list_tables", "query"},
		"viewer":    {"describe_table", "list_tables", "query"},
	}
	// Arguments that succeed for an allowed caller. The destructive tools act
	// on a scratch table and a user id that does not exist.
	args := map[string]map[string]any{
		"list_tables":    {},
		"describe_table": {"table": "users"},
		"query":          {"sql": "SELECT COUNT(*) AS n FROM users"},
		"execute_sql":    {"sql": "CREATE TABLE IF NOT EXISTS scratch_e2e (x INTEGER)"},
		"drop_table":     {"table": "scratch_e2e"},
		"delete_users":   {"ids": []int{999999}},
	}
	for _, who := range []string{"viewer", "developer", "admin"} {
		cs := mustConnect(t, s.url, bearer(s.keys[who]))
		lt, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, tool := range lt.Tools {
			listed = append(listed, tool.Name)
		}
		slices.Sort(listed)
		if !slices.Equal(listed, allowed[who]) {
			t.Errorf("%s: tools/list = %v, want %v", who, listed, allowed[who])
		}
		if who == "admin" { // so that drop_table has something to drop
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: args["execute_sql"]}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tool := range allTools {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args[tool]})
			if err != nil {
				t.Fatalf("%s %s: %v", who, tool, err)
			}
			ok := slices.Contains(allowed[who], tool)
			denied := strings.HasPrefix(text(res), "ACCESS DENIED")
			if ok && res.IsError || ok == denied {
				t.Errorf("%s %s: isError=%v text=%q, want allowed=%v", who, tool, res.IsError, text(res), ok)
			}
		}
	}
	// The developer's denial carries the exact text and is audited
	// (with its session: a session-based revision).
	cs, err := mcptest.ConnectVersion(t, s.url, http.Header{"X-Api-Key": {s.keys["developer"]}}, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "delete_users", Arguments: map[string]any{"ids": []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ACCESS DENIED\n--------------\nTool: delete_users\nRequired role: admin\nYour role: developer\nReason: tool delete_users requires role admin\nDenied by: tool:delete_users:unmet\nAction: Blocked and logged"
	if !res.IsError || text(res) != want {
		t.Fatalf("developer delete_users:\n%s\nwant:\n%s", text(res), want)
	}
	rec := waitAudit(t, s.auditLg, func(r map[string]any) bool {
		// The record of this session's call (the loop above used the
		// sessionless revision, whose records have no session).
		return r["decision"] == "DENIED" && r["user"] == "developer" && r["target"] == "delete_users" && r["session_id"] != nil
	})
	if roles, _ := rec["roles"].([]any); len(roles) != 1 || roles[0] != "developer" {
		t.Errorf("audit roles = %v", rec["roles"])
	}
	if req, _ := rec["required_roles"].([]any); len(req) != 1 || req[0] != "admin" {
		t.Errorf("audit required_roles = %v", rec["required_roles"])
	}
	for _, field := range []string{"ts", "request_id", "auth_method", "client_addr", "transport", "method", "reason", "args_sha256", "session_id"} {
		if rec[field] == nil || rec[field] == "" {
			t.Errorf("audit record lacks %s: %v", field, rec)
		}
	}
	// delete_users as developer deleted nothing.
	admin := mustConnect(t, s.url, bearer(s.keys["admin"]))
	q, err := admin.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT COUNT(*) AS n FROM users WHERE id = 1"}})
	if err != nil || !strings.Contains(text(q), `[[1]]`) {
		t.Fatalf("user 1 was deleted by a denied call: %v %s", err, text(q))
	}
}

// TestReadOnlyQueryRefusesWrites sends crafted writes through the real
// server's query tool and checks that nothing changed.
func TestReadOnlyQueryRefusesWrites(t *testing.T) {
	s := start(t, "", nil, "--demo")
	ctx := context.Background()
	cs := mustConnect(t, s.url, bearer(s.keys["admin"]))
	count := func() string {
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT COUNT(*) FROM users"}})
		if err != nil || r.IsError {
			t.Fatalf("count: %v %s", err, text(r))
		}
		return text(r)
	}
	before := count()
	for _, sql := range []string{
		"DELETE FROM users",
		"SELECT 1; DELETE FROM users",
		"PRAGMA query_only=0; DELETE FROM users",
		"WITH x AS (SELECT 1) DELETE FROM users",
		"UPDATE users SET name = 'x' RETURNING id",
		"ATTACH DATABASE 'owned.db' AS o",
		"VACUUM INTO 'copy.db'",
		"DROP TABLE users",
	} {
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"sql": sql}})
		if err != nil {
			t.Fatalf("%q: %v", sql, err)
		}
		if !r.IsError {
			t.Errorf("query accepted a write: %q -> %s", sql, text(r))
		}
	}
	if after := count(); after != before {
		t.Fatalf("users changed: %s -> %s", before, after)
	}
	for _, f := range []string{"owned.db", "copy.db"} {
		if _, err := os.Stat(filepath.Join(s.dir, f)); err == nil {
			t.Errorf("query created %s", f)
		}
	}
}

var createdKeyRE = regexp.MustCompile(`mcp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`)
var createdIDRE = regexp.MustCompile(`Created API key ([0-9a-f]{16})`)

func createKey(t *testing.T, dir string, args ...string) (key, id string) {
	t.Helper()
	out, err := run(t, dir, nil, append([]string{"keys", "create"}, args...)...)
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, out)
	}
	return createdKeyRE.FindString(out), createdIDRE.FindStringSubmatch(out)[1]
}

// TestAPIKeyLifecycle covers valid, invalid, expired and revoked keys, with
// keys created and revoked by the CLI while the server runs.
func TestAPIKeyLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, nil)
	valid, _ := createKey(t, dir, "--name", "alice", "--role", "viewer")
	doomed, doomedID := createKey(t, dir, "--name", "bob", "--role", "developer")
	shortLived, _ := createKey(t, dir, "--name", "carol", "--role", "viewer", "--expires", "1s")

	if resp := post(t, s.url, bearer(valid), initBody); resp.StatusCode != 200 {
		t.Fatalf("valid key: status %d", resp.StatusCode)
	}
	if resp := post(t, s.url, http.Header{"X-Api-Key": {valid}}, initBody); resp.StatusCode != 200 {
		t.Fatalf("valid key in X-API-Key: status %d", resp.StatusCode)
	}
	cs := mustConnect(t, s.url, bearer(doomed))
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, dir, nil, "keys", "revoke", doomedID)
	if err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	// The running server refuses the revoked key within its revocation
	// recheck interval (1 s), even on the session it opened before.
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, err := cs.ListTools(context.Background(), nil); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked key still works on its open session after 3 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // carol's key expires
	wrong := valid[:len(valid)-3] + "xyz"
	for name, key := range map[string]string{"revoked": doomed, "expired": shortLived, "wrong secret": wrong, "garbage": "not-a-key"} {
		resp := post(t, s.url, bearer(key), initBody)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s key: status %d, WWW-Authenticate %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	list, err := run(t, dir, nil, "keys", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, "revoked") || !strings.Contains(list, "expired") || createdKeyRE.MatchString(list) {
		t.Fatalf("keys list:\n%s", list)
	}
	for reason, user := range map[string]string{"revoked": "", "expired": "", "wrong secret": ""} {
		_ = user
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["decision"] == "AUTH_FAILED" && strings.Contains(r["reason"].(string), reason)
		})
	}
}

// TestImmediateRevocation: with revocation_recheck 0s a revocation made by
// the CLI is refused on the very next request.
func TestImmediateRevocation(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "auth:\n  revocation_recheck: 0s\n")
	s := start(t, dir, nil, "--config", cfg)
	key, id := createKey(t, dir, "--name", "zed", "--role", "viewer")
	cs := mustConnect(t, s.url, bearer(key))
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, dir, nil, "keys", "revoke", id); err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	if _, err := cs.ListTools(context.Background(), nil); err == nil {
		t.Fatal("revoked key accepted on the next request with revocation_recheck: 0s")
	}
}
