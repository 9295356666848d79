package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite"
)

// TestKillDuringWrites kills mcpguard with SIGKILL while many calls are
// writing to the audit log and the store, then starts it again on the
// same files: it comes up, the audit log verifies (a torn last line is
// set aside, never accepted), the store passes SQLite's integrity check,
// and every call the client saw succeed was audited.
func TestKillDuringWrites(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "rate_limit:\n  enabled: false\n")
	s := start(t, dir, nil, "--config", cfg, "--demo")
	admin := bearer(s.keys["admin"])
	ctx, cancel := context.WithCancel(context.Background())
	var ok atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, err := connect(t, s.url, admin)
			if err != nil {
				return
			}
			for i := 0; ctx.Err() == nil; i++ {
				_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql",
					Arguments: map[string]any{"sql": fmt.Sprintf("INSERT INTO orders (user_id, product, amount_cents) VALUES (1, 'kill-%d-%d', 1)", w, i)}})
				if err != nil {
					return
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := s.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.kill()
	cancel()
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatal("no call succeeded before the kill")
	}

	s2 := start(t, dir, nil, "--config", cfg, "--demo")
	if r := post(t, s2.url, admin, initBody); r.StatusCode != http.StatusOK {
		t.Fatalf("after restart: %d", r.StatusCode)
	}
	s2.kill()
	if out, err := run(t, dir, nil, "--config", cfg, "audit", "verify", "mcpguard-audit.log"); err != nil {
		t.Fatalf("audit verify after SIGKILL: %v\n%s", err, out)
	}
	audited := 0
	for _, r := range auditLines(t, s.auditLg) {
		if r["target"] == "execute_sql" && r["decision"] == "ALLOWED" {
			audited++
		}
	}
	if int64(audited) < ok.Load() {
		t.Fatalf("%d calls succeeded but only %d were audited", ok.Load(), audited)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "mcpguard-data", "mcpguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("store integrity after SIGKILL: %v %q", err, check)
	}
	t.Logf("%d calls acknowledged before SIGKILL, %d audited", ok.Load(), audited)
}

// TestAuditDiskFull puts the audit log on a small file system that fills
// up: once less than audit.min_free_bytes is free, calls are refused
// (and audited, into the reserve), so none runs unaudited.
func TestAuditDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test mounts a small tmpfs and needs root, which CI has")
		}
		t.Skip("SKIPPED: needs root to mount a small tmpfs (CI runs it)")
	}
	dir := t.TempDir()
	fs := filepath.Join(dir, "small")
	if err := os.Mkdir(fs, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", fs).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", fs).Run() })
	cfg := writeConfig(t, dir, "audit:\n  log: ./small/audit.log\n  min_free_bytes: 1048576\nrate_limit:\n  enabled: false\n")
	s := start(t, dir, nil, "--config", cfg, "--demo")
	cs := mustConnect(t, s.url, bearer(s.keys["admin"]))
	ctx := context.Background()
	ran, refused := 0, 0
	for i := 0; i < 3000 && refused < 5; i++ {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_sql",
			Arguments: map[string]any{"sql": fmt.Sprintf("INSERT INTO orders (user_id, product, amount_cents) VALUES (1, 'full-%d-%s', 1)", i, strings.Repeat("x", 200))}})
		switch {
		case err != nil && strings.Contains(err.Error(), "audit"):
			refused++
		case err != nil:
			t.Fatalf("call %d: %v", i, err)
		case res.IsError:
			t.Fatalf("call %d: %s", i, text(res))
		default:
			ran++
		}
	}
	if refused == 0 {
		t.Fatalf("%d calls ran and none was refused: the audit file system never filled", ran)
	}
	// Nothing ran unaudited: the rows are exactly the acknowledged calls.
	db, err := sql.Open("sqlite", filepath.Join(dir, "mcpguard-data", "demo.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow("SELECT COUNT(*) FROM orders WHERE product LIKE 'full-%'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != ran {
		t.Fatalf("%d calls acknowledged, %d refused, but %d rows written", ran, refused, rows)
	}
	// The refusals themselves were audited, into the reserve.
	refusals := 0
	for _, r := range auditLines(t, filepath.Join(fs, "audit.log")) {
		if reason, _ := r["reason"].(string); r["decision"] == "ERROR" && strings.Contains(reason, "almost full") {
			refusals++
		}
	}
	if refusals < refused {
		t.Fatalf("%d refusals, %d audited", refused, refusals)
	}
	t.Logf("%d calls ran, %d refused, %d rows", ran, refused, rows)
	if !strings.Contains(s.output.String(), "audit") {
		t.Errorf("mcpguard logged nothing about the audit failure:\n%s", s.output)
	}
}
