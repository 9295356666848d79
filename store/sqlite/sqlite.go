// Package sqlite is the embedded store.Store backend: one SQLite file
// (modernc.org/sqlite, no cgo) in write-ahead-log mode, so that a crash in the
// middle of a write leaves the previous state intact.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// migrations are applied in order, each in its own transaction, and recorded
// in schema_migrations. Never edit a released migration: append a new one.
var migrations = []string{
	`CREATE TABLE api_keys (
		id           TEXT PRIMARY KEY,
		name         TEXT NOT NULL,
		hash         BLOB NOT NULL,
		roles        TEXT NOT NULL DEFAULT '[]',
		scopes       TEXT NOT NULL DEFAULT '[]',
		created_at   INTEGER NOT NULL,
		expires_at   INTEGER NOT NULL DEFAULT 0,
		last_used_at INTEGER NOT NULL DEFAULT 0,
		revoked_at   INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE revoked_tokens (
		jti        TEXT PRIMARY KEY,
		expires_at INTEGER NOT NULL
	);`,
	// Audit records: the record itself as JSON, so that it round-trips in
	// full, plus the columns queries filter and sort on. seq orders records
	// appended in the same nanosecond; AUTOINCREMENT keeps it increasing
	// even after old rows are deleted.
	`CREATE TABLE audit_records (
		seq      INTEGER PRIMARY KEY AUTOINCREMENT,
		ts       INTEGER NOT NULL,
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
	// The authorization server's state. Secrets (codes, refresh tokens,
	// client secrets) are stored only as SHA-256 digests.
	`CREATE TABLE oauth_users (
		name          TEXT PRIMARY KEY,
		password_hash TEXT NOT NULL,
		roles         TEXT NOT NULL DEFAULT '[]',
		mfa_secret    BLOB,
		backup_codes  TEXT NOT NULL DEFAULT '[]',
		mfa_last_step INTEGER NOT NULL DEFAULT 0,
		failed_logins INTEGER NOT NULL DEFAULT 0,
		locked_until  INTEGER NOT NULL DEFAULT 0,
		created_at    INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL
	);
	CREATE TABLE oauth_clients (
		id            TEXT PRIMARY KEY,
		secret_hash   BLOB,
		name          TEXT NOT NULL,
		redirect_uris TEXT NOT NULL DEFAULT '[]',
		grant_types   TEXT NOT NULL DEFAULT '[]',
		auth_method   TEXT NOT NULL,
		scopes        TEXT NOT NULL DEFAULT '[]',
		roles         TEXT NOT NULL DEFAULT '[]',
		dynamic       INTEGER NOT NULL DEFAULT 0,
		created_at    INTEGER NOT NULL
	);
	CREATE TABLE oauth_codes (
		hash           BLOB PRIMARY KEY,
		family_id      TEXT NOT NULL,
		client_id      TEXT NOT NULL,
		redirect_uri   TEXT NOT NULL,
		subject        TEXT NOT NULL,
		scopes         TEXT NOT NULL DEFAULT '[]',
		resource       TEXT NOT NULL,
		code_challenge TEXT NOT NULL,
		auth_time      INTEGER NOT NULL DEFAULT 0,
		mfa_time       INTEGER NOT NULL DEFAULT 0,
		created_at     INTEGER NOT NULL,
		expires_at     INTEGER NOT NULL,
		used_at        INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);
	CREATE TABLE oauth_refresh_tokens (
		hash       BLOB PRIMARY KEY,
		family_id  TEXT NOT NULL,
		client_id  TEXT NOT NULL,
		subject    TEXT NOT NULL,
		scopes     TEXT NOT NULL DEFAULT '[]',
		resource   TEXT NOT NULL,
		auth_time  INTEGER NOT NULL DEFAULT 0,
		mfa_time   INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		used_at    INTEGER NOT NULL DEFAULT 0,
		revoked_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens (family_id);
	CREATE INDEX oauth_refresh_subject ON oauth_refresh_tokens (subject);
	CREATE INDEX oauth_refresh_expires ON oauth_refresh_tokens (expires_at);
	CREATE TABLE oauth_consents (
		user_name  TEXT NOT NULL,
		client_id  TEXT NOT NULL,
		scopes     TEXT NOT NULL DEFAULT '[]',
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (user_name, client_id)
	);
	CREATE TABLE oauth_signing_keys (
		id          TEXT PRIMARY KEY,
		algorithm   TEXT NOT NULL,
		private_key BLOB NOT NULL,
		created_at  INTEGER NOT NULL,
		retired_at  INTEGER NOT NULL DEFAULT 0
	);`,
	// API-key rotation with a grace period.
	`ALTER TABLE api_keys ADD COLUMN prev_hash BLOB;
	ALTER TABLE api_keys ADD COLUMN prev_expires_at INTEGER NOT NULL DEFAULT 0;`,
	// The encrypted secret store (envelope encryption by package secrets).
	`CREATE TABLE secrets (
		name          TEXT PRIMARY KEY,
		master_key_id TEXT NOT NULL,
		wrapped_key   BLOB NOT NULL,
		ciphertext    BLOB NOT NULL,
		created_at    INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL
	);`,
	// Pinned upstream tool definitions (gateway mode, package proxy).
	`CREATE TABLE tool_pins (
		upstream  TEXT NOT NULL,
		tool      TEXT NOT NULL,
		hash      TEXT NOT NULL,
		pinned_at INTEGER NOT NULL,
		PRIMARY KEY (upstream, tool)
	);
	CREATE TABLE upstream_status (
		name       TEXT PRIMARY KEY,
		status     TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);`,
	// The MCP session registry (store.SessionStore), and refresh tokens
	// bound to a client certificate (RFC 8705).
	`CREATE TABLE mcp_sessions (
		id         TEXT PRIMARY KEY,
		owner      TEXT NOT NULL,
		subject    TEXT NOT NULL,
		client_id  TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		last_seen  INTEGER NOT NULL,
		revoked_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX mcp_sessions_owner ON mcp_sessions (owner, created_at);
	CREATE INDEX mcp_sessions_subject ON mcp_sessions (subject);
	ALTER TABLE oauth_refresh_tokens ADD COLUMN cert_x5t TEXT NOT NULL DEFAULT '';`,
}

// Store is a store.Store on a SQLite file.
type Store struct {
	db *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite store at path and applies any
// pending migrations. The file is created with mode 0600 and its directory
// with 0700, because it holds credential hashes.
func Open(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create directory %s: %w", dir, err)
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("store: create %s: %w", path, err)
		}
		if f != nil {
			f.Close()
		}
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	for i, m := range migrations {
		version := i + 1
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return fmt.Errorf("migration %d: %w", version, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().UnixNano())
			return err
		}); err != nil {
			return err
		}
	}
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return err
	}
	if newest > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this mcpguard (%d): upgrade mcpguard", newest, len(migrations))
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// CreateAPIKey implements store.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO api_keys (`+codec.KeyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, codec.EncodeList(k.Roles), codec.EncodeList(k.Scopes),
		codec.UnixNano(k.CreatedAt), codec.UnixNano(k.ExpiresAt), codec.UnixNano(k.LastUsedAt), codec.UnixNano(k.RevokedAt), k.PreviousHash, codec.UnixNano(k.PreviousExpiresAt))
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return fmt.Errorf("store: api key %s: %w", k.ID, store.ErrExists)
		}
		return fmt.Errorf("store: create api key: %w", err)
	}
	return nil
}

// GetAPIKey implements store.Store.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := codec.ScanKey(s.db.QueryRowContext(ctx, `SELECT `+codec.KeyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: api key %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys implements store.Store.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+codec.KeyColumns+` FROM api_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	defer rows.Close()
	var keys []*store.APIKey
	for rows.Next() {
		k, err := codec.ScanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list api keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey implements store.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, codec.UnixNano(at), id)
	if err != nil {
		return fmt.Errorf("store: revoke api key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: revoke api key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("store: api key %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// RotateAPIKey implements store.Store.
func (s *Store) RotateAPIKey(ctx context.Context, id string, newHash []byte, graceUntil time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var revoked int64
		if err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM api_keys WHERE id = ?`, id).Scan(&revoked); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: api key %s: %w", id, store.ErrNotFound)
			}
			return fmt.Errorf("store: rotate api key: %w", err)
		}
		if revoked != 0 {
			return fmt.Errorf("store: api key %s is revoked and cannot be rotated", id)
		}
		var prev any // NULL: no grace
		if !graceUntil.IsZero() {
			prev = "hash"
		}
		_, err := tx.ExecContext(ctx, `UPDATE api_keys SET prev_hash = CASE WHEN ? IS NULL THEN NULL ELSE hash END, prev_expires_at = ?, hash = ? WHERE id = ?`,
			prev, codec.UnixNano(graceUntil), newHash, id)
		if err != nil {
			return fmt.Errorf("store: rotate api key: %w", err)
		}
		return nil
	})
}

// TouchAPIKeys implements store.Store.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ? AND last_used_at < ?`)
		if err != nil {
			return fmt.Errorf("store: touch api keys: %w", err)
		}
		defer stmt.Close()
		for id, t := range lastUsed {
			if _, err := stmt.ExecContext(ctx, codec.UnixNano(t), id, codec.UnixNano(t)); err != nil {
				return fmt.Errorf("store: touch api keys: %w", err)
			}
		}
		return nil
	})
}

// RevokeToken implements store.Store. Expired entries are purged on the way.
func (s *Store) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)
			ON CONFLICT(jti) DO UPDATE SET expires_at = CASE WHEN expires_at = 0 OR excluded.expires_at = 0 THEN 0 ELSE MAX(expires_at, excluded.expires_at) END`, jti, codec.UnixNano(expiresAt)); err != nil {
			return fmt.Errorf("store: revoke token: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_tokens WHERE expires_at != 0 AND expires_at < ?`, time.Now().Add(-24*time.Hour).UnixNano()); err != nil {
			return fmt.Errorf("store: purge revoked tokens: %w", err)
		}
		return nil
	})
}

// TokenRevoked implements store.Store.
func (s *Store) TokenRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM revoked_tokens WHERE jti = ?`, jti).Scan(&n); err != nil {
		return false, fmt.Errorf("store: token revoked: %w", err)
	}
	return n > 0, nil
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, recs []guard.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if len(recs) > store.MaxAuditBatch {
		return fmt.Errorf("store: append audit: batch of %d records exceeds %d", len(recs), store.MaxAuditBatch)
	}
	// Encode before the transaction, so that a bad record fails the batch
	// without holding the write lock.
	encoded := make([][]byte, len(recs))
	for i := range recs {
		r := &recs[i]
		if err := store.ValidateAuditRecord(r); err != nil {
			return fmt.Errorf("store: append audit record %d: %w", i, err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("store: append audit record %d: %w: %w", i, store.ErrInvalidRecord, err)
		}
		if len(b) > store.MaxAuditRecordBytes {
			return fmt.Errorf("store: append audit record %d: %w: %d bytes encoded exceeds %d", i, store.ErrInvalidRecord, len(b), store.MaxAuditRecordBytes)
		}
		encoded[i] = b
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_records (ts, decision, subject, method, target, record) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("store: append audit: %w", err)
		}
		defer stmt.Close()
		for i := range recs {
			r := &recs[i]
			if _, err := stmt.ExecContext(ctx, r.Time.UnixNano(), string(r.Decision), r.Subject, r.Method, r.Target, string(encoded[i])); err != nil {
				return fmt.Errorf("store: append audit record %d: %w", i, err)
			}
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
	if !q.Since.IsZero() {
		where, args = append(where, "ts >= ?"), append(args, q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		where, args = append(where, "ts < ?"), append(args, q.Until.UnixNano())
	}
	if q.Decision != "" {
		where, args = append(where, "decision = ?"), append(args, string(q.NormalizedDecision()))
	}
	if q.User != "" {
		where, args = append(where, "subject = ?"), append(args, q.User)
	}
	if q.Tool != "" {
		where, args = append(where, "target = ? AND method IN ('tools/call', '')"), append(args, q.Tool)
	}
	query := `SELECT record FROM audit_records`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY ts DESC, seq DESC LIMIT ?`
	limit := q.EffectiveLimit()
	args = append(args, limit)

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: query audit: %w", err)
	}
	defer rows.Close()
	recs := make([]guard.Record, 0, min(limit, 256))
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("store: query audit: %w", err)
		}
		var r guard.Record
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("store: query audit: corrupt record: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: query audit: %w", err)
	}
	return recs, nil
}
