package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

func TestAuditQuery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out bytes.Buffer
	if err := AuditQuery(ctx, &out, dir, store.AuditQuery{}, "json"); err == nil || !strings.Contains(err.Error(), "no mcpguard store") {
		t.Fatalf("missing store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StoreFile)); err == nil {
		t.Fatal("query created a store")
	}
	s, err := OpenStore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.AppendAudit(ctx, []guard.Record{
		{Time: base, Decision: guard.Denied, Subject: "bob", Method: "tools/call", Target: "a"},
		{Time: base.Add(time.Second), Decision: guard.Allowed, Subject: "bob", Method: "tools/call", Target: "b"},
		{Time: base.Add(2 * time.Second), Decision: guard.Denied, Subject: "eve", Method: "tools/call", Target: "c\x1b[2J"},
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := AuditQuery(ctx, &out, dir, store.AuditQuery{Decision: "denied"}, "json"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("json: %q", out.String())
	}
	var first guard.Record
	json.Unmarshal([]byte(lines[0]), &first)
	if first.Target != "a" {
		t.Fatalf("not oldest first: %q", lines)
	}
	out.Reset()
	if err := AuditQuery(ctx, &out, dir, store.AuditQuery{}, "table"); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if strings.Contains(out.String(), "\x1b") || !strings.HasPrefix(out.String(), "TIME") {
		t.Fatalf("table: %q", out.String())
	}
	if err := AuditQuery(ctx, &out, dir, store.AuditQuery{}, "xml"); err == nil {
		t.Fatal("xml accepted")
	}
	if err := AuditQuery(ctx, &out, dir, store.AuditQuery{Limit: 20000}, "json"); err == nil {
		t.Fatal("limit accepted")
	}
}
