package tools

import (
	"strings"
	"testing"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

func TestCountStatements(t *testing.T) {
	tests := []struct {
		sql  string
		want int
	}{
		{"", 0},
		{" ;; -- c\n /* x */ ;", 0},
		{"SELECT 1", 1},
		{"SELECT 1;", 1},
		{"SELECT 1; ; -- done", 1},
		{"SELECT ';'", 1},
		{`SELECT "a;b" FROM [c;d] WHERE e = ` + "`f;g`", 1},
		{"SELECT 'it''s; fine'", 1},
		{"SELECT 1 -- ; DELETE\n", 1},
		{"SELECT 1 /* ; DELETE */", 1},
		{"SELECT 1; DELETE FROM users", 2},
		{"SELECT 1;DELETE FROM users;", 2},
		{"SELECT 1 /* ; */ ; DELETE FROM users", 2},
		{"SELECT ';'; DELETE FROM users", 2},
		{"PRAGMA query_only=0; DELETE FROM users", 2},
		{"CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; UPDATE c SET d = 1; END", 1},
		{"CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; END; SELECT 1", 2},
		{"CREATE TABLE trigger_log (a); DELETE FROM b", 2},
		{"EXPLAIN SELECT 1; SELECT 2", 2},
		{"SELECT 'unterminated; DELETE FROM users", 1},
		{"SELECT 1 /* unterminated; DELETE", 1},
	}
	for _, tt := range tests {
		if got := countStatements(tt.sql); got != tt.want {
			t.Errorf("countStatements(%q) = %d, want %d", tt.sql, got, tt.want)
		}
		checkAgainstSQLite(t, tt.sql)
	}
}

// checkAgainstSQLite compares the ported state machine with SQLite's own
// sqlite3_complete, which it must agree with on every input.
func checkAgainstSQLite(t *testing.T, s string) {
	t.Helper()
	if strings.IndexByte(s, 0) >= 0 {
		return // C strings end at NUL
	}
	// A trailing newline ends an open "--" comment, which sqlite3_complete
	// would otherwise report as pending; it changes no statement boundary.
	s += "\n"
	state := uint8(0)
	for i := 0; i < len(s); {
		tok, n := nextToken(s[i:])
		i += n
		state = transition(state, tok)
	}
	tls := libc.NewTLS()
	defer tls.Close()
	cs, err := libc.CString(s)
	if err != nil {
		t.Fatal(err)
	}
	defer libc.Xfree(tls, cs)
	want := sqlite3.Xsqlite3_complete(tls, cs) == 1
	if got := state == 1; got != want {
		t.Errorf("statement end for %q: port says complete=%v, sqlite3_complete says %v", s, got, want)
	}
}

func FuzzCountStatements(f *testing.F) {
	f.Add("SELECT 1; DELETE FROM users")
	f.Add("CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; END;")
	f.Add("SELECT '[;' /* x */ ; `a;` [b;]; -- c;\n")
	f.Fuzz(func(t *testing.T, s string) {
		if n := countStatements(s); n < 0 || n > len(s) {
			t.Fatalf("countStatements(%q) = %d", s, n)
		}
		checkAgainstSQLite(t, s)
	})
}
