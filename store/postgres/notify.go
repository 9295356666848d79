package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// RevocationChannel is the PostgreSQL NOTIFY channel on which every
// revocation (API key revoked or rotated, token revoked, refresh tokens
// revoked) is announced, in the revoking transaction: listeners hear of it
// exactly when it is committed, whichever process made it (a replica, or
// `mcpguard keys revoke`).
const RevocationChannel = "mcpguard_revocations"

// notifyRevoked announces a revocation of kind ("key", "token",
// "refresh") within tx. The payload carries no identifier: listeners drop
// their caches whole.
func notifyRevoked(ctx context.Context, tx pgx.Tx, kind string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, RevocationChannel, kind)
	return err
}

// watchRetry is how long WatchRevocations waits before reconnecting.
const watchRetry = 500 * time.Millisecond

// WatchRevocations calls onRevoke after every committed revocation until
// ctx is done. It holds one pooled connection LISTENing. When the
// connection is lost it reconnects and calls onRevoke once more, since
// revocations may have been missed meanwhile. onRevoke must be quick.
func (s *Store) WatchRevocations(ctx context.Context, onRevoke func()) {
	for ctx.Err() == nil {
		s.listen(ctx, onRevoke)
		select {
		case <-ctx.Done():
		case <-time.After(watchRetry):
		}
	}
}

func (s *Store) listen(ctx context.Context, onRevoke func()) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return
	}
	// The connection will be LISTENing: take it out of the pool for good.
	c := conn.Hijack()
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, `LISTEN `+RevocationChannel); err != nil {
		return
	}
	onRevoke() // whatever happened while not listening
	for {
		if _, err := c.WaitForNotification(ctx); err != nil {
			return
		}
		onRevoke()
	}
}
