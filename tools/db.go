// Package tools implements mcpguard's built-in database tools: six MCP tools
// (list_tables, describe_table, query, execute_sql, drop_table, delete_users)
// over an embedded SQLite database, using the pure-Go modernc.org/sqlite
// driver.
//
// A [DB] holds two connection pools on one database file. The read-write pool
// serves execute_sql, drop_table and delete_users. The read-only pool serves
// list_tables, describe_table and query, and is read-only by construction,
// not by inspecting SQL text: its connections are opened with mode=ro and
// PRAGMA query_only, and every connection carries an SQLite authorizer that
// denies, at compile time, every action other than reading (no INSERT,
// UPDATE, DELETE, DDL, TEMP objects, ATTACH, VACUUM, transactions, setting
// PRAGMAs or load_extension). Temporary tables are refused too: they would
// only write temporary storage, but refusing them keeps the rule simple.
package tools

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// Default limits applied by the tools.
const (
	// DefaultQueryTimeout bounds how long one tool call may run SQL.
	DefaultQueryTimeout = 10 * time.Second
	// busyTimeoutMillis is how long a connection waits for a lock.
	busyTimeoutMillis = 5000
	// readPoolSize is the maximum number of read-only connections.
	readPoolSize = 4
)

// DB is mcpguard's tool database: a read-write pool and a hardened read-only
// pool on one SQLite file. It is safe for concurrent use.
type DB struct {
	rw      *sql.DB
	ro      *sql.DB
	timeout time.Duration
}

// Option configures [Open].
type Option func(*options)

type options struct {
	timeout time.Duration
}

// WithQueryTimeout sets how long a single tool call may run SQL before it is
// interrupted. Non-positive values keep [DefaultQueryTimeout].
func WithQueryTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// Open opens the SQLite database at path, which must already exist (use
// [SeedDemo] to create the demo database). The read-write pool uses WAL
// journaling, a busy timeout and foreign-key enforcement; the read-only pool
// is described in the package documentation.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := options{timeout: DefaultQueryTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errors.New("open database: no path given: set the database file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %q: resolve path: %w", path, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("open database %q: file does not exist: create it first or use the demo database", path)
	case err != nil:
		return nil, fmt.Errorf("open database %q: %w", path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open database %q: not a regular file", path)
	}

	rw := sql.OpenDB(&connector{
		drv:  &sqlite.Driver{},
		dsn:  fileDSN(abs, "mode=rw", "_pragma=foreign_keys(1)", "_pragma=journal_mode(WAL)"),
		auth: readWriteAuthorizer,
	})
	rw.SetMaxOpenConns(1) // SQLite has one writer; queue writers in Go instead of on the lock.
	ro := sql.OpenDB(&connector{
		drv:  &sqlite.Driver{},
		dsn:  fileDSN(abs, "mode=ro", "_pragma=query_only(1)"),
		auth: readOnlyAuthorizer,
	})
	ro.SetMaxOpenConns(readPoolSize)
	d := &DB{rw: rw, ro: ro, timeout: o.timeout}

	// Touch the schema on both pools so a file that is not a database, or
	// cannot be opened, fails here rather than on the first tool call.
	for _, p := range []*sql.DB{rw, ro} {
		var n int
		if err := p.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			d.Close()
			return nil, fmt.Errorf("open database %q: not a usable SQLite database: %w", path, err)
		}
	}
	return d, nil
}

// Close closes both connection pools.
func (d *DB) Close() error {
	return errors.Join(d.rw.Close(), d.ro.Close())
}

// fileDSN builds a modernc.org/sqlite URI DSN for the absolute path abs. The
// path is percent-encoded so characters such as '?' or '#' cannot inject
// parameters.
func fileDSN(abs string, params ...string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	base := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMillis),
		"_defensive=1",
	}
	return u.String() + "?" + strings.Join(append(base, params...), "&")
}

// connector opens connections through a privately constructed driver and
// installs an authorizer on each before database/sql may use it. A failure to
// install the authorizer fails the connection (fail closed).
type connector struct {
	drv  *sqlite.Driver
	dsn  string
	auth sqlite.AuthorizerFn
}

// Connect implements driver.Connector.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	reg, ok := conn.(sqlite.AuthorizerRegisterer)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite driver does not support authorizers")
	}
	if err := reg.RegisterAuthorizer(c.auth); err != nil {
		conn.Close()
		return nil, fmt.Errorf("install authorizer: %w", err)
	}
	return conn, nil
}

// Driver implements driver.Connector.
func (c *connector) Driver() driver.Driver { return c.drv }

// readOnlyPragma reports whether the read-only pool may compile the PRAGMA
// name. The allowed PRAGMAs take a table or index name as their argument,
// never a new setting.
func readOnlyPragma(name string) bool {
	switch strings.ToLower(name) {
	case "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list":
		return true
	}
	return false
}

// deniedFunction reports whether name is an SQL function no tool connection
// may call.
func deniedFunction(name string) bool {
	switch strings.ToLower(name) {
	case "load_extension", "fts3_tokenizer":
		return true
	}
	return false
}

// readOnlyAuthorizer allows reading and nothing else.
func readOnlyAuthorizer(action sqlite.AuthorizerActionCode, arg1, arg2, _, _ string) sqlite.AuthorizerReturnCode {
	switch action {
	case sqlite.AuthSelect, sqlite.AuthRead, sqlite.AuthRecursive:
		return sqlite.AuthorizerOK
	case sqlite.AuthFunction:
		if deniedFunction(arg2) {
			return sqlite.AuthorizerDeny
		}
		return sqlite.AuthorizerOK
	case sqlite.AuthPragma:
		if readOnlyPragma(arg1) {
			return sqlite.AuthorizerOK
		}
	}
	return sqlite.AuthorizerDeny
}

// readWriteAuthorizer allows data and schema changes in the open database but
// denies what reaches beyond it or outlives one call: attaching (and so
// creating) other files, which also covers VACUUM INTO; explicit transactions
// and savepoints, which would leave the shared writer connection inside an
// open transaction; and extension loading. VACUUM is refused as a
// consequence, because SQLite runs it through an internal ATTACH and BEGIN.
func readWriteAuthorizer(action sqlite.AuthorizerActionCode, _, arg2, _, _ string) sqlite.AuthorizerReturnCode {
	switch action {
	case sqlite.AuthAttach, sqlite.AuthTransaction, sqlite.AuthSavepoint:
		return sqlite.AuthorizerDeny
	case sqlite.AuthFunction:
		if deniedFunction(arg2) {
			return sqlite.AuthorizerDeny
		}
	}
	return sqlite.AuthorizerOK
}
