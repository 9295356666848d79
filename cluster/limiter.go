package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/ratelimit"
)

// gcra checks and charges every bucket of one request atomically, with the
// generic cell rate algorithm: each key holds its bucket's theoretical
// arrival time (TAT) in microseconds of Redis's own clock (TIME), so that
// replicas with skewed clocks agree. A request is allowed when every bucket
// has a token (TAT + interval - interval*burst <= now); then every TAT
// advances by one interval. Otherwise nothing is written, and the reply is
// the longest wait and the index of the bucket that imposes it. This is the
// token bucket of package ratelimit: same rate, burst and retry-after.
//
// KEYS: the bucket keys. ARGV: interval (µs) and burst for each key.
// Numbers are formatted with %.0f: Lua would print them as %.14g and lose
// the microseconds.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local wait, worst = -1, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2*i-1])
  local burst = tonumber(ARGV[2*i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local allowAt = tat + interval - interval * burst
  if now < allowAt then
    if allowAt - now > wait then wait, worst = allowAt - now, i end
  end
  tats[i] = tat + interval
end
if worst > 0 then return {0, string.format('%.0f', wait), worst} end
for i = 1, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
end
return {1, '0', 0}
`)

// FailurePolicy is what a [Limiter] does while Redis is unreachable.
type FailurePolicy int

const (
	// FailClosed refuses requests (the guard answers 503 and audits the
	// failure).
	FailClosed FailurePolicy = iota
	// FailLocal falls back to the replica's own in-memory limits.
	FailLocal
)

// Limiter is a guard.Limiter whose buckets live in Redis, shared by every
// replica. Safe for concurrent use.
type Limiter struct {
	rdb      *redis.Client
	plan     *ratelimit.Plan
	fallback guard.Limiter // nil with FailClosed
	logger   *slog.Logger
	pool     sync.Pool // *request scratch space

	mu       sync.Mutex
	degraded bool // logged once per outage
}

var _ guard.Limiter = (*Limiter)(nil)

type request struct {
	buckets []ratelimit.Bucket
	keys    []string
	args    []any
}

// NewLimiter returns a limiter enforcing cfg in Redis. With FailLocal it
// falls back to a ratelimit.Local with the same cfg while Redis fails.
func NewLimiter(rdb *redis.Client, cfg ratelimit.Config, onFailure FailurePolicy, logger *slog.Logger) (*Limiter, error) {
	plan, err := ratelimit.NewPlan(cfg)
	if err != nil {
		return nil, err
	}
	l := &Limiter{rdb: rdb, plan: plan, logger: logger}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if onFailure == FailLocal {
		local, err := ratelimit.New(cfg)
		if err != nil {
			return nil, err
		}
		l.fallback = local
	}
	l.pool.New = func() any { return &request{} }
	return l, nil
}

// Limit implements guard.Limiter: one EVALSHA round trip per check.
func (l *Limiter) Limit(ctx context.Context, p *guard.Principal, tool string) (guard.LimitResult, error) {
	r := l.pool.Get().(*request)
	defer l.pool.Put(r)
	var err error
	if r.buckets, err = l.plan.Buckets(r.buckets[:0], p, tool); err != nil {
		return guard.LimitResult{}, err
	}
	if len(r.buckets) == 0 {
		return guard.LimitResult{Allowed: true}, nil
	}
	r.keys, r.args = r.keys[:0], r.args[:0]
	for _, b := range r.buckets {
		r.keys = append(r.keys, KeyPrefix+"rl:"+b.Key)
		r.args = append(r.args, max(b.Interval.Microseconds(), 1), b.Burst)
	}
	res, err := gcra.Run(ctx, l.rdb, r.keys, r.args...).Slice()
	if err != nil {
		return l.failed(ctx, p, tool, err)
	}
	l.recovered()
	if len(res) != 3 {
		return guard.LimitResult{}, fmt.Errorf("cluster: unexpected rate-limit reply of %d values", len(res))
	}
	if ok, _ := res[0].(int64); ok == 1 {
		return guard.LimitResult{Allowed: true}, nil
	}
	var waitUS int64
	if s, isStr := res[1].(string); isStr {
		fmt.Sscan(s, &waitUS)
	}
	i, _ := res[2].(int64)
	if i < 1 || int(i) > len(r.buckets) {
		return guard.LimitResult{}, errors.New("cluster: unexpected rate-limit reply")
	}
	return guard.LimitResult{RetryAfter: time.Duration(waitUS) * time.Microsecond, Scope: r.buckets[i-1].Scope}, nil
}

// failed handles a Redis error: the local fallback answers, or the error is
// returned and the guard fails closed. The error names no address or key.
func (l *Limiter) failed(ctx context.Context, p *guard.Principal, tool string, err error) (guard.LimitResult, error) {
	l.mu.Lock()
	first := !l.degraded
	l.degraded = true
	l.mu.Unlock()
	if first {
		mode := "refusing requests (redis.on_failure: closed)"
		if l.fallback != nil {
			mode = "falling back to local limits (redis.on_failure: local)"
		}
		l.logger.Error("Redis is unreachable: "+mode, "error", err)
	}
	if l.fallback != nil {
		return l.fallback.Limit(ctx, p, tool)
	}
	return guard.LimitResult{}, errors.New("the shared rate limiter (Redis) is unreachable")
}

func (l *Limiter) recovered() {
	l.mu.Lock()
	was := l.degraded
	l.degraded = false
	l.mu.Unlock()
	if was {
		l.logger.Info("Redis is reachable again: shared rate limits resumed")
	}
}
