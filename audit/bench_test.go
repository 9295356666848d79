package audit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mcpguard/mcpguard/guard"
)

// BenchmarkAppendGroupCommit measures a file logger with HMAC and
// checkpoints: 64 goroutines per core (b.SetParallelism) in the durable
// and the asynchronous mode, and one caller at a time (whose ns/op is the
// latency of one durable record: encode, queue, write, fsync).
func BenchmarkAppendGroupCommit(b *testing.B) {
	ctx := context.Background()
	full := fullRecord()
	// A typical record: every field but the allow-listed arguments.
	typical := fullRecord()
	typical.Args = nil
	open := func(b *testing.B, waitForSync bool) *Logger {
		l, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{
			HMACKey: testKey, SigningKey: testSigner, WaitForSync: waitForSync, BlockWhenFull: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	parallel := func(waitForSync bool, r *guard.Record) func(b *testing.B) {
		return func(b *testing.B) {
			l := open(b, waitForSync)
			b.SetParallelism(64)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Record(ctx, r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := l.Close(); err != nil { // includes writing what is queued
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(max(l.Stats().Batches, 1)), "records/batch")
		}
	}
	b.Run("sync-parallel", parallel(true, typical))
	b.Run("async-parallel", parallel(false, typical))
	b.Run("sync-parallel-with-args", parallel(true, full))
	b.Run("async-parallel-with-args", parallel(false, full))
	b.Run("sync-single", func(b *testing.B) {
		l := open(b, true)
		m := &guard.Record{Time: full.Time, Subject: "alice", Method: "tools/call", Target: "search", Decision: guard.Allowed}
		b.ReportAllocs()
		for b.Loop() {
			if err := l.Record(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
