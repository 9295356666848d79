package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const e2ePolicies = `
@id("no-drop-table")
@reason("tables are never dropped through MCP")
forbid(principal, action == Action::"tools/call", resource == Tool::"drop_table");

@id("no-ddl-in-sql")
forbid(principal, action == Action::"tools/call", resource == Tool::"execute_sql")
when { context.arguments has sql && context.arguments.sql like "*DROP*" };
`

func listNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

// TestCedarPolicies serves the demo with hand-written Cedar policies next
// to the roles: a forbid hides a tool from the list and refuses its call
// naming the policy, in the reply and in the audit record; an argument
// condition refuses only the calls it names; changed files are put in
// force without a restart, and a broken file keeps the previous set.
func TestCedarPolicies(t *testing.T) {
	dir := t.TempDir()
	pdir := filepath.Join(dir, "policies")
	if err := os.Mkdir(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "base.cedar"), []byte(e2ePolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mcpguard.yaml"), []byte("policies:\n  reload_interval: 200ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, nil, "--demo")
	ctx := context.Background()
	admin := mustConnect(t, s.url, bearer(s.keys["admin"]))

	if names := listNames(t, admin); slices.Contains(names, "drop_table") || !slices.Contains(names, "execute_sql") {
		t.Fatalf("admin's tools/list = %v: want execute_sql listed and drop_table hidden", names)
	}
	res, err := admin.CallTool(ctx, &mcp.CallToolParams{Name: "drop_table", Arguments: map[string]any{"table": "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(text(res), "Denied by: no-drop-table") || !strings.Contains(text(res), "Reason: tables are never dropped through MCP") {
		t.Fatalf("drop_table: %q", text(res))
	}
	rec := waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["target"] == "drop_table" && r["decision"] == "DENIED" })
	if p, _ := rec["policies"].([]any); len(p) != 1 || p[0] != "no-drop-table" {
		t.Fatalf("audit policies = %v", rec["policies"])
	}

	res, err = admin.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "DROP TABLE orders"}})
	if err != nil || !strings.Contains(text(res), "Denied by: no-ddl-in-sql") {
		t.Fatalf("execute_sql DROP: %v %q", err, text(res))
	}
	res, err = admin.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "UPDATE products SET stock = stock + 1 WHERE id = 1"}})
	if err != nil || res.IsError {
		t.Fatalf("execute_sql UPDATE: %v %q", err, text(res))
	}

	// A new file is put in force without a restart.
	viewer := mustConnect(t, s.url, http.Header{"X-Api-Key": {s.keys["viewer"]}})
	if !slices.Contains(listNames(t, viewer), "list_tables") {
		t.Fatal("viewer cannot see list_tables to begin with")
	}
	extra := filepath.Join(pdir, "extra.cedar")
	if err := os.WriteFile(extra, []byte(`@id("viewers-off") forbid(principal in Role::"viewer", action, resource) unless { principal in Role::"developer" };`), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new policy to hide list_tables from the viewer", func() bool { return !slices.Contains(listNames(t, viewer), "list_tables") })
	res, err = viewer.CallTool(ctx, &mcp.CallToolParams{Name: "list_tables"})
	if err != nil || !strings.Contains(text(res), "Denied by: viewers-off") {
		t.Fatalf("viewer list_tables after reload: %v %q", err, text(res))
	}

	// A broken file is refused, logged with its position, and the set in
	// force stays.
	if err := os.WriteFile(filepath.Join(pdir, "broken.cedar"), []byte("permit(principal, action, resource) when { context. };\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken file to be reported", func() bool {
		return strings.Contains(s.output.String(), "policies not reloaded") && strings.Contains(s.output.String(), "broken.cedar")
	})
	if slices.Contains(listNames(t, viewer), "list_tables") || slices.Contains(listNames(t, admin), "drop_table") {
		t.Fatal("a broken file changed the policies in force")
	}
}

// TestPoliciesReloadOnSIGHUP checks that SIGHUP reloads the policies when
// file watching is off.
func TestPoliciesReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pdir := filepath.Join(dir, "rules")
	if err := os.Mkdir(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mcpguard.yaml"), []byte("policies:\n  dir: rules\n  reload_interval: 0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, nil, "--demo")
	admin := mustConnect(t, s.url, bearer(s.keys["admin"]))
	if !slices.Contains(listNames(t, admin), "drop_table") {
		t.Fatal("drop_table not listed to begin with")
	}
	if err := os.WriteFile(filepath.Join(pdir, "p.cedar"), []byte(e2ePolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGHUP to put the policy in force", func() bool { return !slices.Contains(listNames(t, admin), "drop_table") })
	if !strings.Contains(s.output.String(), "SIGHUP: policies reloaded") {
		t.Errorf("no log line for the reload:\n%s", s.output.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
