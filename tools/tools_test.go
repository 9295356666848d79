package tools

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpguard/mcpguard/internal/mcptest"
)

// fixture is a seeded demo database served by a real MCP server and reached
// through a real client session.
type fixture struct {
	dir  string
	path string
	db   *DB
	cs   *mcp.ClientSession
}

func newFixture(t testing.TB, opts ...Option) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "demo.db")
	if created, err := SeedDemo(ctx, path); err != nil || !created {
		t.Fatalf("SeedDemo = %v, %v; want true, nil", created, err)
	}
	db, err := Open(ctx, path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })

	server := mcp.NewServer(&mcp.Implementation{Name: "mcpguard-test", Version: "0"}, nil)
	Register(server, db)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(ctx, st, nil)
	if err != nil {
		t.Fatalf("server connect: %v", err)
	}
	t.Cleanup(func() { ss.Close() })
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "0"}, nil)
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatalf("client connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return &fixture{dir: dir, path: path, db: db, cs: cs}
}

// call invokes a tool and returns its result; protocol errors fail the test.
func (f *fixture) call(t testing.TB, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := f.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("CallTool(%s): protocol error %v", name, err)
	}
	return res
}

// callOK invokes a tool, requires success and decodes its structured output.
func callOK[Out any](t testing.TB, f *fixture, name string, args any) Out {
	t.Helper()
	res := f.call(t, name, args)
	if res.IsError {
		t.Fatalf("CallTool(%s, %v) failed: %s", name, args, mcptest.Text(res))
	}
	var out Out
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatalf("marshal structured content: %v", err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decode %s output %s: %v", name, b, err)
	}
	return out
}

// callErr invokes a tool, requires a tool error and returns its text.
func callErr(t testing.TB, f *fixture, name string, args any) string {
	t.Helper()
	res := f.call(t, name, args)
	if !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		t.Fatalf("CallTool(%s, %v) succeeded with %s; want a tool error", name, args, b)
	}
	return mcptest.Text(res)
}

// state is an observable snapshot of the database and its directory.
type state struct {
	counts map[string]int
	tables string
	files  string
}

func (f *fixture) snapshot(t testing.TB) state {
	t.Helper()
	ctx := context.Background()
	s := state{counts: map[string]int{}}
	var names []string
	rows, err := f.db.rw.QueryContext(ctx, "SELECT name FROM sqlite_schema ORDER BY name")
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		names = append(names, n)
	}
	rows.Close()
	s.tables = strings.Join(names, ",")
	for _, tbl := range []string{"users", "orders", "products"} {
		var n int
		if err := f.db.rw.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
			t.Fatalf("snapshot count %s: %v", tbl, err)
		}
		s.counts[tbl] = n
	}
	var tempCount int
	if err := f.db.ro.QueryRowContext(ctx, "SELECT count(*) FROM temp.sqlite_schema").Scan(&tempCount); err != nil {
		t.Fatalf("snapshot temp schema: %v", err)
	}
	s.counts["temp objects"] = tempCount
	s.files = listDir(t, f.dir)
	return s
}

// listDir lists the names in dir and in the shared temp directory entries
// that the crafted statements target.
func listDir(t testing.TB, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func (s state) equal(o state) bool {
	if s.tables != o.tables || s.files != o.files || len(s.counts) != len(o.counts) {
		return false
	}
	for k, v := range s.counts {
		if o.counts[k] != v {
			return false
		}
	}
	return true
}

func TestNamesMatchRegisteredTools(t *testing.T) {
	f := newFixture(t)
	res, err := f.cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	got := map[string]*mcp.Tool{}
	for _, tool := range res.Tools {
		got[tool.Name] = tool
	}
	readOnly := map[string]bool{ToolListTables: true, ToolDescribeTable: true, ToolQuery: true}
	if len(got) != len(Names()) {
		t.Errorf("server lists %d tools, Names() has %d", len(got), len(Names()))
	}
	for _, name := range Names() {
		tool, ok := got[name]
		if !ok {
			t.Errorf("tool %s not registered", name)
			continue
		}
		if tool.Description == "" || tool.Annotations == nil {
			t.Errorf("tool %s lacks description or annotations", name)
			continue
		}
		if tool.Annotations.ReadOnlyHint != readOnly[name] {
			t.Errorf("tool %s ReadOnlyHint = %v, want %v", name, tool.Annotations.ReadOnlyHint, readOnly[name])
		}
		destructive := tool.Annotations.DestructiveHint != nil && *tool.Annotations.DestructiveHint
		if destructive == readOnly[name] {
			t.Errorf("tool %s DestructiveHint = %v, want %v", name, destructive, !readOnly[name])
		}
	}
	n := Names()
	n[0] = "mutated"
	if Names()[0] != ToolListTables {
		t.Error("Names() returns shared state")
	}
}

func TestListTables(t *testing.T) {
	f := newFixture(t)
	if _, err := f.db.rw.Exec(`CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount_cents > 10000`); err != nil {
		t.Fatal(err)
	}
	out := callOK[ListTablesOutput](t, f, ToolListTables, map[string]any{})
	if want := []string{"orders", "products", "users"}; !slices.Equal(out.Tables, want) {
		t.Errorf("tables = %v, want %v", out.Tables, want)
	}
	if want := []string{"big_orders"}; !slices.Equal(out.Views, want) {
		t.Errorf("views = %v, want %v", out.Views, want)
	}
}

func TestDescribeTable(t *testing.T) {
	f := newFixture(t)
	if _, err := f.db.rw.Exec(`CREATE TABLE "x""y" ("a""b" TEXT DEFAULT 'q', n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	tests := []struct {
		name      string
		table     string
		wantTable string
		wantCols  []string
		wantErr   string
	}{
		{name: "users", table: "users", wantTable: "users", wantCols: []string{"id", "name", "email", "role", "created_at"}},
		{name: "case-insensitive", table: "ORDERS", wantTable: "orders", wantCols: []string{"id", "user_id", "product", "amount_cents", "created_at"}},
		{name: "quote in name", table: `x"y`, wantTable: `x"y`, wantCols: []string{`a"b`, "n"}},
		{name: "injection", table: "users; DROP TABLE orders", wantErr: "does not exist"},
		{name: "injection with quotes", table: `users"; DROP TABLE orders; --`, wantErr: "does not exist"},
		{name: "internal table", table: "sqlite_schema", wantErr: "does not exist"},
		{name: "unknown", table: "nope", wantErr: "list_tables"},
		{name: "empty", table: "", wantErr: "table is empty"},
		{name: "too long", table: strings.Repeat("a", MaxTableNameBytes+1), wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]any{"table": tt.table}
			if tt.wantErr != "" {
				if msg := callErr(t, f, ToolDescribeTable, args); !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q does not contain %q", msg, tt.wantErr)
				}
				return
			}
			out := callOK[DescribeTableOutput](t, f, ToolDescribeTable, args)
			if out.Table != tt.wantTable {
				t.Errorf("table = %q, want %q", out.Table, tt.wantTable)
			}
			var names []string
			for _, c := range out.Columns {
				names = append(names, c.Name)
			}
			if !slices.Equal(names, tt.wantCols) {
				t.Errorf("columns = %v, want %v", names, tt.wantCols)
			}
		})
	}
	t.Run("column details", func(t *testing.T) {
		out := callOK[DescribeTableOutput](t, f, ToolDescribeTable, map[string]any{"table": "users"})
		id, role := out.Columns[0], out.Columns[3]
		if id.PrimaryKey != 1 || id.Type != "INTEGER" {
			t.Errorf("id column = %+v, want INTEGER pk 1", id)
		}
		if !role.NotNull || role.Default == nil || *role.Default != "'customer'" || role.PrimaryKey != 0 {
			t.Errorf("role column = %+v, want NOT NULL DEFAULT 'customer'", role)
		}
		if out.Columns[1].Default != nil {
			t.Errorf("name column default = %v, want null", *out.Columns[1].Default)
		}
	})
	if after := f.snapshot(t); !after.equal(before) {
		t.Errorf("describe_table changed the database: %+v -> %+v", before, after)
	}
}

func TestQuery(t *testing.T) {
	f := newFixture(t)
	if _, err := f.db.rw.Exec(`CREATE TABLE misc (b BLOB, t TEXT, r REAL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.rw.Exec(`INSERT INTO misc VALUES (x'00ff10', ?, 1e999), (zeroblob(10000), 'ok', 2.5)`, strings.Repeat("é", MaxCellBytes)); err != nil {
		t.Fatal(err)
	}
	const countTo = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 2500) SELECT x FROM c"
	tests := []struct {
		name          string
		args          map[string]any
		wantCols      []string
		wantRows      int
		wantTruncated bool
		wantCellsCut  bool
		check         func(t *testing.T, out QueryOutput)
	}{
		{
			name:     "select with where",
			args:     map[string]any{"sql": "SELECT id, name, email FROM users WHERE role = 'admin' ORDER BY id"},
			wantCols: []string{"id", "name", "email"},
			wantRows: 2,
			check: func(t *testing.T, out QueryOutput) {
				if out.Rows[0][0] != float64(1) || out.Rows[0][1] != "Alice Martin" {
					t.Errorf("first row = %v", out.Rows[0])
				}
			},
		},
		{
			name:     "join with trailing semicolon and comment",
			args:     map[string]any{"sql": "SELECT u.name, sum(o.amount_cents) AS total FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id ORDER BY total DESC; -- top spenders"},
			wantCols: []string{"name", "total"},
			wantRows: 7,
		},
		{
			name:          "max_rows limits and flags truncation",
			args:          map[string]any{"sql": "SELECT * FROM users ORDER BY id", "max_rows": 3},
			wantCols:      []string{"id", "name", "email", "role", "created_at"},
			wantRows:      3,
			wantTruncated: true,
		},
		{
			name:     "exact row count is not truncated",
			args:     map[string]any{"sql": "SELECT id FROM users", "max_rows": 10},
			wantCols: []string{"id"},
			wantRows: 10,
		},
		{name: "default max_rows", args: map[string]any{"sql": countTo}, wantCols: []string{"x"}, wantRows: DefaultMaxRows, wantTruncated: true},
		{name: "max_rows capped", args: map[string]any{"sql": countTo, "max_rows": 5000}, wantCols: []string{"x"}, wantRows: MaxRows, wantTruncated: true},
		{
			name:         "blob, long text, infinity",
			args:         map[string]any{"sql": "SELECT b, t, r FROM misc ORDER BY rowid"},
			wantCols:     []string{"b", "t", "r"},
			wantRows:     2,
			wantCellsCut: true,
			check: func(t *testing.T, out QueryOutput) {
				blob, ok := out.Rows[0][0].(map[string]any)
				if !ok || blob["blob_base64"] != "AP8Q" || blob["blob_bytes"] != float64(3) {
					t.Errorf("blob cell = %#v", out.Rows[0][0])
				}
				text := out.Rows[0][1].(string)
				if len(text) > MaxCellBytes || len(text) < MaxCellBytes-1 || !strings.HasPrefix(text, "éé") {
					t.Errorf("long text cell has %d bytes, want about %d", len(text), MaxCellBytes)
				}
				if out.Rows[0][2] != "Infinity" {
					t.Errorf("1e999 = %v, want Infinity", out.Rows[0][2])
				}
				big := out.Rows[1][0].(map[string]any)
				if big["blob_bytes"] != float64(10000) || len(big["blob_base64"].(string)) > MaxCellBytes {
					t.Errorf("big blob cell not bounded: %d chars", len(big["blob_base64"].(string)))
				}
			},
		},
		{
			name:     "table-valued pragma is readable",
			args:     map[string]any{"sql": "SELECT name FROM pragma_table_info('products')"},
			wantCols: []string{"name"},
			wantRows: 5,
		},
		{
			name:     "empty result",
			args:     map[string]any{"sql": "SELECT * FROM users WHERE id < 0"},
			wantCols: []string{"id", "name", "email", "role", "created_at"},
			wantRows: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := callOK[QueryOutput](t, f, ToolQuery, tt.args)
			if !slices.Equal(out.Columns, tt.wantCols) {
				t.Errorf("columns = %v, want %v", out.Columns, tt.wantCols)
			}
			if len(out.Rows) != tt.wantRows || out.RowCount != tt.wantRows {
				t.Errorf("got %d rows (row_count %d), want %d", len(out.Rows), out.RowCount, tt.wantRows)
			}
			if out.Truncated != tt.wantTruncated {
				t.Errorf("truncated = %v, want %v", out.Truncated, tt.wantTruncated)
			}
			if out.CellsTruncated != tt.wantCellsCut {
				t.Errorf("cells_truncated = %v, want %v", out.CellsTruncated, tt.wantCellsCut)
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
}

func TestQueryResultByteBudget(t *testing.T) {
	f := newFixture(t)
	// 1000 rows of 4 KiB text would be ~4 MiB; the result must stop near MaxResultBytes.
	out := callOK[QueryOutput](t, f, ToolQuery, map[string]any{
		"sql":      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1000) SELECT printf('%.4096c', 'z') FROM c",
		"max_rows": 1000,
	})
	if !out.Truncated || len(out.Rows) >= 1000 {
		t.Fatalf("got %d rows, truncated=%v; want fewer than 1000 and truncated", len(out.Rows), out.Truncated)
	}
	if size := len(out.Rows) * MaxCellBytes; size > MaxResultBytes+MaxCellBytes+64 {
		t.Errorf("result holds %d bytes of cells, budget %d", size, MaxResultBytes)
	}
}

func TestQueryInputErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		args    map[string]any
		wantErr string
	}{
		{"empty", map[string]any{"sql": "  "}, "empty"},
		{"only comment", map[string]any{"sql": "-- nothing; here\n;;"}, "no statement"},
		{"too long", map[string]any{"sql": "SELECT '" + strings.Repeat("a", MaxSQLBytes) + "'"}, "too long"},
		{"nul byte", map[string]any{"sql": "SELECT 1\x00; DELETE FROM users"}, "NUL"},
		{"negative max_rows", map[string]any{"sql": "SELECT 1", "max_rows": -1}, "max_rows"},
		{"syntax error", map[string]any{"sql": "SELEC 1"}, "SQL error"},
		{"unknown table", map[string]any{"sql": "SELECT * FROM nope"}, "no such table: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := callErr(t, f, ToolQuery, tt.args)
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q does not contain %q", msg, tt.wantErr)
			}
			if strings.Contains(msg, f.dir) {
				t.Errorf("error %q leaks the database path", msg)
			}
		})
	}
}

// craftedWrites are statements that try to change something through the
// read-only query tool. dir is where they try to create files.
func craftedWrites(dir string) []struct{ name, sql string } {
	x := filepath.Join(dir, "x.db")
	cp := filepath.Join(dir, "copy.db")
	return []struct{ name, sql string }{
		{"stacked delete", "SELECT 1; DELETE FROM users"},
		{"stacked delete hidden after comment", "SELECT 1 /* ; */ ; DELETE FROM users"},
		{"stacked delete after string with semicolon", "SELECT ';'; DELETE FROM users"},
		{"pragma query_only off then delete", "PRAGMA query_only=0; DELETE FROM users"},
		{"pragma query_only off", "PRAGMA query_only=0"},
		{"pragma writable_schema", "PRAGMA writable_schema=ON"},
		{"pragma journal_mode", "PRAGMA journal_mode=DELETE"},
		{"attach and create", "ATTACH DATABASE '" + x + "' AS x; CREATE TABLE x.t(a)"},
		{"attach", "ATTACH DATABASE '" + x + "' AS x"},
		{"attach memory", "ATTACH DATABASE ':memory:' AS m"},
		{"vacuum into", "VACUUM INTO '" + cp + "'"},
		{"vacuum", "VACUUM"},
		{"cte delete", "WITH x AS (SELECT 1) DELETE FROM users"},
		{"cte delete with subquery", "WITH x AS (SELECT id FROM users) DELETE FROM users WHERE id IN (SELECT id FROM x)"},
		{"insert returning", "INSERT INTO users (name, email) VALUES ('Mallory', 'm@example.com') RETURNING id"},
		{"update returning", "UPDATE users SET role = 'admin' RETURNING id"},
		{"delete", "DELETE FROM orders"},
		{"replace", "REPLACE INTO products (id, sku, name, price_cents) VALUES (1, 'X', 'X', 0)"},
		{"drop table", "DROP TABLE orders"},
		{"alter table", "ALTER TABLE users ADD COLUMN pwned TEXT"},
		{"create table", "CREATE TABLE t (a)"},
		{"create temp table", "CREATE TEMP TABLE t (a)"},
		{"create temp table as select", "CREATE TEMP TABLE t AS SELECT * FROM users"},
		{"create temp view", "CREATE TEMP VIEW v AS SELECT 1"},
		{"create trigger", "CREATE TRIGGER tr AFTER INSERT ON users BEGIN DELETE FROM orders; END"},
		{"begin", "BEGIN IMMEDIATE"},
		{"savepoint", "SAVEPOINT s"},
		{"reindex", "REINDEX"},
		{"analyze", "ANALYZE"},
		{"load_extension", "SELECT load_extension('" + filepath.Join(dir, "evil.so") + "')"},
		{"load_extension upper case", "SELECT LOAD_EXTENSION('" + filepath.Join(dir, "evil") + "')"},
		{"explain delete", "EXPLAIN DELETE FROM users"},
	}
}

func TestQueryRefusesWrites(t *testing.T) {
	f := newFixture(t)
	callOK[QueryOutput](t, f, ToolQuery, map[string]any{"sql": "SELECT 1"}) // warm the read pool
	before := f.snapshot(t)
	for _, tt := range craftedWrites(f.dir) {
		t.Run(tt.name, func(t *testing.T) {
			msg := callErr(t, f, ToolQuery, map[string]any{"sql": tt.sql})
			if !strings.Contains(msg, "read-only") && !strings.Contains(msg, "one statement per call") {
				t.Errorf("error %q explains neither read-only nor one statement", msg)
			}
			if strings.Contains(msg, f.dir) {
				t.Errorf("error %q leaks a path", msg)
			}
			if after := f.snapshot(t); !after.equal(before) {
				t.Errorf("database or directory changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(f.dir, "x.db")); !os.IsNotExist(err) {
		t.Errorf("attached database file was created")
	}
}

// TestReadOnlyPoolRefusesWrites runs the crafted statements on the read-only
// pool directly, without the tool's one-statement check, to show the pool is
// read-only by construction.
func TestReadOnlyPoolRefusesWrites(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before := f.snapshot(t)
	for _, tt := range craftedWrites(f.dir) {
		t.Run(tt.name, func(t *testing.T) {
			_, execErr := f.db.ro.ExecContext(ctx, tt.sql)
			rows, queryErr := f.db.ro.QueryContext(ctx, tt.sql)
			if queryErr == nil {
				for rows.Next() {
				}
				queryErr = rows.Err()
				rows.Close()
			}
			if execErr == nil || queryErr == nil {
				t.Errorf("exec error %v, query error %v; want both to fail", execErr, queryErr)
			}
			if after := f.snapshot(t); !after.equal(before) {
				t.Errorf("database or directory changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestQueryTimeout(t *testing.T) {
	f := newFixture(t, WithQueryTimeout(200*time.Millisecond))
	start := time.Now()
	msg := callErr(t, f, ToolQuery, map[string]any{
		"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
	})
	if !strings.Contains(msg, "timed out") {
		t.Errorf("error %q does not mention the timeout", msg)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("runaway query took %v to stop", elapsed)
	}
	// The interrupted connection must be usable again.
	out := callOK[QueryOutput](t, f, ToolQuery, map[string]any{"sql": "SELECT count(*) AS n FROM users"})
	if out.Rows[0][0] != float64(10) {
		t.Errorf("count after timeout = %v", out.Rows[0][0])
	}
}

func TestExecuteSQL(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		sql      string
		wantRows int64
		wantErr  string
		verify   string // a query whose single integer result must be 1
	}{
		{name: "insert", sql: "INSERT INTO users (name, email) VALUES ('Kim Lee', 'kim@example.com')", wantRows: 1, verify: "SELECT count(*) FROM users WHERE email = 'kim@example.com'"},
		{name: "update many", sql: "UPDATE products SET stock = stock + 1 WHERE price_cents < 5000", wantRows: 3},
		{name: "create table", sql: "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", verify: "SELECT count(*) FROM sqlite_schema WHERE name = 'notes'"},
		{name: "trigger with body semicolons is one statement", sql: "CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN UPDATE notes SET body = upper(body) WHERE id = new.id; SELECT 1; END;", verify: "SELECT count(*) FROM sqlite_schema WHERE name = 'notes_ai'"},
		{name: "trigger fires", sql: "INSERT INTO notes (body) VALUES ('hi')", wantRows: 1, verify: "SELECT count(*) FROM notes WHERE body = 'HI'"},
		{name: "foreign key enforced", sql: "INSERT INTO orders (user_id, product, amount_cents) VALUES (9999, 'x', 1)", wantErr: "constraint violated: FOREIGN KEY"},
		{name: "check constraint", sql: "UPDATE products SET price_cents = -1 WHERE id = 1", wantErr: "constraint violated"},
		{name: "two statements", sql: "DELETE FROM orders; DELETE FROM users", wantErr: "2 statements"},
		{name: "begin", sql: "BEGIN", wantErr: "not allowed"},
		{name: "savepoint", sql: "SAVEPOINT a", wantErr: "not allowed"},
		{name: "attach", sql: "ATTACH DATABASE '" + filepath.Join(f.dir, "x.db") + "' AS x", wantErr: "not allowed"},
		{name: "vacuum into", sql: "VACUUM INTO '" + filepath.Join(f.dir, "copy.db") + "'", wantErr: "not allowed"},
		{name: "load_extension", sql: "SELECT load_extension('evil')", wantErr: "not allowed"},
		{name: "syntax error", sql: "UPDAT users", wantErr: "SQL error"},
		{name: "empty", sql: "", wantErr: "empty"},
		{name: "vacuum", sql: "VACUUM", wantErr: "not allowed"},
		{name: "select affects nothing", sql: "SELECT count(*) FROM users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]any{"sql": tt.sql}
			if tt.wantErr != "" {
				before := f.snapshot(t)
				msg := callErr(t, f, ToolExecuteSQL, args)
				if !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q does not contain %q", msg, tt.wantErr)
				}
				if after := f.snapshot(t); !after.equal(before) {
					t.Errorf("refused statement changed state:\nbefore %+v\nafter  %+v", before, after)
				}
				return
			}
			out := callOK[ExecuteSQLOutput](t, f, ToolExecuteSQL, args)
			if out.RowsAffected != tt.wantRows {
				t.Errorf("rows_affected = %d, want %d", out.RowsAffected, tt.wantRows)
			}
			if tt.verify != "" {
				var n int
				if err := f.db.rw.QueryRow(tt.verify).Scan(&n); err != nil || n != 1 {
					t.Errorf("verify %q = %d, %v; want 1", tt.verify, n, err)
				}
			}
		})
	}
	var mode string
	if err := f.db.rw.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	// A write is visible to the read-only pool on the next call.
	out := callOK[QueryOutput](t, f, ToolQuery, map[string]any{"sql": "SELECT count(*) FROM users"})
	if out.Rows[0][0] != float64(11) {
		t.Errorf("users after insert = %v, want 11", out.Rows[0][0])
	}
}

func TestDropTable(t *testing.T) {
	f := newFixture(t)
	if _, err := f.db.rw.Exec(`CREATE TABLE "x""y" (a); CREATE TABLE "users; DROP TABLE orders" (a); CREATE VIEW v AS SELECT 1`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		table     string
		wantErr   string
		wantGone  string
		wantExist []string
	}{
		{name: "injection text matches no table", table: "users; DROP TABLE products", wantErr: "does not exist", wantExist: []string{"users", "products"}},
		{name: "unknown", table: "nope", wantErr: "list_tables"},
		{name: "internal", table: "sqlite_schema", wantErr: "does not exist"},
		{name: "view is not a table", table: "v", wantErr: "does not exist", wantExist: []string{"v"}},
		{name: "empty", table: "", wantErr: "empty"},
		{name: "quote in name", table: `x"y`, wantGone: `x"y`, wantExist: []string{"users", "orders"}},
		{name: "injection-shaped name is just a name", table: "users; DROP TABLE orders", wantGone: "users; DROP TABLE orders", wantExist: []string{"users", "orders"}},
		{name: "case-insensitive", table: "PRODUCTS", wantGone: "products", wantExist: []string{"users", "orders"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]any{"table": tt.table}
			if tt.wantErr != "" {
				if msg := callErr(t, f, ToolDropTable, args); !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q does not contain %q", msg, tt.wantErr)
				}
			} else {
				out := callOK[DropTableOutput](t, f, ToolDropTable, args)
				if out.Dropped != tt.wantGone {
					t.Errorf("dropped = %q, want %q", out.Dropped, tt.wantGone)
				}
				if tableExists(t, f, tt.wantGone) {
					t.Errorf("table %q still exists", tt.wantGone)
				}
			}
			for _, name := range tt.wantExist {
				if !tableExists(t, f, name) {
					t.Errorf("table %q was dropped", name)
				}
			}
		})
	}
}

func tableExists(t *testing.T, f *fixture, name string) bool {
	t.Helper()
	var n int
	if err := f.db.rw.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestDeleteUsers(t *testing.T) {
	f := newFixture(t)
	many := make([]int64, MaxDeleteIDs)
	for i := range many {
		many[i] = int64(1000 + i)
	}
	tests := []struct {
		name        string
		ids         []int64
		wantDeleted int64
		wantErr     string
		wantUsers   int
		wantOrders  int
	}{
		{name: "empty", ids: []int64{}, wantErr: "ids is empty", wantUsers: 10, wantOrders: 10},
		{name: "too many", ids: append(slices.Clone(many), 1), wantErr: "too many ids", wantUsers: 10, wantOrders: 10},
		{name: "limit of ids, none exist", ids: many, wantDeleted: 0, wantUsers: 10, wantOrders: 10},
		{name: "existing and missing, with duplicates; orders cascade", ids: []int64{2, 4, 2, 999}, wantDeleted: 2, wantUsers: 8, wantOrders: 8},
		{name: "already deleted", ids: []int64{2}, wantDeleted: 0, wantUsers: 8, wantOrders: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]any{"ids": tt.ids}
			if tt.wantErr != "" {
				if msg := callErr(t, f, ToolDeleteUsers, args); !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q does not contain %q", msg, tt.wantErr)
				}
			} else {
				out := callOK[DeleteUsersOutput](t, f, ToolDeleteUsers, args)
				if out.Deleted != tt.wantDeleted {
					t.Errorf("deleted = %d, want %d", out.Deleted, tt.wantDeleted)
				}
			}
			s := f.snapshot(t)
			if s.counts["users"] != tt.wantUsers || s.counts["orders"] != tt.wantOrders {
				t.Errorf("users, orders = %d, %d; want %d, %d", s.counts["users"], s.counts["orders"], tt.wantUsers, tt.wantOrders)
			}
		})
	}
	t.Run("missing argument", func(t *testing.T) {
		callErr(t, f, ToolDeleteUsers, map[string]any{})
	})
}

func TestSeedDemo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "demo.db")

	created, err := SeedDemo(ctx, path)
	if err != nil || !created {
		t.Fatalf("first SeedDemo = %v, %v; want true, nil", created, err)
	}
	if got := listDir(t, dir); got != "demo.db" {
		t.Errorf("directory holds %q after seeding; want only demo.db", got)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	created, err = SeedDemo(ctx, path)
	if err != nil || created {
		t.Fatalf("second SeedDemo = %v, %v; want false, nil", created, err)
	}
	second, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Error("second SeedDemo modified the existing database")
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tbl := range []string{"users", "orders", "products"} {
		var n int
		if err := db.ro.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil || n != 10 {
			t.Errorf("%s has %d rows (%v), want 10", tbl, n, err)
		}
	}

	t.Run("existing non-database file untouched", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "data.db")
		if err := os.WriteFile(p, []byte("not sqlite"), 0o600); err != nil {
			t.Fatal(err)
		}
		created, err := SeedDemo(ctx, p)
		if err != nil || created {
			t.Fatalf("SeedDemo = %v, %v; want false, nil", created, err)
		}
		if b, _ := os.ReadFile(p); string(b) != "not sqlite" {
			t.Error("existing file was modified")
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		d := t.TempDir()
		if _, err := SeedDemo(ctx, filepath.Join(d, "no", "demo.db")); err == nil {
			t.Fatal("SeedDemo into a missing directory succeeded")
		}
		if got := listDir(t, d); got != "" {
			t.Errorf("left %q behind", got)
		}
	})
	t.Run("cancelled context leaves nothing behind", func(t *testing.T) {
		d := t.TempDir()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := SeedDemo(cctx, filepath.Join(d, "demo.db")); err == nil {
			t.Fatal("SeedDemo with a cancelled context succeeded")
		}
		if got := listDir(t, d); got != "" {
			t.Errorf("left %q behind", got)
		}
	})
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(dir, "odd dir?x=1#frag", "demo.db")
	if err := os.MkdirAll(filepath.Dir(odd), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := SeedDemo(ctx, odd); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "missing file", path: filepath.Join(dir, "missing.db"), wantErr: "does not exist"},
		{name: "empty path", path: "", wantErr: "no path"},
		{name: "directory", path: dir, wantErr: "not a regular file"},
		{name: "not a database", path: garbage, wantErr: "not a usable SQLite database"},
		{name: "path with URI metacharacters", path: odd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(ctx, tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				var n int
				if err := db.ro.QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil || n != 10 {
					t.Errorf("users = %d, %v", n, err)
				}
				if err := db.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				db.Close()
				t.Fatalf("Open succeeded; want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Error("Open created the missing database file")
	}
}

func BenchmarkQuery(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	in := QueryInput{SQL: "SELECT id, name, email FROM users WHERE role = 'customer' ORDER BY id"}
	b.ReportAllocs()
	for b.Loop() {
		_, out, err := f.db.query(ctx, nil, in)
		if err != nil || out.RowCount != 6 {
			b.Fatalf("query = %d rows, %v", out.RowCount, err)
		}
	}
}
