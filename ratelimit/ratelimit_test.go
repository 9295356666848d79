package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/clocktest"
)

func newClock() *clocktest.Clock { return clocktest.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) }

// checkErr fails t unless err is nil when want is empty, or an error
// containing want otherwise.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

func principal(name string) *guard.Principal {
	return &guard.Principal{Subject: name, Issuer: "mcpguard", Method: guard.MethodAPIKey, KeyID: "key-" + name}
}

func mustNew(t testing.TB, cfg Config) *Local {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

func limit(t testing.TB, l *Local, p *guard.Principal, tool string) guard.LimitResult {
	t.Helper()
	res, err := l.Limit(context.Background(), p, tool)
	if err != nil {
		t.Fatalf("Limit: %v", err)
	}
	return res
}

// drain makes requests until one is refused and returns how many passed.
func drain(t testing.TB, l *Local, p *guard.Principal, tool string) int {
	t.Helper()
	for i := 0; i < 10_000; i++ {
		if !limit(t, l, p, tool).Allowed {
			return i
		}
	}
	t.Fatal("bucket never refused")
	return 0
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero config", Config{}, ""},
		{"valid", Config{Identity: Rule{Requests: 10, Per: time.Second}, Tools: map[string]Rule{"*": {Requests: 1, Per: time.Minute, Burst: 3}}}, ""},
		{"negative requests", Config{Identity: Rule{Requests: -1, Per: time.Second}}, "identity rule: requests"},
		{"missing per", Config{Key: Rule{Requests: 5}}, "key rule: per"},
		{"negative burst", Config{Identity: Rule{Requests: 1, Per: time.Second, Burst: -2}}, "burst"},
		{"burst without requests", Config{Identity: Rule{Burst: 5}}, "requests must be positive"},
		{"empty tool name", Config{Tools: map[string]Rule{"": {Requests: 1, Per: time.Second}}}, "empty tool name"},
		{"bad tool rule", Config{Tools: map[string]Rule{"x": {Requests: 1}}}, `tool "x" rule`},
		{"negative max entries", Config{MaxEntries: -1}, "max entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg)
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestLimitErrors(t *testing.T) {
	t.Parallel()
	l := mustNew(t, Config{Identity: Rule{Requests: 1, Per: time.Second}})
	if _, err := l.Limit(context.Background(), nil, ""); err == nil {
		t.Error("nil principal: want error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Limit(ctx, principal("a"), ""); err == nil {
		t.Error("canceled context: want error")
	}
}

func TestLimitSingleBucket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		tool      string
		wantBurst int
		wantScope string
		wantRetry time.Duration
	}{
		{"identity burst defaults to requests", Config{Identity: Rule{Requests: 5, Per: time.Minute}}, "", 5, ScopeIdentity, 12 * time.Second},
		{"identity explicit burst", Config{Identity: Rule{Requests: 2, Per: time.Second, Burst: 7}}, "x", 7, ScopeIdentity, 500 * time.Millisecond},
		{"key", Config{Key: Rule{Requests: 3, Per: time.Hour}}, "", 3, ScopeKey, 20 * time.Minute},
		{"tool exact", Config{Tools: map[string]Rule{"t": {Requests: 4, Per: time.Second}}}, "t", 4, ScopeTool, 250 * time.Millisecond},
		{"tool wildcard", Config{Tools: map[string]Rule{"*": {Requests: 1, Per: 3 * time.Second}}}, "anything", 1, ScopeTool, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			tt.cfg.Now = clk.Now
			l := mustNew(t, tt.cfg)
			p := principal("alice")
			if got := drain(t, l, p, tt.tool); got != tt.wantBurst {
				t.Fatalf("allowed %d requests, want %d", got, tt.wantBurst)
			}
			res := limit(t, l, p, tt.tool)
			if res.Allowed || res.Scope != tt.wantScope || res.RetryAfter != tt.wantRetry {
				t.Fatalf("refusal = %+v, want scope %q retry %v", res, tt.wantScope, tt.wantRetry)
			}
			// Just before the token is back: still refused, with the rest of
			// the wait.
			clk.Advance(tt.wantRetry - time.Millisecond)
			if res := limit(t, l, p, tt.tool); res.Allowed || res.RetryAfter != time.Millisecond {
				t.Fatalf("1ms early: %+v, want refused with 1ms retry", res)
			}
			clk.Advance(time.Millisecond)
			if res := limit(t, l, p, tt.tool); !res.Allowed {
				t.Fatalf("after RetryAfter: %+v, want allowed", res)
			}
			if res := limit(t, l, p, tt.tool); res.Allowed {
				t.Fatal("second request after one refill: allowed, want refused")
			}
			// Another principal (with another key) has its own buckets.
			if res := limit(t, l, principal("bob"), tt.tool); !res.Allowed {
				t.Fatalf("other principal: %+v, want allowed", res)
			}
		})
	}
}

func TestLimitUnlimited(t *testing.T) {
	t.Parallel()
	l := mustNew(t, Config{Tools: map[string]Rule{"limited": {Requests: 1, Per: time.Hour}}})
	p := principal("a")
	for i := range 1000 {
		for _, tool := range []string{"", "other"} {
			if !limit(t, l, p, tool).Allowed {
				t.Fatalf("request %d tool %q refused by a limiter with no applicable rule", i, tool)
			}
		}
	}
	if n := l.Len(); n != 0 {
		t.Errorf("Len = %d, want 0 (no bucket for unlimited requests)", n)
	}
}

func TestLimitToolRules(t *testing.T) {
	t.Parallel()
	l := mustNew(t, Config{
		Now: newClock().Now,
		Tools: map[string]Rule{
			"*":      {Requests: 2, Per: time.Hour},
			"delete": {Requests: 1, Per: time.Hour},
			"free":   {}, // exempt from "*"
		},
	})
	p := principal("a")
	tests := []struct {
		tool string
		want int
	}{
		{"delete", 1},
		{"read", 2},
		{"write", 2}, // each tool under "*" has its own bucket
		{"free", 10_000},
		{"", 10_000}, // not a tool call: no tool bucket
	}
	for _, tt := range tests {
		got := 0
		for got < 10_000 && limit(t, l, p, tt.tool).Allowed {
			got++
		}
		if got != tt.want {
			t.Errorf("tool %q: %d allowed, want %d", tt.tool, got, tt.want)
		}
	}
}

func TestLimitKeySharedAcrossPrincipals(t *testing.T) {
	t.Parallel()
	l := mustNew(t, Config{Now: newClock().Now, Key: Rule{Requests: 3, Per: time.Hour}})
	a := &guard.Principal{Subject: "a", Method: guard.MethodAPIKey, KeyID: "shared"}
	b := &guard.Principal{Subject: "b", Method: guard.MethodAPIKey, KeyID: "shared"}
	jwt := &guard.Principal{Subject: "c", Method: guard.MethodJWT}
	for i, p := range []*guard.Principal{a, b, a} {
		if !limit(t, l, p, "").Allowed {
			t.Fatalf("request %d refused", i)
		}
	}
	if res := limit(t, l, b, ""); res.Allowed || res.Scope != ScopeKey {
		t.Fatalf("4th request on shared key: %+v, want refused by key", res)
	}
	for range 100 {
		if !limit(t, l, jwt, "").Allowed {
			t.Fatal("principal without a key id refused by the key rule")
		}
	}
}

// TestLimitAllOrNothing checks that a request refused by one bucket takes no
// token from the others.
func TestLimitAllOrNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		tool      string
		wantScope string
		// wantRetry is the longest wait among refusing buckets.
		wantRetry time.Duration
		clk       *clocktest.Clock
	}{
		{
			name:      "tool refuses, identity and key untouched",
			cfg:       Config{Identity: Rule{Requests: 5, Per: time.Hour}, Key: Rule{Requests: 5, Per: time.Hour}, Tools: map[string]Rule{"t": {Requests: 2, Per: time.Hour}}},
			tool:      "t",
			wantScope: ScopeTool,
			wantRetry: 30 * time.Minute,
		},
		{
			name:      "key refuses, identity and tool untouched",
			cfg:       Config{Identity: Rule{Requests: 5, Per: time.Hour}, Key: Rule{Requests: 2, Per: time.Minute}, Tools: map[string]Rule{"t": {Requests: 5, Per: time.Hour}}},
			tool:      "t",
			wantScope: ScopeKey,
			wantRetry: 30 * time.Second,
		},
		{
			name:      "identity refuses, tool untouched",
			cfg:       Config{Identity: Rule{Requests: 2, Per: time.Second}, Tools: map[string]Rule{"*": {Requests: 5, Per: time.Hour}}},
			tool:      "t",
			wantScope: ScopeIdentity,
			wantRetry: 500 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.clk = newClock()
			tt.cfg.Now = tt.clk.Now
			l := mustNew(t, tt.cfg)
			p := principal("a")
			if got := drain(t, l, p, tt.tool); got != 2 {
				t.Fatalf("allowed %d, want 2", got)
			}
			// Many more refused attempts must not drain the other buckets.
			for range 50 {
				res := limit(t, l, p, tt.tool)
				if res.Allowed || res.Scope != tt.wantScope || res.RetryAfter != tt.wantRetry {
					t.Fatalf("refusal = %+v, want scope %q retry %v", res, tt.wantScope, tt.wantRetry)
				}
			}
			// The buckets that did not refuse have lost exactly the 2
			// tokens of the allowed requests.
			switch tt.wantScope {
			case ScopeTool:
				// identity (5) and key (5): 3 tool-less requests remain.
				if got := drain(t, l, p, ""); got != 3 {
					t.Errorf("identity/key requests left: %d, want 3", got)
				}
			case ScopeKey:
				// Same identity without the key: identity (5) has 3 left.
				q := *p
				q.KeyID = ""
				if got := drain(t, l, &q, "u"); got != 3 {
					t.Errorf("identity requests left: %d, want 3", got)
				}
			case ScopeIdentity:
				// Refill the identity a second at a time (the tool bucket
				// gains nothing measurable) until the tool bucket refuses:
				// it had 3 tokens left.
				got := 0
				for range 10 {
					tt.clk.Advance(time.Second)
					res := limit(t, l, p, tt.tool)
					for ; res.Allowed; res = limit(t, l, p, tt.tool) {
						got++
					}
					if res.Scope == ScopeTool {
						break
					}
				}
				if got != 3 {
					t.Errorf("tool requests left: %d, want 3", got)
				}
			}
		})
	}
}

// TestLimitLongestRetry checks RetryAfter and Scope when several buckets
// refuse at once.
func TestLimitLongestRetry(t *testing.T) {
	t.Parallel()
	l := mustNew(t, Config{
		Now:      newClock().Now,
		Identity: Rule{Requests: 1, Per: time.Second},
		Key:      Rule{Requests: 1, Per: time.Minute},
		Tools:    map[string]Rule{"t": {Requests: 1, Per: 10 * time.Second}},
	})
	p := principal("a")
	if !limit(t, l, p, "t").Allowed {
		t.Fatal("first request refused")
	}
	res := limit(t, l, p, "t")
	if res.Allowed || res.Scope != ScopeKey || res.RetryAfter != time.Minute {
		t.Fatalf("got %+v, want refused by key for 1m", res)
	}
}

// TestLimitConcurrentExactBurst races many goroutines on one bucket: exactly
// burst of them may pass.
func TestLimitConcurrentExactBurst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cfg        Config
		tool       string
		goroutines int
		want       int
	}{
		{"identity", Config{Identity: Rule{Requests: 50, Per: time.Hour}}, "", 400, 50},
		{"key", Config{Key: Rule{Requests: 1, Per: time.Hour, Burst: 77}}, "", 300, 77},
		{"tool below identity", Config{Identity: Rule{Requests: 60, Per: time.Hour}, Tools: map[string]Rule{"t": {Requests: 25, Per: time.Hour}}}, "t", 400, 25},
		{"identity below tool", Config{Identity: Rule{Requests: 30, Per: time.Hour}, Tools: map[string]Rule{"*": {Requests: 90, Per: time.Hour}}}, "t", 400, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Now = newClock().Now // frozen: no refill during the race
			l := mustNew(t, tt.cfg)
			p := principal("racer")
			var (
				allowed atomic.Int64
				wg      sync.WaitGroup
				start   = make(chan struct{})
			)
			for range tt.goroutines {
				wg.Go(func() {
					<-start
					res, err := l.Limit(context.Background(), p, tt.tool)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						allowed.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			if got := allowed.Load(); got != int64(tt.want) {
				t.Fatalf("%d of %d concurrent requests allowed, want exactly %d", got, tt.goroutines, tt.want)
			}
		})
	}
}

// TestLimitConcurrentNoLeak checks that refused concurrent requests give back
// every token they tentatively needed: after a race in which the tool bucket
// refuses most requests, the identity bucket has lost exactly the tokens of
// the allowed ones.
func TestLimitConcurrentNoLeak(t *testing.T) {
	t.Parallel()
	l := mustNew(t, Config{
		Now:      newClock().Now,
		Identity: Rule{Requests: 100, Per: time.Hour},
		Tools:    map[string]Rule{"t": {Requests: 10, Per: time.Hour}},
	})
	p := principal("a")
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if _, err := l.Limit(context.Background(), p, "t"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := drain(t, l, p, ""); got != 90 {
		t.Fatalf("identity tokens left after race: %d, want 90", got)
	}
}

func TestLimitBoundedEntries(t *testing.T) {
	t.Parallel()
	l := mustNew(t, Config{
		Now:        newClock().Now,
		MaxEntries: 1000,
		Identity:   Rule{Requests: 10, Per: time.Second},
		Key:        Rule{Requests: 10, Per: time.Second},
		Tools:      map[string]Rule{"*": {Requests: 10, Per: time.Second}},
	})
	for i := range 10_000 {
		limit(t, l, principal("p"+strconv.Itoa(i)), "tool"+strconv.Itoa(i%7))
		if i%1000 == 999 {
			if n := l.Len(); n > 1000 {
				t.Fatalf("after %d principals: %d buckets, want at most 1000", i+1, n)
			}
		}
	}
	if n := l.Len(); n < 900 {
		t.Errorf("Len = %d: the table should be nearly full, not over-evicting", n)
	}
	// A huge principal name is stored as a digest, not verbatim.
	huge := principal(strings.Repeat("x", 1<<20))
	if !limit(t, l, huge, "t").Allowed {
		t.Fatal("huge principal refused")
	}
	if drain(t, l, huge, "t") != 9 {
		t.Fatal("huge principal's bucket not tracked")
	}
}

// TestLimitEvictionPrefersFullBuckets checks that a drained bucket survives
// eviction pressure when full (harmless) buckets can be evicted instead.
func TestLimitEvictionPrefersFullBuckets(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := mustNew(t, Config{
		Now:        clk.Now,
		MaxEntries: 16, // one shard
		Tools: map[string]Rule{
			"slow": {Requests: 1, Per: time.Hour},
			"*":    {Requests: 1000, Per: time.Second},
		},
	})
	attacker := principal("attacker")
	if !limit(t, l, attacker, "slow").Allowed || limit(t, l, attacker, "slow").Allowed {
		t.Fatal("slow bucket: want one allowed then refused")
	}
	for i := range 15 {
		limit(t, l, principal(fmt.Sprint("filler", i)), "fast")
	}
	clk.Advance(time.Second) // fillers refill and become harmless to evict
	for i := range 200 {
		limit(t, l, principal(fmt.Sprint("new", i)), "fast")
		clk.Advance(time.Second)
	}
	if res := limit(t, l, attacker, "slow"); res.Allowed {
		t.Fatal("drained bucket was evicted (and reset) while full buckets were available")
	}
}

func BenchmarkLimit(b *testing.B) {
	l := mustNew(b, Config{
		Identity: Rule{Requests: 1 << 30, Per: time.Second},
		Key:      Rule{Requests: 1 << 30, Per: time.Second},
		Tools:    map[string]Rule{"*": {Requests: 1 << 30, Per: time.Second}},
	})
	p := principal("bench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Limit(ctx, p, "search"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLimitParallel(b *testing.B) {
	l := mustNew(b, Config{
		Identity: Rule{Requests: 1 << 30, Per: time.Second},
		Key:      Rule{Requests: 1 << 30, Per: time.Second},
		Tools:    map[string]Rule{"*": {Requests: 1 << 30, Per: time.Second}},
	})
	ps := make([]*guard.Principal, 1024)
	for i := range ps {
		ps[i] = principal("p" + strconv.Itoa(i))
	}
	ctx := context.Background()
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(7919)
		for pb.Next() {
			i++
			if _, err := l.Limit(ctx, ps[i%uint64(len(ps))], "search"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
