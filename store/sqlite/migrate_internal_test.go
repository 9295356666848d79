package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// TestUpgradeFromFirstSchema opens a database made by a release that knew
// only the first migration: Open must add the audit table and keep the keys.
func TestUpgradeFromFirstSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		migrations[0],
		`INSERT INTO schema_migrations (version, applied_at) VALUES (1, 1)`,
		`INSERT INTO api_keys (id, name, hash, created_at) VALUES ('0000000000000001', 'old', x'01', 1)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if _, err := s.GetAPIKey(ctx, "0000000000000001"); err != nil {
		t.Fatalf("key lost in the upgrade: %v", err)
	}
	if err := s.AppendAudit(ctx, []guard.Record{{Time: time.Now(), Decision: guard.Denied, Subject: "old"}}); err != nil {
		t.Fatalf("AppendAudit after upgrade: %v", err)
	}
	recs, err := s.QueryAudit(ctx, store.AuditQuery{User: "old"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("QueryAudit after upgrade = %d records, %v", len(recs), err)
	}
	var version int
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Fatalf("schema version = %d, want %d", version, len(migrations))
	}
}

// TestAuditQueriesUseIndexes checks that each filter is served by an index
// rather than a scan of the whole table.
func TestAuditQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []string{
		`SELECT record FROM audit_records ORDER BY ts DESC, seq DESC LIMIT 100`,
		`SELECT record FROM audit_records WHERE ts >= 1 ORDER BY ts DESC, seq DESC LIMIT 100`,
		`SELECT record FROM audit_records WHERE decision = 'DENIED' ORDER BY ts DESC, seq DESC LIMIT 100`,
		`SELECT record FROM audit_records WHERE subject = 'u' ORDER BY ts DESC, seq DESC LIMIT 100`,
	} {
		plan := queryPlan(t, s, q)
		if !strings.Contains(plan, "USING INDEX") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: plan %q does not use an index for both filter and order", q, plan)
		}
	}
}

// queryPlan returns SQLite's plan for q, its steps joined by "; ".
func queryPlan(t *testing.T, s *Store, q string) string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + "; "
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
