package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpguard/mcpguard/cluster"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/ratelimit"
	"github.com/mcpguard/mcpguard/store"
)

// storeName names the store for messages, without a URL's credentials.
func storeName(cfg *config.Config) string {
	if isPostgres(cfg.StoreLocation()) {
		return "the PostgreSQL store"
	}
	return filepath.Join(cfg.DataDir, StoreFile)
}

// limiterConfig converts the rate_limit section.
func limiterConfig(cfg *config.Config) ratelimit.Config {
	rl := cfg.RateLimit
	lc := ratelimit.Config{
		Identity: ratelimit.Rule{Requests: rl.RequestsPerMinute, Per: time.Minute, Burst: rl.Burst},
		Tools:    map[string]ratelimit.Rule{},
	}
	if rl.PerKeyRequestsPerMinute > 0 {
		lc.Key = ratelimit.Rule{Requests: rl.PerKeyRequestsPerMinute, Per: time.Minute}
	}
	for name, t := range rl.Tools {
		lc.Tools[name] = ratelimit.Rule{Requests: t.RequestsPerMinute, Per: time.Minute, Burst: t.Burst}
	}
	return lc
}

// shareState connects to Redis when redis.url is set and moves g's rate
// limiting and lockout there, so that they hold across replicas. It returns
// the client, nil without Redis. A Redis that is down at start is not an
// error: requests fail as configured (redis.on_failure) until it is back.
func shareState(cfg *config.Config, g *guard.Guard, logger *slog.Logger) (*redis.Client, error) {
	if cfg.Redis.URL == "" {
		return nil, nil
	}
	rdb, err := cluster.Connect(cfg.Redis.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	policy := cluster.FailClosed
	if cfg.Redis.OnFailure == "local" {
		policy = cluster.FailLocal
	}
	if cfg.RateLimit.Enabled {
		lim, err := cluster.NewLimiter(rdb, limiterConfig(cfg), policy, logger)
		if err != nil {
			rdb.Close()
			return nil, fmt.Errorf("rate_limit: %w", err)
		}
		g.Limiter = lim
	}
	if lo := cfg.RateLimit.Lockout; lo.MaxFailures > 0 {
		lk, err := cluster.NewLockout(rdb, ratelimit.LockoutConfig{MaxFailures: lo.MaxFailures, Window: lo.Window, Duration: lo.Duration})
		if err != nil {
			rdb.Close()
			return nil, fmt.Errorf("rate_limit.lockout: %w", err)
		}
		g.Lockout = lk
	}
	return rdb, nil
}

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = 2 * time.Second

// readiness answers GET /readyz: 200 when the store and Redis (if any)
// answer, else 503 naming the dependency that does not (never its address).
// A load balancer takes a replica out of rotation on 503.
func readiness(st store.Store, rdb *redis.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guard.SecurityHeaders(w.Header())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		// Any cheap read proves the store answers, whatever its backend.
		if _, err := st.TokenRevoked(ctx, "readyz"); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: the store is unreachable\n")
			return
		}
		if rdb != nil {
			if err := cluster.Ping(ctx, rdb); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "not ready: redis is unreachable\n")
				return
			}
		}
		io.WriteString(w, "ready\n")
	})
}

// watchRevocations makes g's authenticators drop their cached credentials
// whenever a revocation is committed to a store that announces them
// (PostgreSQL LISTEN/NOTIFY), so that a key or token revoked through any
// replica or the CLI is refused by every replica at once instead of within
// auth.revocation_recheck. Call it once g.Authenticator is final.
func watchRevocations(ctx context.Context, st store.Store, g *guard.Guard) {
	if sealed, ok := st.(*sealingStore); ok {
		st = sealed.Store
	}
	w, ok := st.(interface {
		WatchRevocations(context.Context, func())
	})
	if !ok {
		return
	}
	inv, ok := g.Authenticator.(interface{ Invalidate() })
	if !ok {
		return
	}
	go w.WatchRevocations(ctx, inv.Invalidate)
}
