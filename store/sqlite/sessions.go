package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

var _ store.SessionStore = (*Store)(nil)

// CreateSession implements store.SessionStore.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session, maxPerOwner int) ([]string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: create session: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO mcp_sessions (`+codec.SessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0)`,
		sess.ID, sess.Owner, sess.Subject, sess.ClientID, codec.UnixNano(sess.CreatedAt), codec.UnixNano(sess.ExpiresAt), codec.UnixNano(sess.LastSeen))
	if isUnique(err) {
		return nil, fmt.Errorf("store: session: %w", store.ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("store: create session: %w", err)
	}
	var evicted []string
	if maxPerOwner > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM mcp_sessions WHERE owner = ? AND revoked_at = 0 AND expires_at > ?
			ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?`, sess.Owner, codec.UnixNano(sess.CreatedAt), maxPerOwner)
		if err != nil {
			return nil, fmt.Errorf("store: create session: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: create session: %w", err)
			}
			evicted = append(evicted, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: create session: %w", err)
		}
		for _, id := range evicted {
			if _, err := tx.ExecContext(ctx, `UPDATE mcp_sessions SET revoked_at = ? WHERE id = ?`, codec.UnixNano(sess.CreatedAt), id); err != nil {
				return nil, fmt.Errorf("store: create session: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: create session: %w", err)
	}
	return evicted, nil
}

// GetSession implements store.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (*store.Session, error) {
	sess, err := codec.ScanSession(s.db.QueryRowContext(ctx, `SELECT `+codec.SessionColumns+` FROM mcp_sessions WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "get session")
	}
	return sess, nil
}

// TouchSession implements store.SessionStore.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE mcp_sessions SET last_seen = MAX(last_seen, ?) WHERE id = ?`, codec.UnixNano(at), id)
	return affected(res, err, "touch session")
}

// ListSessions implements store.SessionStore.
func (s *Store) ListSessions(ctx context.Context, subject string, now time.Time) ([]*store.Session, error) {
	q := `SELECT ` + codec.SessionColumns + ` FROM mcp_sessions WHERE revoked_at = 0 AND expires_at > ?`
	args := []any{codec.UnixNano(now)}
	if subject != "" {
		q += ` AND subject = ?`
		args = append(args, subject)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at DESC, rowid DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	defer rows.Close()
	var out []*store.Session
	for rows.Next() {
		sess, err := codec.ScanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list sessions: %w", err)
		}
		out = append(out, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	return out, nil
}

// RevokeSession implements store.SessionStore.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE mcp_sessions SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, codec.UnixNano(at), id)
	return affected(res, err, "revoke session")
}

// RevokeSessions implements store.SessionStore.
func (s *Store) RevokeSessions(ctx context.Context, subject string, at time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE mcp_sessions SET revoked_at = ? WHERE subject = ? AND revoked_at = 0 AND expires_at > ?`, codec.UnixNano(at), subject, codec.UnixNano(at))
	if err != nil {
		return 0, fmt.Errorf("store: revoke sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PurgeSessions implements store.SessionStore.
func (s *Store) PurgeSessions(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM mcp_sessions WHERE (revoked_at != 0 AND revoked_at < ?) OR expires_at < ?`, codec.UnixNano(cutoff), codec.UnixNano(cutoff))
	if err != nil {
		return 0, fmt.Errorf("store: purge sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
