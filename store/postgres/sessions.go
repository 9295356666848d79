package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

var _ store.SessionStore = (*Store)(nil)

// CreateSession implements store.SessionStore. The owner's live sessions
// are locked while the oldest beyond maxPerOwner are ended, so that two
// replicas creating sessions for one owner at once cannot both keep theirs
// past the cap.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session, maxPerOwner int) ([]string, error) {
	var evicted []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if maxPerOwner > 0 {
			// Serialize session creation per owner.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "mcp_sessions:"+sess.Owner); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO mcp_sessions (`+codec.SessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)`,
			sess.ID, sess.Owner, sess.Subject, sess.ClientID, codec.UnixNano(sess.CreatedAt), codec.UnixNano(sess.ExpiresAt), codec.UnixNano(sess.LastSeen))
		if isUnique(err) {
			return fmt.Errorf("session: %w", store.ErrExists)
		}
		if err != nil || maxPerOwner <= 0 {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM mcp_sessions WHERE owner = $1 AND revoked_at = 0 AND expires_at > $2
			ORDER BY created_at DESC, seq DESC OFFSET $3`, sess.Owner, codec.UnixNano(sess.CreatedAt), maxPerOwner)
		if err != nil {
			return err
		}
		evicted, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(evicted) == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE mcp_sessions SET revoked_at = $1 WHERE id = ANY($2)`, codec.UnixNano(sess.CreatedAt), evicted)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: create session: %w", err)
	}
	return evicted, nil
}

// GetSession implements store.SessionStore.
func (s *Store) GetSession(ctx context.Context, id string) (*store.Session, error) {
	sess, err := codec.ScanSession(s.pool.QueryRow(ctx, `SELECT `+codec.SessionColumns+` FROM mcp_sessions WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "get session")
	}
	return sess, nil
}

// TouchSession implements store.SessionStore.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE mcp_sessions SET last_seen = GREATEST(last_seen, $1) WHERE id = $2`, codec.UnixNano(at), id)
	return affected(tag, err, "touch session")
}

// ListSessions implements store.SessionStore.
func (s *Store) ListSessions(ctx context.Context, subject string, now time.Time) ([]*store.Session, error) {
	q := `SELECT ` + codec.SessionColumns + ` FROM mcp_sessions WHERE revoked_at = 0 AND expires_at > $1`
	args := []any{codec.UnixNano(now)}
	if subject != "" {
		q += ` AND subject = $2`
		args = append(args, subject)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY created_at DESC, seq DESC`, args...)
	return collect(rows, err, "list sessions", codec.ScanSession)
}

// RevokeSession implements store.SessionStore.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE mcp_sessions SET revoked_at = CASE WHEN revoked_at = 0 THEN $1 ELSE revoked_at END WHERE id = $2`, codec.UnixNano(at), id)
	return affected(tag, err, "revoke session")
}

// RevokeSessions implements store.SessionStore.
func (s *Store) RevokeSessions(ctx context.Context, subject string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE mcp_sessions SET revoked_at = $1 WHERE subject = $2 AND revoked_at = 0 AND expires_at > $1`, codec.UnixNano(at), subject)
	if err != nil {
		return 0, fmt.Errorf("store: revoke sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeSessions implements store.SessionStore.
func (s *Store) PurgeSessions(ctx context.Context, cutoff time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM mcp_sessions WHERE (revoked_at != 0 AND revoked_at < $1) OR expires_at < $1`, codec.UnixNano(cutoff))
	if err != nil {
		return 0, fmt.Errorf("store: purge sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
