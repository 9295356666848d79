// Package tick runs background work periodically until a context ends:
// the sweeps, reloads and purges that mcpguard keeps going while it serves.
package tick

import (
	"context"
	"time"
)

// Every calls fn each time interval has passed, until ctx is done. The
// first call comes after one interval; a call that overruns the interval
// delays the next rather than overlapping it.
func Every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Now calls fn at once and then as Every does.
func Now(ctx context.Context, interval time.Duration, fn func()) {
	fn()
	Every(ctx, interval, fn)
}
