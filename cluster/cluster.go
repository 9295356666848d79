// Package cluster holds the state mcpguard replicas share through Redis (or
// Valkey): rate limits enforced globally ([Limiter], one Lua script and one
// round trip per check), the authentication-failure lockout ([Lockout]) and
// the fan-out of revocations to every replica's caches ([Bus]).
//
// The PostgreSQL store (store/postgres) holds everything durable; Redis
// holds only counters that may be lost: a Redis restart forgets rate-limit
// buckets and lockouts, never credentials.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timeouts bounding every Redis operation, so that an unreachable Redis
// turns into a prompt error (and a 503) rather than a hung request.
const (
	DialTimeout = 500 * time.Millisecond
	IOTimeout   = 500 * time.Millisecond
)

// KeyPrefix starts every key mcpguard writes.
const KeyPrefix = "mcpguard:"

// Connect parses url (redis://, rediss:// or unix://) and returns a client
// with bounded timeouts. It does not wait for the server: a Redis that is
// down at start is reported by [Ping] and by the requests that need it, and
// used as soon as it is back. Errors never include the URL, which may hold a
// password.
func Connect(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("cluster: invalid redis URL (want redis://[user:password@]host:port/db, rediss://… or unix:///path)")
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = DialTimeout, IOTimeout, IOTimeout
	opt.MaxRetries = 0    // the caller decides: a retry doubles the wait while Redis is down
	opt.DialerRetries = 1 // one dial per attempt, for the same reason
	opt.PoolTimeout = IOTimeout
	return redis.NewClient(opt), nil
}

// Ping reports whether Redis answers, for readiness checks.
func Ping(ctx context.Context, c *redis.Client) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	return nil
}
