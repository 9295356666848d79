package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// idleConfig is the shape of an idle-session run.
type idleConfig struct {
	Sessions    int           // sessions to open and keep open
	Concurrency int           // sessions initializing at once
	SSE         bool          // keep each session's standalone SSE stream
	Settle      time.Duration // pause before each RSS reading
	Timeout     time.Duration // bound on the whole run
}

// runIdle opens c.Sessions sessions (initialize only) to the server of
// pid and reports its resident memory before and after. The sessions stay
// open until the returned function is called (or the server stops).
func runIdle(ctx context.Context, url string, auth func(int) (string, error), pid int, c idleConfig) (idleResult, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	f := newSessionFactory(url, auth, c.Concurrency+8, c.SSE)
	r := idleResult{Requested: c.Sessions, SSE: c.SSE}

	// Warm the server up (first session, first call, lazy initialization)
	// so that "before" is a steady state, then let it settle.
	cs, err := f.open(ctx, c.Sessions) // an index no idle session uses
	if err != nil {
		return r, func() {}, fmt.Errorf("warm-up: %w", err)
	}
	if err := callOnce(ctx, cs, &mcp.CallToolParams{Name: benchTool, Arguments: map[string]any{}}); err != nil {
		cs.Close()
		return r, func() {}, fmt.Errorf("warm-up call: %w", err)
	}
	cs.Close()
	if err := sleep(ctx, c.Settle); err != nil {
		return r, func() {}, err
	}
	if r.RSSBeforeKiB, err = readStatusKiB(pid, "VmRSS"); err != nil {
		return r, func() {}, err
	}

	sessions := make([]*mcp.ClientSession, c.Sessions)
	release := func() {
		closeSessions(sessions)
		f.transport.CloseIdleConnections()
	}
	var (
		mu       sync.Mutex
		failed   int
		firstErr error
	)
	sem := make(chan struct{}, c.Concurrency)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range c.Sessions {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			cs, err := f.open(ctx, i)
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			sessions[i] = cs
		})
	}
	wg.Wait()
	r.OpenTime = time.Since(t0)
	for _, cs := range sessions {
		if cs != nil {
			r.Opened++
		}
	}
	r.Failed = failed
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	if err := ctx.Err(); err != nil {
		return r, release, fmt.Errorf("opening %d sessions did not finish within %v: %w", c.Sessions, c.Timeout, err)
	}
	if err := sleep(ctx, c.Settle); err != nil {
		return r, release, err
	}
	if r.RSSAfterKiB, err = readStatusKiB(pid, "VmRSS"); err != nil {
		return r, release, err
	}
	if r.HWMKiB, err = readStatusKiB(pid, "VmHWM"); err != nil {
		return r, release, err
	}
	return r, release, nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
}
