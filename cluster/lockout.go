package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/ratelimit"
)

// failure records one failed authentication in a sliding window (a sorted
// set of failure times) and locks the source when the window holds max
// failures, as ratelimit.MemoryLockout does: failures while locked neither
// count nor extend the lock, and the history that caused a lock is
// forgotten. KEYS: lock, failures. ARGV: max, window (ms), duration (ms),
// a unique member. Returns the lock's remaining milliseconds, 0 if not
// locked.
var failure = redis.NewScript(`
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return left end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now - window))
redis.call('ZADD', KEYS[2], string.format('%.0f', now), ARGV[4])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
  return tonumber(ARGV[3])
end
redis.call('PEXPIRE', KEYS[2], window)
return 0
`)

// Lockout is a guard.Lockout shared by every replica through Redis. While
// Redis is unreachable it answers from a local ratelimit.MemoryLockout, so
// that guessing is still throttled per replica.
type Lockout struct {
	rdb              *redis.Client
	max              int
	window, duration time.Duration
	local            *ratelimit.MemoryLockout
}

var _ guard.Lockout = (*Lockout)(nil)

// NewLockout returns a shared lockout enforcing cfg (whose defaults and
// bounds are ratelimit.NewLockout's).
func NewLockout(rdb *redis.Client, cfg ratelimit.LockoutConfig) (*Lockout, error) {
	local, err := ratelimit.NewLockout(cfg)
	if err != nil {
		return nil, err
	}
	return &Lockout{
		rdb:      rdb,
		max:      cmpOr(cfg.MaxFailures, ratelimit.DefaultMaxFailures),
		window:   cmpOr(cfg.Window, ratelimit.DefaultLockoutWindow),
		duration: cmpOr(cfg.Duration, ratelimit.DefaultLockoutDuration),
		local:    local,
	}, nil
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// keys returns the lock and failure-history keys of src (hashed: a source
// is caller-controlled in length).
func keys(src string) []string {
	sum := sha256.Sum256([]byte(src))
	h := hex.EncodeToString(sum[:16])
	return []string{KeyPrefix + "lock:" + h, KeyPrefix + "fail:" + h}
}

// Locked implements guard.Lockout.
func (l *Lockout) Locked(ctx context.Context, src string) (time.Duration, bool) {
	d, err := l.rdb.PTTL(ctx, keys(src)[0]).Result()
	if err != nil {
		return l.local.Locked(ctx, src)
	}
	if d > 0 {
		return d, true
	}
	return 0, false
}

// Failure implements guard.Lockout.
func (l *Lockout) Failure(ctx context.Context, src string) (time.Duration, bool) {
	var id [12]byte
	rand.Read(id[:])
	ms, err := failure.Run(ctx, l.rdb, keys(src), l.max, l.window.Milliseconds(), l.duration.Milliseconds(), hex.EncodeToString(id[:])).Int64()
	if err != nil {
		return l.local.Failure(ctx, src)
	}
	if ms > 0 {
		return time.Duration(ms) * time.Millisecond, true
	}
	return 0, false
}
