package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// Lockout defaults.
const (
	DefaultMaxFailures     = 10
	DefaultLockoutWindow   = time.Minute
	DefaultLockoutDuration = 5 * time.Minute
	// MaxMaxFailures bounds LockoutConfig.MaxFailures, which sizes the
	// per-source failure history.
	MaxMaxFailures = 1000
)

// LockoutConfig configures a [MemoryLockout].
type LockoutConfig struct {
	// MaxFailures is how many failures within Window lock a source out;
	// zero means DefaultMaxFailures.
	MaxFailures int
	// Window is the sliding window failures are counted in; zero means
	// DefaultLockoutWindow.
	Window time.Duration
	// Duration is how long a source stays locked out; zero means
	// DefaultLockoutDuration.
	Duration time.Duration
	// MaxEntries bounds the number of sources tracked; zero means
	// DefaultMaxEntries. When full, a new source replaces a least recently
	// used one, preferring one that is neither locked nor has failures
	// within the window.
	MaxEntries int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// MemoryLockout is an in-memory [guard.Lockout]. It is safe for concurrent
// use.
//
// A source that fails MaxFailures times within Window is locked out for
// Duration, counted from the failure that locked it. Failures reported while
// a source is locked neither count nor extend the lockout: the lock ends
// Duration after it began, and the source then starts again with a clean
// history (the failures that caused the lock are forgotten). Because the
// pipeline checks Locked before authenticating, a locked source normally
// cannot produce failures at all.
//
// Successful authentication does not reset a source's failures (there is no
// method to do so), so a caller holding one valid credential cannot erase the
// record of its guesses by interleaving successful requests.
type MemoryLockout struct {
	maxFailures int
	window      time.Duration
	duration    time.Duration
	now         func() time.Time
	sources     *table[*source]
}

var _ guard.Lockout = (*MemoryLockout)(nil)

// source is the failure history of one source.
type source struct {
	// failures is a ring of the most recent failure times, oldest at next
	// once count == len(failures).
	failures    []time.Time
	next, count int
	lockedUntil time.Time
}

// NewLockout returns a lockout enforcing cfg.
func NewLockout(cfg LockoutConfig) (*MemoryLockout, error) {
	switch {
	case cfg.MaxFailures < 0 || cfg.MaxFailures > MaxMaxFailures:
		return nil, fmt.Errorf("ratelimit: lockout max failures must be between 1 and %d, got %d", MaxMaxFailures, cfg.MaxFailures)
	case cfg.Window < 0:
		return nil, fmt.Errorf("ratelimit: lockout window must not be negative, got %v", cfg.Window)
	case cfg.Duration < 0:
		return nil, fmt.Errorf("ratelimit: lockout duration must not be negative, got %v", cfg.Duration)
	case cfg.MaxEntries < 0:
		return nil, fmt.Errorf("ratelimit: lockout max entries must not be negative, got %d", cfg.MaxEntries)
	}
	m := &MemoryLockout{
		maxFailures: cmpOr(cfg.MaxFailures, DefaultMaxFailures),
		window:      cmpOr(cfg.Window, DefaultLockoutWindow),
		duration:    cmpOr(cfg.Duration, DefaultLockoutDuration),
		now:         cfg.Now,
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.sources = newTable(cmpOr(cfg.MaxEntries, DefaultMaxEntries), func(s *source) bool {
		return m.idle(s, m.now())
	})
	return m, nil
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// idle reports whether s is indistinguishable from an unknown source at now:
// not locked and without failures inside the window.
func (m *MemoryLockout) idle(s *source, now time.Time) bool {
	if now.Before(s.lockedUntil) || s.count == 0 {
		return !now.Before(s.lockedUntil)
	}
	newest := s.failures[(s.next+len(s.failures)-1)%len(s.failures)]
	return now.Sub(newest) >= m.window
}

// sourceKey returns the table key for src.
func sourceKey(buf []byte, src string) []byte {
	return boundKey(append(append(buf, 's'), src...))
}

// Locked reports whether source is locked out and, if so, for how much
// longer. It never allocates memory for an unknown source.
func (m *MemoryLockout) Locked(_ context.Context, src string) (time.Duration, bool) {
	var buf [keyBuf]byte
	key := sourceKey(buf[:0], src)
	sh := &m.sources.shards[m.sources.index(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n, ok := sh.get(key)
	if !ok {
		return 0, false
	}
	if left := n.Value.val.lockedUntil.Sub(m.now()); left > 0 {
		return left, true
	}
	return 0, false
}

// Failure records one failed authentication from source and reports whether
// source is now locked out and for how long.
func (m *MemoryLockout) Failure(_ context.Context, src string) (time.Duration, bool) {
	var buf [keyBuf]byte
	key := sourceKey(buf[:0], src)
	sh := &m.sources.shards[m.sources.index(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := m.now()
	var s *source
	if n, ok := sh.get(key); ok {
		s = n.Value.val
	} else {
		s = &source{failures: make([]time.Time, m.maxFailures)}
		sh.add(string(key), s)
	}
	if left := s.lockedUntil.Sub(now); left > 0 {
		return left, true // locked: neither counted nor extended
	}
	s.failures[s.next] = now
	s.next = (s.next + 1) % len(s.failures)
	if s.count < len(s.failures) {
		s.count++
	}
	if s.count < len(s.failures) {
		return 0, false
	}
	// The history is full: s.next is the oldest of the last maxFailures.
	if oldest := s.failures[s.next]; now.Sub(oldest) < m.window {
		s.lockedUntil = now.Add(m.duration)
		s.count, s.next = 0, 0
		return m.duration, true
	}
	return 0, false
}

// Len returns the number of sources currently tracked.
func (m *MemoryLockout) Len() int { return m.sources.len() }
