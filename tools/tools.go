package tools

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Tool names.
const (
	ToolListTables    = "list_tables"
	ToolDescribeTable = "describe_table"
	ToolQuery         = "query"
	ToolExecuteSQL    = "execute_sql"
	ToolDropTable     = "drop_table"
	ToolDeleteUsers   = "delete_users"
)

// Input and output bounds.
const (
	// MaxSQLBytes is the longest SQL text the query and execute_sql tools accept.
	MaxSQLBytes = 64 << 10
	// MaxTableNameBytes is the longest table name the tools accept.
	MaxTableNameBytes = 256
	// DefaultMaxRows is how many rows query returns when max_rows is unset.
	DefaultMaxRows = 100
	// MaxRows is the most rows query ever returns.
	MaxRows = 1000
	// MaxCellBytes caps one text cell; longer text is cut and flagged.
	MaxCellBytes = 4 << 10
	// maxBlobBytes caps one BLOB cell before base64 (4/3 growth keeps it near MaxCellBytes).
	maxBlobBytes = MaxCellBytes * 3 / 4
	// MaxResultBytes caps the cell data of one query result; rows past it
	// are dropped and the result is flagged truncated.
	MaxResultBytes = 1 << 20
	// MaxDeleteIDs is the most ids one delete_users call accepts.
	MaxDeleteIDs = 1000
)

// Names returns the names of the tools [Register] adds, in a new slice.
func Names() []string {
	return []string{ToolListTables, ToolDescribeTable, ToolQuery, ToolExecuteSQL, ToolDropTable, ToolDeleteUsers}
}

// ListTablesInput is the (empty) input of list_tables.
type ListTablesInput struct{}

// ListTablesOutput is the result of list_tables.
type ListTablesOutput struct {
	Tables []string `json:"tables" jsonschema:"names of the user tables, sorted"`
	Views  []string `json:"views" jsonschema:"names of the views, sorted"`
}

// DescribeTableInput is the input of describe_table.
type DescribeTableInput struct {
	Table string `json:"table" jsonschema:"name of an existing table or view, as returned by list_tables"`
}

// Column describes one column of a table.
type Column struct {
	Name       string  `json:"name" jsonschema:"column name"`
	Type       string  `json:"type" jsonschema:"declared type, possibly empty"`
	NotNull    bool    `json:"notnull" jsonschema:"true when the column is NOT NULL"`
	PrimaryKey int     `json:"pk" jsonschema:"1-based position in the primary key, 0 when not part of it"`
	Default    *string `json:"default" jsonschema:"default value expression as SQL text, null when none"`
}

// DescribeTableOutput is the result of describe_table.
type DescribeTableOutput struct {
	Table   string   `json:"table" jsonschema:"the table name as stored in the schema"`
	Columns []Column `json:"columns" jsonschema:"columns in declaration order"`
}

// QueryInput is the input of query.
type QueryInput struct {
	SQL     string `json:"sql" jsonschema:"one read-only SQL statement, e.g. a SELECT"`
	MaxRows int    `json:"max_rows,omitempty" jsonschema:"maximum rows to return; default 100, at most 1000"`
}

// QueryOutput is the result of query.
type QueryOutput struct {
	Columns        []string `json:"columns" jsonschema:"result column names"`
	Rows           [][]any  `json:"rows" jsonschema:"result rows; each row lists values in column order. BLOBs appear as {\"blob_base64\": ..., \"blob_bytes\": n}"`
	RowCount       int      `json:"row_count" jsonschema:"number of rows returned"`
	Truncated      bool     `json:"truncated" jsonschema:"true when more rows existed than were returned"`
	CellsTruncated bool     `json:"cells_truncated" jsonschema:"true when some long text or BLOB values were cut"`
}

// ExecuteSQLInput is the input of execute_sql.
type ExecuteSQLInput struct {
	SQL string `json:"sql" jsonschema:"one SQL statement that changes data or schema, e.g. INSERT, UPDATE, DELETE, CREATE TABLE"`
}

// ExecuteSQLOutput is the result of execute_sql.
type ExecuteSQLOutput struct {
	RowsAffected int64 `json:"rows_affected" jsonschema:"number of rows inserted, updated or deleted"`
}

// DropTableInput is the input of drop_table.
type DropTableInput struct {
	Table string `json:"table" jsonschema:"name of an existing table, as returned by list_tables"`
}

// DropTableOutput is the result of drop_table.
type DropTableOutput struct {
	Dropped string `json:"dropped" jsonschema:"name of the dropped table"`
}

// DeleteUsersInput is the input of delete_users.
type DeleteUsersInput struct {
	IDs []int64 `json:"ids" jsonschema:"ids of the users to delete, 1 to 1000 entries"`
}

// DeleteUsersOutput is the result of delete_users.
type DeleteUsersOutput struct {
	Deleted int64 `json:"deleted" jsonschema:"number of users deleted; ids that did not exist are not counted"`
}

// Register adds the six database tools to s, backed by d.
func Register(s *mcp.Server, d *DB) {
	yes, no := true, false
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolListTables,
		Description: "List the tables and views in the database. Use describe_table to see a table's columns.",
		Annotations: &mcp.ToolAnnotations{Title: "List tables", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, d.listTables)
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolDescribeTable,
		Description: "Describe the columns of one table or view: name, declared type, NOT NULL, primary-key position and default.",
		Annotations: &mcp.ToolAnnotations{Title: "Describe table", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, d.describeTable)
	mcp.AddTool(s, &mcp.Tool{
		Name: ToolQuery,
		Description: "Run one read-only SQL statement (SELECT, WITH ... SELECT) and return its columns and rows. " +
			"At most max_rows rows (default 100, limit 1000) are returned; long values are cut. " +
			"Statements that change anything are refused: use execute_sql for those.",
		Annotations: &mcp.ToolAnnotations{Title: "Query (read-only)", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, d.query)
	mcp.AddTool(s, &mcp.Tool{
		Name: ToolExecuteSQL,
		Description: "Run one SQL statement that changes data or schema (INSERT, UPDATE, DELETE, CREATE, ALTER, DROP) and return the number of rows affected. " +
			"Each call commits on its own; BEGIN/COMMIT, ATTACH, VACUUM and extension loading are refused.",
		Annotations: &mcp.ToolAnnotations{Title: "Execute SQL", DestructiveHint: &yes, OpenWorldHint: &no},
	}, d.executeSQL)
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolDropTable,
		Description: "Drop an existing table and all its rows. This cannot be undone.",
		Annotations: &mcp.ToolAnnotations{Title: "Drop table", DestructiveHint: &yes, OpenWorldHint: &no},
	}, d.dropTable)
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolDeleteUsers,
		Description: "Delete users by id (1 to 1000 ids per call), together with their orders. Returns how many users were deleted. This cannot be undone.",
		Annotations: &mcp.ToolAnnotations{Title: "Delete users", DestructiveHint: &yes, IdempotentHint: true, OpenWorldHint: &no},
	}, d.deleteUsers)
}

// toolError is a failure whose message is safe and useful to show to the
// MCP client. The SDK reports it as a tool result with IsError set.
type toolError struct{ msg string }

func (e *toolError) Error() string { return e.msg }

func toolErrorf(format string, args ...any) error {
	return &toolError{msg: fmt.Sprintf(format, args...)}
}

// pool selects the connection pool a statement ran on, for error messages.
type pool int

const (
	readPool pool = iota
	writePool
)

// sqlError turns a database error into a toolError without exposing driver
// internals. ctx is the call's timeout context.
func (d *DB) sqlError(ctx context.Context, p pool, err error) error {
	var se *sqlite.Error
	isSQLite := errors.As(err, &se)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(isSQLite && se.Code()&0xff == sqlite3.SQLITE_INTERRUPT):
		return toolErrorf("statement timed out after %s: add a LIMIT or narrow the WHERE clause", d.timeout)
	case errors.Is(err, context.Canceled):
		return toolErrorf("request was cancelled")
	case !isSQLite:
		return toolErrorf("database error: try again later")
	}
	msg := cleanSQLiteMessage(se.Error())
	code := se.Code() & 0xff
	denied := code == sqlite3.SQLITE_READONLY || code == sqlite3.SQLITE_AUTH || strings.Contains(msg, "not authorized")
	switch {
	case denied && p == readPool:
		return toolErrorf("query is read-only: only reading statements such as SELECT are allowed; use execute_sql to change data")
	case denied:
		return toolErrorf("statement not allowed: BEGIN/COMMIT/SAVEPOINT, ATTACH, VACUUM and extension loading are disabled; send one plain statement per call")
	case code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED:
		return toolErrorf("database is busy: retry shortly")
	case code == sqlite3.SQLITE_CONSTRAINT:
		return toolErrorf("constraint violated: %s", msg)
	}
	return toolErrorf("SQL error: %s", msg)
}

// cleanSQLiteMessage reduces modernc's "errstr: errmsg (code)" form to
// SQLite's own message, bounded in length.
func cleanSQLiteMessage(s string) string {
	if i := strings.LastIndex(s, " ("); i > 0 && strings.HasSuffix(s, ")") {
		s = s[:i]
	}
	if i := strings.Index(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return truncateUTF8(s, 300)
}

// checkSQL validates SQL text given to query or execute_sql.
func checkSQL(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return toolErrorf("sql is empty: pass one SQL statement")
	case len(text) > MaxSQLBytes:
		return toolErrorf("sql is too long (%d bytes, limit %d): shorten the statement", len(text), MaxSQLBytes)
	case strings.IndexByte(text, 0) >= 0:
		return toolErrorf("sql contains a NUL byte: remove it")
	case !utf8.ValidString(text):
		return toolErrorf("sql is not valid UTF-8")
	}
	switch n := countStatements(text); {
	case n == 0:
		return toolErrorf("sql contains no statement (only comments or semicolons): pass one SQL statement")
	case n > 1:
		return toolErrorf("sql contains %d statements: send exactly one statement per call", n)
	}
	return nil
}

// checkTableName validates a table name before it is looked up.
func checkTableName(name string) error {
	switch {
	case name == "":
		return toolErrorf("table is empty: pass a table name from list_tables")
	case len(name) > MaxTableNameBytes:
		return toolErrorf("table name is too long (limit %d bytes): pass a table name from list_tables", MaxTableNameBytes)
	case strings.IndexByte(name, 0) >= 0 || !utf8.ValidString(name):
		return toolErrorf("table name is not valid text: pass a table name from list_tables")
	}
	return nil
}

// quoteIdent quotes an SQL identifier, doubling embedded quotes.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// lookupTable returns the stored name of the user table or view (when
// allowViews) named name, compared case-insensitively as SQLite does.
func (d *DB) lookupTable(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, p pool, name string, allowViews bool) (string, error) {
	const stmt = `SELECT name FROM sqlite_schema
		WHERE type IN ('table', ?) AND name = ? COLLATE NOCASE AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
		LIMIT 1`
	view := ""
	if allowViews {
		view = "view"
	}
	var stored string
	err := q.QueryRowContext(ctx, stmt, view, name).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return "", toolErrorf("table %q does not exist: call list_tables to see the available tables", truncateUTF8(name, 64))
	}
	if err != nil {
		return "", d.sqlError(ctx, p, err)
	}
	return stored, nil
}

func (d *DB) listTables(ctx context.Context, _ *mcp.CallToolRequest, _ ListTablesInput) (*mcp.CallToolResult, ListTablesOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	out := ListTablesOutput{Tables: []string{}, Views: []string{}}
	rows, err := d.ro.QueryContext(ctx, `SELECT type, name FROM sqlite_schema
		WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
		ORDER BY name`)
	if err != nil {
		return nil, out, d.sqlError(ctx, readPool, err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name string
		if err := rows.Scan(&typ, &name); err != nil {
			return nil, out, d.sqlError(ctx, readPool, err)
		}
		if typ == "view" {
			out.Views = append(out.Views, name)
		} else {
			out.Tables = append(out.Tables, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, out, d.sqlError(ctx, readPool, err)
	}
	return nil, out, nil
}

func (d *DB) describeTable(ctx context.Context, _ *mcp.CallToolRequest, in DescribeTableInput) (*mcp.CallToolResult, DescribeTableOutput, error) {
	out := DescribeTableOutput{Columns: []Column{}}
	if err := checkTableName(in.Table); err != nil {
		return nil, out, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	name, err := d.lookupTable(ctx, d.ro, readPool, in.Table, true)
	if err != nil {
		return nil, out, err
	}
	out.Table = name
	// The table name is a bound parameter of the table-valued PRAGMA, so it
	// never becomes SQL text.
	rows, err := d.ro.QueryContext(ctx, `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return nil, out, d.sqlError(ctx, readPool, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c Column
		var def sql.NullString
		if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &def, &c.PrimaryKey); err != nil {
			return nil, out, d.sqlError(ctx, readPool, err)
		}
		if def.Valid {
			c.Default = &def.String
		}
		out.Columns = append(out.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, out, d.sqlError(ctx, readPool, err)
	}
	return nil, out, nil
}

func (d *DB) query(ctx context.Context, _ *mcp.CallToolRequest, in QueryInput) (*mcp.CallToolResult, QueryOutput, error) {
	out := QueryOutput{Columns: []string{}, Rows: [][]any{}}
	if err := checkSQL(in.SQL); err != nil {
		return nil, out, err
	}
	maxRows := in.MaxRows
	switch {
	case maxRows < 0:
		return nil, out, toolErrorf("max_rows must not be negative: omit it for the default of %d", DefaultMaxRows)
	case maxRows == 0:
		maxRows = DefaultMaxRows
	case maxRows > MaxRows:
		maxRows = MaxRows
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	rows, err := d.ro.QueryContext(ctx, in.SQL)
	if err != nil {
		return nil, out, d.sqlError(ctx, readPool, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, out, d.sqlError(ctx, readPool, err)
	}
	out.Columns = cols
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	budget := MaxResultBytes
	for rows.Next() {
		if len(out.Rows) == maxRows || budget <= 0 {
			out.Truncated = true
			break
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, out, d.sqlError(ctx, readPool, err)
		}
		row := make([]any, len(cols))
		for i, v := range vals {
			var n int
			var cut bool
			row[i], n, cut = jsonValue(v)
			budget -= n
			out.CellsTruncated = out.CellsTruncated || cut
		}
		out.Rows = append(out.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, out, d.sqlError(ctx, readPool, err)
	}
	out.RowCount = len(out.Rows)
	return nil, out, nil
}

// jsonValue converts a scanned SQLite value into a JSON-friendly, bounded
// value. It returns the value, its approximate encoded size, and whether it
// was cut.
func jsonValue(v any) (any, int, bool) {
	switch x := v.(type) {
	case nil:
		return nil, 4, false
	case int64:
		return x, 20, false
	case float64:
		switch {
		case math.IsInf(x, 1):
			return "Infinity", 10, false
		case math.IsInf(x, -1):
			return "-Infinity", 10, false
		case math.IsNaN(x):
			return nil, 4, false
		}
		return x, 24, false
	case bool:
		return x, 5, false
	case string:
		s := truncateUTF8(x, MaxCellBytes)
		return s, len(s) + 2, len(s) < len(x)
	case []byte:
		b := x
		if len(b) > maxBlobBytes {
			b = b[:maxBlobBytes]
		}
		enc := base64.StdEncoding.EncodeToString(b)
		return map[string]any{"blob_base64": enc, "blob_bytes": len(x)}, len(enc) + 40, len(b) < len(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), 32, false
	default:
		s := truncateUTF8(fmt.Sprint(x), MaxCellBytes)
		return s, len(s) + 2, false
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (d *DB) executeSQL(ctx context.Context, _ *mcp.CallToolRequest, in ExecuteSQLInput) (*mcp.CallToolResult, ExecuteSQLOutput, error) {
	var out ExecuteSQLOutput
	if err := checkSQL(in.SQL); err != nil {
		return nil, out, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := d.rw.Conn(ctx)
	if err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	defer conn.Close()
	// sqlite3_changes keeps the count of the last INSERT, UPDATE or DELETE,
	// so after DDL it would report a stale number. total_changes() moves
	// only when rows change; when it does not, nothing was affected.
	var before, after int64
	if err := conn.QueryRowContext(ctx, "SELECT total_changes()").Scan(&before); err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	res, err := conn.ExecContext(ctx, in.SQL)
	if err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT total_changes()").Scan(&after); err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	if after == before {
		return nil, out, nil
	}
	if out.RowsAffected, err = res.RowsAffected(); err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	return nil, out, nil
}

func (d *DB) dropTable(ctx context.Context, _ *mcp.CallToolRequest, in DropTableInput) (*mcp.CallToolResult, DropTableOutput, error) {
	var out DropTableOutput
	if err := checkTableName(in.Table); err != nil {
		return nil, out, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := d.rw.Conn(ctx)
	if err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	defer conn.Close()
	name, err := d.lookupTable(ctx, conn, writePool, in.Table, false)
	if err != nil {
		return nil, out, err
	}
	// name comes from sqlite_schema, and is quoted as an identifier.
	if _, err := conn.ExecContext(ctx, "DROP TABLE "+quoteIdent(name)); err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	out.Dropped = name
	return nil, out, nil
}

func (d *DB) deleteUsers(ctx context.Context, _ *mcp.CallToolRequest, in DeleteUsersInput) (*mcp.CallToolResult, DeleteUsersOutput, error) {
	var out DeleteUsersOutput
	switch {
	case len(in.IDs) == 0:
		return nil, out, toolErrorf("ids is empty: pass 1 to %d user ids", MaxDeleteIDs)
	case len(in.IDs) > MaxDeleteIDs:
		return nil, out, toolErrorf("too many ids (%d, limit %d): split the request into smaller calls", len(in.IDs), MaxDeleteIDs)
	}
	args := make([]any, len(in.IDs))
	for i, id := range in.IDs {
		args[i] = id
	}
	stmt := "DELETE FROM users WHERE id IN (?" + strings.Repeat(",?", len(args)-1) + ")"
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	res, err := d.rw.ExecContext(ctx, stmt, args...)
	if err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	if out.Deleted, err = res.RowsAffected(); err != nil {
		return nil, out, d.sqlError(ctx, writePool, err)
	}
	return nil, out, nil
}
