package auditstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/auditstore"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

func TestBatchSinkStoresEverything(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := auditstore.NewBatchSink(st, auditstore.BatchOptions{MaxBatch: 7})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				r := &guard.Record{Time: time.Unix(int64(w*1000+i), 0), Decision: guard.Allowed, Subject: "u", Method: "tools/call", Target: "query"}
				if err := b.Record(ctx, r); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := st.QueryAudit(ctx, store.AuditQuery{Limit: 1000})
	if err != nil || len(recs) != 400 {
		t.Fatalf("stored %d records (%v), want 400", len(recs), err)
	}
	if err := b.Record(ctx, &guard.Record{Decision: guard.Allowed}); err == nil {
		t.Fatal("Record after Close succeeded")
	}
}

// blockingStore holds AppendAudit until released, to fill the queue.
type blockingStore struct {
	store.Store
	release chan struct{}
}

func (s blockingStore) AppendAudit(ctx context.Context, _ []guard.Record) error {
	<-s.release
	return errors.New("store down")
}

func TestBatchSinkFullQueueFailsClosed(t *testing.T) {
	bs := blockingStore{release: make(chan struct{})}
	b := auditstore.NewBatchSink(bs, auditstore.BatchOptions{QueueSize: 4, MaxBatch: 1})
	ctx := context.Background()
	var full error
	for range 20 {
		if err := b.Record(ctx, &guard.Record{Decision: guard.Allowed}); err != nil {
			full = err
			break
		}
	}
	if !errors.Is(full, auditstore.ErrQueueFull) {
		t.Fatalf("a full queue returned %v, want ErrQueueFull", full)
	}
	close(bs.release)
	if err := b.Close(); err == nil || b.Failed() == 0 {
		t.Fatalf("refused records not reported: %v, failed=%d", err, b.Failed())
	}
}

func TestTeeForwardsReadiness(t *testing.T) {
	down := &notReady{}
	if err := auditstore.Tee(down, auditstore.Tee()).(guard.ReadyChecker).Ready(); err == nil {
		t.Fatal("a tee over an unready sink reported ready")
	}
}

type notReady struct{}

func (*notReady) Record(context.Context, *guard.Record) error { return nil }
func (*notReady) Ready() error                                { return errors.New("disk full") }
