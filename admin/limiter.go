package admin

import (
	"context"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// Default sign-in throttling: after loginMaxFailures failures within
// loginWindow, a source is locked out for loginLockout.
const (
	loginMaxFailures = 5
	loginWindow      = 15 * time.Minute
	loginLockout     = 15 * time.Minute
	// loginMaxSources bounds the sources tracked at once.
	loginMaxSources = 10_000
)

// loginLimiter is the default [guard.Lockout] for sign-in: an in-memory,
// bounded count of failures per source.
type loginLimiter struct {
	now         func() time.Time
	maxFailures int
	window      time.Duration
	lockout     time.Duration
	maxSources  int

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	count       int
	first       time.Time // start of the counting window
	lockedUntil time.Time
}

var _ guard.Lockout = (*loginLimiter)(nil)

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{
		now: now, maxFailures: loginMaxFailures, window: loginWindow, lockout: loginLockout,
		maxSources: loginMaxSources, sources: make(map[string]*failures),
	}
}

// Locked implements guard.Lockout.
func (l *loginLimiter) Locked(_ context.Context, source string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[source]
	if f == nil || !now.Before(f.lockedUntil) {
		return 0, false
	}
	return f.lockedUntil.Sub(now), true
}

// Failure implements guard.Lockout.
func (l *loginLimiter) Failure(_ context.Context, source string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[source]
	if f == nil {
		l.makeRoom(now)
		f = &failures{first: now}
		l.sources[source] = f
	}
	if now.Sub(f.first) >= l.window && !now.Before(f.lockedUntil) {
		*f = failures{first: now}
	}
	f.count++
	if f.count >= l.maxFailures {
		f.lockedUntil = now.Add(l.lockout)
		return l.lockout, true
	}
	return 0, false
}

// makeRoom drops stale entries when the table is full and, if it is still
// full, the entry whose window started first. l.mu is held.
func (l *loginLimiter) makeRoom(now time.Time) {
	if len(l.sources) < l.maxSources {
		return
	}
	var oldest string
	var oldestAt time.Time
	for src, f := range l.sources {
		if now.Sub(f.first) >= l.window && !now.Before(f.lockedUntil) {
			delete(l.sources, src)
			continue
		}
		if oldest == "" || f.first.Before(oldestAt) {
			oldest, oldestAt = src, f.first
		}
	}
	if len(l.sources) >= l.maxSources {
		delete(l.sources, oldest)
	}
}
