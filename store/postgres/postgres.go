// Package postgres is the store.Store backend for running several mcpguard
// replicas on one PostgreSQL database (github.com/jackc/pgx/v5, pgxpool).
//
// Its schema mirrors store/sqlite's: times are int64 nanoseconds since 1970
// (0 meaning unset), lists are JSON text, secrets are stored only as
// digests. Migrations are versioned and applied at Open under a
// transaction-scoped advisory lock, so that replicas starting together
// neither race nor apply a migration twice. Every multi-statement method
// runs in one transaction, and single-use values are consumed with a row
// lock plus a compare-and-set.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

// migrationLock is the advisory-lock key migrations hold ("mcpguard" in
// ASCII, as a bigint).
const migrationLock int64 = 0x6d6370677561726

// migrations are applied in order, each in its own transaction, and recorded
// in schema_migrations. Never edit a released migration: append a new one
// (a later feature's tables are one more entry here plus its methods).
var migrations = []string{
	`CREATE TABLE api_keys (
		id              TEXT PRIMARY KEY,
		name            TEXT NOT NULL,
		hash            BYTEA NOT NULL,
		roles           TEXT NOT NULL DEFAULT '[]',
		scopes          TEXT NOT NULL DEFAULT '[]',
		created_at      BIGINT NOT NULL,
		expires_at      BIGINT NOT NULL DEFAULT 0,
		last_used_at    BIGINT NOT NULL DEFAULT 0,
		revoked_at      BIGINT NOT NULL DEFAULT 0,
		prev_hash       BYTEA,
		prev_expires_at BIGINT NOT NULL DEFAULT 0
	);
	CREATE TABLE revoked_tokens (
		jti        TEXT PRIMARY KEY,
		expires_at BIGINT NOT NULL
	);
	CREATE TABLE audit_records (
		seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		ts       BIGINT NOT NULL,
		decision TEXT NOT NULL,
		subject  TEXT NOT NULL DEFAULT '',
		method   TEXT NOT NULL DEFAULT '',
		target   TEXT NOT NULL DEFAULT '',
		record   TEXT NOT NULL
	);
	CREATE INDEX audit_records_ts ON audit_records (ts, seq);
	CREATE INDEX audit_records_decision ON audit_records (decision, ts, seq);
	CREATE INDEX audit_records_subject ON audit_records (subject, ts, seq);
	CREATE INDEX audit_records_target ON audit_records (target, ts, seq);`,
	`CREATE TABLE oauth_users (
		name          TEXT PRIMARY KEY,
		password_hash TEXT NOT NULL,
		roles         TEXT NOT NULL DEFAULT '[]',
		mfa_secret    BYTEA,
		backup_codes  TEXT NOT NULL DEFAULT '[]',
		mfa_last_step BIGINT NOT NULL DEFAULT 0,
		failed_logins INTEGER NOT NULL DEFAULT 0,
		locked_until  BIGINT NOT NULL DEFAULT 0,
		created_at    BIGINT NOT NULL,
		updated_at    BIGINT NOT NULL
	);
	CREATE TABLE oauth_clients (
		id            TEXT PRIMARY KEY,
		secret_hash   BYTEA,
		name          TEXT NOT NULL,
		redirect_uris TEXT NOT NULL DEFAULT '[]',
		grant_types   TEXT NOT NULL DEFAULT '[]',
		auth_method   TEXT NOT NULL,
		scopes        TEXT NOT NULL DEFAULT '[]',
		roles         TEXT NOT NULL DEFAULT '[]',
		dynamic       BOOLEAN NOT NULL DEFAULT FALSE,
		created_at    BIGINT NOT NULL
	);
	CREATE TABLE oauth_codes (
		hash           BYTEA PRIMARY KEY,
		family_id      TEXT NOT NULL,
		client_id      TEXT NOT NULL,
		redirect_uri   TEXT NOT NULL,
		subject        TEXT NOT NULL,
		scopes         TEXT NOT NULL DEFAULT '[]',
		resource       TEXT NOT NULL,
		code_challenge TEXT NOT NULL,
		auth_time      BIGINT NOT NULL DEFAULT 0,
		mfa_time       BIGINT NOT NULL DEFAULT 0,
		created_at     BIGINT NOT NULL,
		expires_at     BIGINT NOT NULL,
		used_at        BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);
	CREATE TABLE oauth_refresh_tokens (
		hash       BYTEA PRIMARY KEY,
		family_id  TEXT NOT NULL,
		client_id  TEXT NOT NULL,
		subject    TEXT NOT NULL,
		scopes     TEXT NOT NULL DEFAULT '[]',
		resource   TEXT NOT NULL,
		auth_time  BIGINT NOT NULL DEFAULT 0,
		mfa_time   BIGINT NOT NULL DEFAULT 0,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		used_at    BIGINT NOT NULL DEFAULT 0,
		revoked_at BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens (family_id);
	CREATE INDEX oauth_refresh_subject ON oauth_refresh_tokens (subject);
	CREATE INDEX oauth_refresh_expires ON oauth_refresh_tokens (expires_at);
	CREATE TABLE oauth_consents (
		user_name  TEXT NOT NULL,
		client_id  TEXT NOT NULL,
		scopes     TEXT NOT NULL DEFAULT '[]',
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (user_name, client_id)
	);
	CREATE TABLE oauth_signing_keys (
		id          TEXT PRIMARY KEY,
		algorithm   TEXT NOT NULL,
		private_key BYTEA NOT NULL,
		created_at  BIGINT NOT NULL,
		retired_at  BIGINT NOT NULL DEFAULT 0
	);`,
	`CREATE TABLE secrets (
		name          TEXT PRIMARY KEY,
		master_key_id TEXT NOT NULL,
		wrapped_key   BYTEA NOT NULL,
		ciphertext    BYTEA NOT NULL,
		created_at    BIGINT NOT NULL,
		updated_at    BIGINT NOT NULL
	);`,
	// Pinned upstream tool definitions and upstream health (gateway mode).
	`CREATE TABLE tool_pins (
		upstream  TEXT NOT NULL,
		tool      TEXT NOT NULL,
		hash      TEXT NOT NULL,
		pinned_at BIGINT NOT NULL,
		PRIMARY KEY (upstream, tool)
	);
	CREATE TABLE upstream_status (
		name       TEXT PRIMARY KEY,
		status     TEXT NOT NULL,
		updated_at BIGINT NOT NULL
	);`,
	// The MCP session registry (store.SessionStore), and refresh tokens
	// bound to a client certificate (RFC 8705). seq orders sessions
	// created in the same nanosecond.
	`CREATE TABLE mcp_sessions (
		id         TEXT PRIMARY KEY,
		seq        BIGINT GENERATED ALWAYS AS IDENTITY,
		owner      TEXT NOT NULL,
		subject    TEXT NOT NULL,
		client_id  TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		last_seen  BIGINT NOT NULL,
		revoked_at BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX mcp_sessions_owner ON mcp_sessions (owner, created_at);
	CREATE INDEX mcp_sessions_subject ON mcp_sessions (subject);
	ALTER TABLE oauth_refresh_tokens ADD COLUMN cert_x5t TEXT NOT NULL DEFAULT '';`,
}

// Limits of the connection pool.
const (
	maxConns       = 16
	connectTimeout = 10 * time.Second
)

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// querier is what a pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Open connects to the database at url (postgres://…) and applies any
// pending migrations. Errors never include the URL, which may hold a
// password.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("store: invalid postgres URL (want postgres://user:password@host:port/database?sslmode=…)")
	}
	if cfg.MaxConns > maxConns || cfg.MaxConns <= 0 {
		cfg.MaxConns = maxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > connectTimeout {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Migrate applies pending migrations, each in its own transaction holding
// an advisory lock, and refuses a schema newer than this binary. Open calls
// it; `mcpguard migrate` calls it alone.
func (s *Store) Migrate(ctx context.Context) error {
	for i, m := range migrations {
		version := i + 1
		if err := s.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.Exec(ctx, m); err != nil {
				return fmt.Errorf("migration %d: %w", version, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, time.Now().UnixNano())
			return err
		}); err != nil {
			return fmt.Errorf("store: postgres migrate: %w", err)
		}
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("store: database schema version %d is newer than this mcpguard (%d): upgrade mcpguard", v, len(migrations))
	}
	return nil
}

// SchemaVersion returns the newest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// Ping reports whether the database answers, for readiness checks.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: postgres unreachable: %w", err)
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// isUnique reports a unique-constraint violation (SQLSTATE 23505).
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// notFound maps a missing row to store.ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// affected returns ErrNotFound when a command changed no row.
func affected(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: %s: %w", what, store.ErrNotFound)
	}
	return nil
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, err error, what string, scan func(codec.Scanner) (*T, error)) ([]*T, error) {
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+codec.KeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.Name, k.Hash, codec.EncodeList(k.Roles), codec.EncodeList(k.Scopes),
		codec.UnixNano(k.CreatedAt), codec.UnixNano(k.ExpiresAt), codec.UnixNano(k.LastUsedAt), codec.UnixNano(k.RevokedAt), k.PreviousHash, codec.UnixNano(k.PreviousExpiresAt))
	if isUnique(err) {
		return fmt.Errorf("store: api key %s: %w", k.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create api key: %w", err)
	}
	return nil
}

// GetAPIKey implements store.Store.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := codec.ScanKey(s.pool.QueryRow(ctx, `SELECT `+codec.KeyColumns+` FROM api_keys WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "api key "+id)
	}
	return k, nil
}

// ListAPIKeys implements store.Store.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+codec.KeyColumns+` FROM api_keys ORDER BY created_at DESC, id`)
	return collect(rows, err, "list api keys", codec.ScanKey)
}

// RevokeAPIKey implements store.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = CASE WHEN revoked_at = 0 THEN $1 ELSE revoked_at END WHERE id = $2`, codec.UnixNano(at), id)
		if err := affected(tag, err, "revoke api key "+id); err != nil {
			return err
		}
		return notifyRevoked(ctx, tx, "key")
	})
}

// RotateAPIKey implements store.Store.
func (s *Store) RotateAPIKey(ctx context.Context, id string, newHash []byte, graceUntil time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var revoked int64
		if err := tx.QueryRow(ctx, `SELECT revoked_at FROM api_keys WHERE id = $1 FOR UPDATE`, id).Scan(&revoked); err != nil {
			return notFound(err, "api key "+id)
		}
		if revoked != 0 {
			return fmt.Errorf("store: api key %s is revoked and cannot be rotated", id)
		}
		_, err := tx.Exec(ctx, `UPDATE api_keys SET prev_hash = CASE WHEN $1 THEN hash ELSE NULL END, prev_expires_at = $2, hash = $3 WHERE id = $4`,
			!graceUntil.IsZero(), codec.UnixNano(graceUntil), newHash, id)
		if err != nil {
			return fmt.Errorf("store: rotate api key: %w", err)
		}
		return notifyRevoked(ctx, tx, "key")
	})
}

// TouchAPIKeys implements store.Store.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for id, t := range lastUsed {
			b.Queue(`UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND last_used_at < $1`, codec.UnixNano(t), id)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: touch api keys: %w", err)
		}
		return nil
	})
}

// RevokeToken implements store.Store. Expired entries are purged on the way.
func (s *Store) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)
			ON CONFLICT (jti) DO UPDATE SET expires_at = CASE WHEN revoked_tokens.expires_at = 0 OR excluded.expires_at = 0 THEN 0
				ELSE GREATEST(revoked_tokens.expires_at, excluded.expires_at) END`, jti, codec.UnixNano(expiresAt)); err != nil {
			return fmt.Errorf("store: revoke token: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM revoked_tokens WHERE expires_at <> 0 AND expires_at < $1`, time.Now().Add(-24*time.Hour).UnixNano()); err != nil {
			return fmt.Errorf("store: purge revoked tokens: %w", err)
		}
		return notifyRevoked(ctx, tx, "token")
	})
}

// TokenRevoked implements store.Store.
func (s *Store) TokenRevoked(ctx context.Context, jti string) (bool, error) {
	var found bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)`, jti).Scan(&found); err != nil {
		return false, fmt.Errorf("store: token revoked: %w", err)
	}
	return found, nil
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, recs []guard.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if len(recs) > store.MaxAuditBatch {
		return fmt.Errorf("store: append audit: batch of %d records exceeds %d", len(recs), store.MaxAuditBatch)
	}
	b := &pgx.Batch{}
	for i := range recs {
		r := &recs[i]
		if err := store.ValidateAuditRecord(r); err != nil {
			return fmt.Errorf("store: append audit record %d: %w", i, err)
		}
		enc, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("store: append audit record %d: %w: %w", i, store.ErrInvalidRecord, err)
		}
		if len(enc) > store.MaxAuditRecordBytes {
			return fmt.Errorf("store: append audit record %d: %w: %d bytes encoded exceeds %d", i, store.ErrInvalidRecord, len(enc), store.MaxAuditRecordBytes)
		}
		b.Queue(`INSERT INTO audit_records (ts, decision, subject, method, target, record) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.Time.UnixNano(), string(r.Decision), r.Subject, r.Method, r.Target, string(enc))
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: append audit: %w", err)
		}
		return nil
	})
}

// QueryAudit implements store.Store.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) ([]guard.Record, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("store: query audit: %w", err)
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if !q.Since.IsZero() {
		add("ts >= $%d", q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		add("ts < $%d", q.Until.UnixNano())
	}
	if q.Decision != "" {
		add("decision = $%d", string(q.NormalizedDecision()))
	}
	if q.User != "" {
		add("subject = $%d", q.User)
	}
	if q.Tool != "" {
		add("target = $%d AND method IN ('tools/call', '')", q.Tool)
	}
	query := `SELECT record FROM audit_records`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := q.EffectiveLimit()
	args = append(args, limit)
	query += fmt.Sprintf(` ORDER BY ts DESC, seq DESC LIMIT $%d`, len(args))

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: query audit: %w", err)
	}
	defer rows.Close()
	recs := make([]guard.Record, 0, min(limit, 256))
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("store: query audit: %w", err)
		}
		var r guard.Record
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return nil, fmt.Errorf("store: query audit: corrupt record: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: query audit: %w", err)
	}
	return recs, nil
}
