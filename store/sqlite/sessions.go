package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/store"
)

var _ store.SessionStore = (*Store)(nil)

const sessionColumns = `id, owner, subject, client_id, created_at, expires_at, last_seen, revoked_at`

func scanSession(row scanner) (*store.Session, error) {
	var s store.Session
	var created, expires, seen, revoked int64
	if err := row.Scan(&s.ID, &s.Owner, &s.Subject, &s.ClientID, &created, &expires, &seen, &revoked); err != nil {
		return nil, err
	}
	s.CreatedAt, s.ExpiresAt, s.LastSeen, s.RevokedAt = fromUnixNano(created), fromUnixNano(expires), fromUnixNano(seen), fromUnixNano(revoked)
	return &s, nil
}

// CreateSession implements store.SessionStore.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session, maxPerOwner int) ([]string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: create session: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO mcp_sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0)`,
		sess.ID, sess.Owner, sess.Subject, sess.ClientID, unixNano(sess.CreatedAt), unixNano(sess.ExpiresAt), unixNano(sess.LastSeen))
	if isUnique(err) {
		return nil, fmt.Errorf("store: session: %w", store.ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("store: create session: %w", err)
	}
	var evicted []string
	if maxPerOwner > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM mcp_sessions WHERE owner = ? AND revoked_at = 0 AND expires_at > ?
			ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?`, sess.Owner, unixNano(sess.CreatedAt), maxPerOwner)
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
			if _, err := tx.ExecContext(ctx, `UPDATE mcp_sessions SET revoked_at = ? WHERE id = ?`, unixNano(sess.CreatedAt), id); err != nil {
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
	sess, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM mcp_sessions WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "get session")
	}
	return sess, nil
}

// TouchSession implements store.SessionStore.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE mcp_sessions SET last_seen = MAX(last_seen, ?) WHERE id = ?`, unixNano(at), id)
	return affected(res, err, "touch session")
}

// ListSessions implements store.SessionStore.
func (s *Store) ListSessions(ctx context.Context, subject string, now time.Time) ([]*store.Session, error) {
	q := `SELECT ` + sessionColumns + ` FROM mcp_sessions WHERE revoked_at = 0 AND expires_at > ?`
	args := []any{unixNano(now)}
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
		sess, err := scanSession(rows)
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
	res, err := s.db.ExecContext(ctx, `UPDATE mcp_sessions SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, unixNano(at), id)
	return affected(res, err, "revoke session")
}

// RevokeSessions implements store.SessionStore.
func (s *Store) RevokeSessions(ctx context.Context, subject string, at time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE mcp_sessions SET revoked_at = ? WHERE subject = ? AND revoked_at = 0 AND expires_at > ?`, unixNano(at), subject, unixNano(at))
	if err != nil {
		return 0, fmt.Errorf("store: revoke sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PurgeSessions implements store.SessionStore.
func (s *Store) PurgeSessions(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM mcp_sessions WHERE (revoked_at != 0 AND revoked_at < ?) OR expires_at < ?`, unixNano(cutoff), unixNano(cutoff))
	if err != nil {
		return 0, fmt.Errorf("store: purge sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
