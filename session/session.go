// Package session is mcpguard's registry of MCP sessions: the binding of
// each Mcp-Session-Id to the principal that opened it, and the session
// policy (absolute lifetime, inactivity timeout, sessions per principal).
//
// The registry is stored, not sealed into the session id: it lives in the
// store (store.SessionStore), so that every replica sharing the store sees
// the same bindings, and a revocation (`mcpguard sessions revoke`) takes
// effect on the next request wherever it arrives. A sealed id could not be
// revoked before it expired.
package session

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// Policy is the session policy.
type Policy struct {
	// TTL is a session's absolute lifetime, however active.
	TTL time.Duration
	// Idle ends a session that served no request for this long; zero
	// means never.
	Idle time.Duration
	// MaxPerPrincipal caps one owner's live sessions; opening one more
	// evicts the oldest. Zero means no cap.
	MaxPerPrincipal int
}

// Registry implements guard.SessionRegistry on a store.SessionStore.
type Registry struct {
	store  store.SessionStore
	policy Policy
	now    func() time.Time
	// touchEvery bounds the writes recording use: LastSeen is rewritten
	// only when it is older than this.
	touchEvery time.Duration
}

var _ guard.SessionRegistry = (*Registry)(nil)

// New returns a Registry. now may be nil (time.Now).
func New(st store.SessionStore, p Policy, now func() time.Time) (*Registry, error) {
	if p.TTL <= 0 {
		return nil, errors.New("session: the absolute lifetime must be positive")
	}
	if now == nil {
		now = time.Now
	}
	every := time.Second
	if p.Idle > 0 && p.Idle/20 < every {
		every = p.Idle / 20
	}
	return &Registry{store: st, policy: p, now: now, touchEvery: every}, nil
}

// Open implements guard.SessionRegistry.
func (r *Registry) Open(ctx context.Context, id string, p *guard.Principal) error {
	now := r.now()
	_, err := r.store.CreateSession(ctx, &store.Session{
		ID: id, Owner: guard.SessionOwner(p), Subject: p.Subject, ClientID: p.ClientID,
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(r.policy.TTL),
	}, r.policy.MaxPerPrincipal)
	if err != nil {
		return fmt.Errorf("session: open: %w", err)
	}
	return nil
}

// Use implements guard.SessionRegistry.
func (r *Registry) Use(ctx context.Context, id, owner string) error {
	s, err := r.store.GetSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return guard.ErrSessionNotFound
	}
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	now := r.now()
	if !s.Live(now, r.policy.Idle) {
		return guard.ErrSessionNotFound
	}
	if subtle.ConstantTimeCompare([]byte(s.Owner), []byte(owner)) != 1 {
		return guard.ErrSessionOwner
	}
	if now.Sub(s.LastSeen) >= r.touchEvery {
		if err := r.store.TouchSession(ctx, id, now); err != nil {
			return fmt.Errorf("session: %w", err)
		}
	}
	return nil
}

// Close implements guard.SessionRegistry.
func (r *Registry) Close(ctx context.Context, id string) error {
	if err := r.store.RevokeSession(ctx, id, r.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("session: close: %w", err)
	}
	return nil
}

// Ended implements guard.SessionRegistry.
func (r *Registry) Ended(ctx context.Context, ids []string) ([]string, error) {
	now := r.now()
	var ended []string
	for _, id := range ids {
		s, err := r.store.GetSession(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			ended = append(ended, id)
		case err != nil:
			return nil, fmt.Errorf("session: %w", err)
		case !s.Live(now, r.policy.Idle):
			ended = append(ended, id)
		}
	}
	return ended, nil
}
