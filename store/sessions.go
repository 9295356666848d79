package store

import (
	"context"
	"time"
)

// Session is an MCP session (Mcp-Session-Id) bound to the principal that
// opened it. Sessions never authenticate: every request is authenticated
// on its own, and the session is only used when the authenticated
// principal is its Owner.
type Session struct {
	// ID is the Mcp-Session-Id value: random, visible ASCII.
	ID string
	// Owner is the binding: the principal's id and OAuth client, as
	// guard.SessionOwner computes it.
	Owner string
	// Subject is the owner's subject, for listing and revoking by user.
	Subject string
	// ClientID is the OAuth client the session was opened with, if any.
	ClientID string
	// CreatedAt is when the session was opened; ExpiresAt is its absolute
	// end; LastSeen is when it last served a request.
	CreatedAt, ExpiresAt, LastSeen time.Time
	// RevokedAt is when the session was terminated (DELETE, revocation,
	// eviction); zero while it is live.
	RevokedAt time.Time
}

// Live reports whether the session is usable at now with the given
// inactivity timeout (zero: none).
func (s *Session) Live(now time.Time, idle time.Duration) bool {
	if !s.RevokedAt.IsZero() || !now.Before(s.ExpiresAt) {
		return false
	}
	return idle <= 0 || now.Sub(s.LastSeen) < idle
}

// SessionStore is the registry of MCP sessions, shared by every replica
// that uses the same store.
type SessionStore interface {
	// CreateSession stores s (ErrExists if its ID is taken) and, in the
	// same transaction, revokes the oldest live sessions of s.Owner beyond
	// maxPerOwner (zero: no cap), returning their IDs.
	CreateSession(ctx context.Context, s *Session, maxPerOwner int) (evicted []string, err error)
	// GetSession returns the session with id, revoked or not, or
	// ErrNotFound.
	GetSession(ctx context.Context, id string) (*Session, error)
	// TouchSession sets the session's LastSeen to at (a time older than
	// the stored one is ignored); ErrNotFound if absent.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// ListSessions returns the sessions not revoked and not past
	// ExpiresAt at now, newest first; subject "" means everyone's.
	ListSessions(ctx context.Context, subject string, now time.Time) ([]*Session, error)
	// RevokeSession terminates one session at time at (the first
	// revocation time is kept); ErrNotFound if absent.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeSessions terminates every live session of subject, returning
	// how many.
	RevokeSessions(ctx context.Context, subject string, at time.Time) (int, error)
	// PurgeSessions deletes sessions that ended (expired or revoked)
	// before cutoff, returning how many.
	PurgeSessions(ctx context.Context, cutoff time.Time) (int, error)
}
