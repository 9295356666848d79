package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpguard/mcpguard/cluster"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/servicetest"
	"github.com/mcpguard/mcpguard/ratelimit"
)

func client(t testing.TB) *redis.Client {
	t.Helper()
	c, err := cluster.Connect(servicetest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := cluster.Ping(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// principal returns a principal no other test (or earlier run) uses.
func principal() *guard.Principal {
	b := make([]byte, 8)
	rand.Read(b)
	return &guard.Principal{Method: "apikey", Subject: "u-" + hex.EncodeToString(b), KeyID: hex.EncodeToString(b)}
}

func TestLimitSharedAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	cfg := ratelimit.Config{Identity: ratelimit.Rule{Requests: 5, Per: time.Minute}}
	a, err := cluster.NewLimiter(client(t), cfg, cluster.FailClosed, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cluster.NewLimiter(client(t), cfg, cluster.FailClosed, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := principal()
	for i := range 5 {
		lim := []*cluster.Limiter{a, b}[i%2]
		res, err := lim.Limit(ctx, p, "")
		if err != nil || !res.Allowed {
			t.Fatalf("call %d: %+v, %v; want allowed", i+1, res, err)
		}
	}
	for _, lim := range []*cluster.Limiter{a, b} {
		res, err := lim.Limit(ctx, p, "")
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed || res.Scope != ratelimit.ScopeIdentity {
			t.Fatalf("6th call = %+v, want refused by the identity bucket", res)
		}
		// One token comes back every 12 s.
		if res.RetryAfter <= 11*time.Second || res.RetryAfter > 12*time.Second {
			t.Fatalf("RetryAfter = %v, want about 12s", res.RetryAfter)
		}
	}
	// Another principal has its own bucket.
	if res, err := a.Limit(ctx, principal(), ""); err != nil || !res.Allowed {
		t.Fatalf("other principal: %+v, %v", res, err)
	}
}

// A request refused by one bucket charges none: as package ratelimit.
func TestLimitAllOrNothing(t *testing.T) {
	ctx := context.Background()
	cfg := ratelimit.Config{
		Identity: ratelimit.Rule{Requests: 3, Per: time.Minute},
		Tools:    map[string]ratelimit.Rule{"slow": {Requests: 1, Per: time.Minute}},
	}
	l, err := cluster.NewLimiter(client(t), cfg, cluster.FailClosed, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := principal()
	if res, _ := l.Limit(ctx, p, "slow"); !res.Allowed {
		t.Fatal("first slow call refused")
	}
	for range 5 {
		res, err := l.Limit(ctx, p, "slow")
		if err != nil || res.Allowed || res.Scope != ratelimit.ScopeTool {
			t.Fatalf("second slow call = %+v, %v; want refused by the tool bucket", res, err)
		}
	}
	// The refused calls took no identity token: two remain.
	for i := range 2 {
		if res, _ := l.Limit(ctx, p, "fast"); !res.Allowed {
			t.Fatalf("fast call %d refused: refused calls were charged", i+1)
		}
	}
	if res, _ := l.Limit(ctx, p, "fast"); res.Allowed || res.Scope != ratelimit.ScopeIdentity {
		t.Fatalf("4th identity call = %+v, want refused", res)
	}
}

// Concurrent checks from many goroutines never over-admit.
func TestLimitConcurrent(t *testing.T) {
	ctx := context.Background()
	l, err := cluster.NewLimiter(client(t), ratelimit.Config{Identity: ratelimit.Rule{Requests: 20, Per: time.Hour}}, cluster.FailClosed, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := principal()
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 5 {
				res, err := l.Limit(ctx, p, "")
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 20 {
		t.Fatalf("%d of 80 concurrent calls allowed, want exactly 20", allowed)
	}
}

func TestUnreachableRedis(t *testing.T) {
	ctx := context.Background()
	dead, err := cluster.Connect("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	cfg := ratelimit.Config{Identity: ratelimit.Rule{Requests: 1, Per: time.Minute}}
	closed, err := cluster.NewLimiter(dead, cfg, cluster.FailClosed, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := closed.Limit(ctx, principal(), ""); err == nil {
		t.Fatal("fail-closed limiter answered without Redis")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failing took %v: timeouts are not bounded", d)
	}
	local, err := cluster.NewLimiter(dead, cfg, cluster.FailLocal, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := principal()
	if res, err := local.Limit(ctx, p, ""); err != nil || !res.Allowed {
		t.Fatalf("local fallback, first call: %+v, %v", res, err)
	}
	if res, err := local.Limit(ctx, p, ""); err != nil || res.Allowed {
		t.Fatalf("local fallback, second call: %+v, %v; want refused by the local limit", res, err)
	}
	if cluster.Ping(ctx, dead) == nil {
		t.Fatal("Ping succeeded on a dead address")
	}
}

func TestLockoutShared(t *testing.T) {
	ctx := context.Background()
	cfg := ratelimit.LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: time.Minute}
	a, err := cluster.NewLockout(client(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cluster.NewLockout(client(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := "198.51.100." + principal().KeyID
	if _, locked := a.Failure(ctx, src); locked {
		t.Fatal("locked after one failure")
	}
	if _, locked := b.Failure(ctx, src); locked {
		t.Fatal("locked after two failures")
	}
	if _, locked := b.Locked(ctx, src); locked {
		t.Fatal("locked before the third failure")
	}
	d, locked := a.Failure(ctx, src)
	if !locked || d <= 59*time.Second || d > time.Minute {
		t.Fatalf("third failure (across replicas): %v, %v; want locked for 1m", d, locked)
	}
	if d, locked := b.Locked(ctx, src); !locked || d <= 0 {
		t.Fatal("replica B does not see the lock")
	}
	if _, locked := b.Locked(ctx, src+"x"); locked {
		t.Fatal("another source is locked")
	}
}

// BenchmarkLimit measures one shared rate-limit check against the local
// Redis (one EVALSHA round trip) and reports its latency percentiles.
func BenchmarkLimit(b *testing.B) {
	ctx := context.Background()
	cfg := ratelimit.Config{
		Identity: ratelimit.Rule{Requests: 1 << 30, Per: time.Second},
		Key:      ratelimit.Rule{Requests: 1 << 30, Per: time.Second},
		Tools:    map[string]ratelimit.Rule{"*": {Requests: 1 << 30, Per: time.Second}},
	}
	l, err := cluster.NewLimiter(client(b), cfg, cluster.FailClosed, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := principal()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := l.Limit(ctx, p, "query")
		lat = append(lat, time.Since(start))
		if err != nil || !res.Allowed {
			b.Fatalf("%+v, %v", res, err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
