package ratelimit

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustLockout(t testing.TB, cfg LockoutConfig) *MemoryLockout {
	t.Helper()
	m, err := NewLockout(cfg)
	if err != nil {
		t.Fatalf("NewLockout: %v", err)
	}
	return m
}

func TestNewLockoutValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     LockoutConfig
		wantErr string
	}{
		{"defaults", LockoutConfig{}, ""},
		{"negative failures", LockoutConfig{MaxFailures: -1}, "max failures"},
		{"too many failures", LockoutConfig{MaxFailures: MaxMaxFailures + 1}, "max failures"},
		{"negative window", LockoutConfig{Window: -time.Second}, "window"},
		{"negative duration", LockoutConfig{Duration: -time.Second}, "duration"},
		{"negative entries", LockoutConfig{MaxEntries: -5}, "max entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewLockout(tt.cfg)
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type step struct {
		advance    time.Duration
		failure    bool // Failure; otherwise Locked
		wantLocked bool
		wantLeft   time.Duration
	}
	fail := func(adv time.Duration) step { return step{advance: adv, failure: true} }
	tests := []struct {
		name  string
		cfg   LockoutConfig
		steps []step
	}{
		{
			name: "defaults: 10 failures lock for 5m",
			cfg:  LockoutConfig{},
			steps: []step{
				fail(0), fail(0), fail(0), fail(0), fail(0), fail(0), fail(0), fail(0), fail(0),
				{wantLocked: false},
				{failure: true, wantLocked: true, wantLeft: 5 * time.Minute},
				{advance: time.Minute, wantLocked: true, wantLeft: 4 * time.Minute},
				{advance: 4*time.Minute - time.Nanosecond, wantLocked: true, wantLeft: time.Nanosecond},
				{advance: time.Nanosecond, wantLocked: false},
			},
		},
		{
			name: "failures spread beyond the window never lock",
			cfg:  LockoutConfig{MaxFailures: 3, Window: time.Minute},
			steps: []step{
				fail(0), fail(40 * time.Second), fail(40 * time.Second), fail(40 * time.Second), fail(40 * time.Second),
				{wantLocked: false},
			},
		},
		{
			name: "sliding window: the last MaxFailures count",
			cfg:  LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: time.Hour},
			steps: []step{
				fail(0), fail(50 * time.Second), fail(20 * time.Second), // span 70s: not locked
				{advance: 10 * time.Second, failure: true, wantLocked: true, wantLeft: time.Hour}, // last 3 span 30s
			},
		},
		{
			name: "failures while locked do not extend",
			cfg:  LockoutConfig{MaxFailures: 2, Window: time.Minute, Duration: 10 * time.Minute},
			steps: []step{
				fail(0),
				{failure: true, wantLocked: true, wantLeft: 10 * time.Minute},
				{advance: 3 * time.Minute, failure: true, wantLocked: true, wantLeft: 7 * time.Minute},
				{advance: time.Minute, failure: true, wantLocked: true, wantLeft: 6 * time.Minute},
				{advance: 6 * time.Minute, wantLocked: false},
				// A clean history after the lock: one failure does not
				// re-lock, two do.
				fail(0),
				{wantLocked: false},
				{failure: true, wantLocked: true, wantLeft: 10 * time.Minute},
			},
		},
		{
			name: "one failure allowed",
			cfg:  LockoutConfig{MaxFailures: 1, Duration: time.Second},
			steps: []step{
				{failure: true, wantLocked: true, wantLeft: time.Second},
				{advance: time.Second, wantLocked: false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			tt.cfg.Now = clk.Now
			m := mustLockout(t, tt.cfg)
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				var (
					left   time.Duration
					locked bool
				)
				if s.failure {
					left, locked = m.Failure(ctx, "10.0.0.1")
				} else {
					left, locked = m.Locked(ctx, "10.0.0.1")
				}
				// Plain failures (fail()) only check that nothing locked.
				if locked != s.wantLocked || left != s.wantLeft {
					t.Fatalf("step %d (%+v): got (%v, %v), want (%v, %v)", i, s, left, locked, s.wantLeft, s.wantLocked)
				}
			}
			if _, locked := m.Locked(ctx, "10.0.0.2"); locked {
				t.Error("an unrelated source is locked")
			}
		})
	}
}

func TestLockoutBoundedEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := mustLockout(t, LockoutConfig{MaxEntries: 1000, Now: newClock().Now})
	for i := range 10_000 {
		m.Failure(ctx, "192.0.2."+strconv.Itoa(i))
		if _, locked := m.Locked(ctx, "unknown-"+strconv.Itoa(i)); locked {
			t.Fatal("unknown source locked")
		}
	}
	if n := m.Len(); n > 1000 || n < 900 {
		t.Fatalf("Len = %d, want between 900 and 1000", n)
	}
	// Locked must not create entries.
	m2 := mustLockout(t, LockoutConfig{})
	for i := range 100 {
		m2.Locked(ctx, strconv.Itoa(i))
	}
	if n := m2.Len(); n != 0 {
		t.Fatalf("Locked created %d entries", n)
	}
	// Oversized source keys are stored as digests, and still work.
	huge := strings.Repeat("a", 1<<20)
	for range DefaultMaxFailures {
		m2.Failure(ctx, huge)
	}
	if _, locked := m2.Locked(ctx, huge); !locked {
		t.Fatal("huge source not locked")
	}
	if _, locked := m2.Locked(ctx, huge[:len(huge)-1]); locked {
		t.Fatal("a different huge source is locked")
	}
}

// TestLockoutEvictionKeepsLocked checks that eviction pressure from idle
// sources does not free a locked source.
func TestLockoutEvictionKeepsLocked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	m := mustLockout(t, LockoutConfig{MaxEntries: 16, MaxFailures: 1, Window: time.Second, Duration: time.Hour, Now: clk.Now})
	m.Failure(ctx, "attacker")
	for i := range 500 {
		m.Failure(ctx, "noise"+strconv.Itoa(i)) // each locks its source for an hour
	}
	// With every entry locked, none is harmless to evict: eviction falls
	// back to LRU order and the table stays bounded.
	if n := m.Len(); n > 16 {
		t.Fatalf("Len = %d, want ≤ 16", n)
	}

	// Now the preference: lock the attacker, then flood with sources whose
	// single failures fall outside the window by the time they are evicted.
	clk2 := newClock()
	m2 := mustLockout(t, LockoutConfig{MaxEntries: 16, MaxFailures: 3, Window: time.Second, Duration: time.Hour, Now: clk2.Now})
	for range 3 {
		m2.Failure(ctx, "attacker")
	}
	for i := range 500 {
		m2.Failure(ctx, "noise"+strconv.Itoa(i))
		clk2.Advance(2 * time.Second)
	}
	if _, locked := m2.Locked(ctx, "attacker"); !locked {
		t.Fatal("locked source evicted while idle sources were available")
	}
}

// TestLockoutConcurrent checks that concurrent failures from one source lock
// it after exactly MaxFailures.
func TestLockoutConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := mustLockout(t, LockoutConfig{MaxFailures: 10, Now: newClock().Now})
	var (
		unlocked atomic.Int64
		wg       sync.WaitGroup
	)
	for range 200 {
		wg.Go(func() {
			if _, locked := m.Failure(ctx, "src"); !locked {
				unlocked.Add(1)
			}
		})
	}
	wg.Wait()
	if got := unlocked.Load(); got != 9 {
		t.Fatalf("%d failures returned unlocked, want exactly 9", got)
	}
}

func BenchmarkLockoutLocked(b *testing.B) {
	ctx := context.Background()
	m := mustLockout(b, LockoutConfig{})
	for i := range 1000 {
		m.Failure(ctx, "198.51.100."+strconv.Itoa(i))
	}
	b.Run("known", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Locked(ctx, "198.51.100.7")
		}
	})
	b.Run("unknown", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Locked(ctx, "203.0.113.9")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		srcs := make([]string, 1024)
		for i := range srcs {
			srcs[i] = "198.51.100." + strconv.Itoa(i)
		}
		var seq atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := seq.Add(7919)
			for pb.Next() {
				i++
				m.Locked(ctx, srcs[i%uint64(len(srcs))])
			}
		})
	})
}
