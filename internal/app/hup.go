package app

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// hupReloader runs every registered reload on SIGHUP. One process-wide
// signal.Notify feeds all of them, so that reloads (policies, TLS
// certificates) neither race for the signal nor miss it.
type hupReloader struct {
	mu  sync.Mutex
	fns []hupFunc
}

type hupFunc struct {
	name string
	fn   func() error
}

// Add registers fn, named for the log, to run on SIGHUP.
func (h *hupReloader) Add(name string, fn func() error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fns = append(h.fns, hupFunc{name, fn})
}

// run reloads everything registered.
func (h *hupReloader) run(logger *slog.Logger) {
	h.mu.Lock()
	fns := append([]hupFunc(nil), h.fns...)
	h.mu.Unlock()
	for _, f := range fns {
		if err := f.fn(); err != nil {
			logger.Error("SIGHUP: "+f.name+" not reloaded; the previous ones stay in force", "err", err)
		} else {
			logger.Info("SIGHUP: " + f.name + " reloaded")
		}
	}
}

// listen runs the registered reloads on every SIGHUP until ctx ends.
func (h *hupReloader) listen(ctx context.Context, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				h.run(logger)
			}
		}
	}()
}
