package auditstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// ErrQueueFull is returned by BatchSink.Record when records arrive faster
// than the store takes them and the queue is full: the request is refused
// rather than left unrecorded.
var ErrQueueFull = errors.New("auditstore: queue full")

// BatchOptions configure a BatchSink. Zero values mean the defaults.
type BatchOptions struct {
	// QueueSize bounds the records waiting to be stored. Default 16384.
	QueueSize int
	// MaxBatch bounds the records stored in one transaction. Default 512.
	MaxBatch int
	// Logger receives store errors. Nil discards them.
	Logger *slog.Logger
}

// BatchSink is a guard.AuditSink that stores records asynchronously, many
// per transaction, so that the store (a query index beside the
// authoritative, durable audit log file) costs the request path only a
// queue insertion. Record fails only when the queue is full. Records the
// store refuses are logged and counted, not retried: the file log keeps
// them.
type BatchSink struct {
	store  store.Store
	opts   BatchOptions
	queue  chan guard.Record
	done   chan struct{}
	mu     sync.RWMutex // Record holds it shared, Close exclusively
	closed bool
	failed atomic.Uint64
}

// NewBatchSink starts a BatchSink writing to s; Close stops it.
func NewBatchSink(s store.Store, o BatchOptions) *BatchSink {
	if o.QueueSize <= 0 {
		o.QueueSize = 16384
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &BatchSink{store: s, opts: o, queue: make(chan guard.Record, o.QueueSize), done: make(chan struct{})}
	go b.run()
	return b
}

// Record implements guard.AuditSink: it queues a copy of r.
func (b *BatchSink) Record(_ context.Context, r *guard.Record) error {
	if r == nil {
		return errors.New("auditstore: nil record")
	}
	rec := *r
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errors.New("auditstore: sink closed")
	}
	select {
	case b.queue <- rec:
		return nil
	default:
		return ErrQueueFull
	}
}

// Failed returns how many records the store refused.
func (b *BatchSink) Failed() uint64 { return b.failed.Load() }

// QueueDepth returns how many records wait to be stored.
func (b *BatchSink) QueueDepth() int { return len(b.queue) }

func (b *BatchSink) run() {
	defer close(b.done)
	batch := make([]guard.Record, 0, b.opts.MaxBatch)
	for rec := range b.queue {
		batch = append(batch[:0], rec)
	fill:
		for len(batch) < b.opts.MaxBatch {
			select {
			case r, ok := <-b.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultWriteTimeout)
		if err := b.store.AppendAudit(ctx, batch); err != nil {
			b.failed.Add(uint64(len(batch)))
			b.opts.Logger.Error("audit records not stored (they remain in the audit log file)", "records", len(batch), "err", err)
		}
		cancel()
	}
}

// Close stores what is queued and stops the sink.
func (b *BatchSink) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	<-b.done
	if n := b.failed.Load(); n > 0 {
		return fmt.Errorf("auditstore: %d records were not stored", n)
	}
	return nil
}
