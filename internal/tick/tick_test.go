package tick

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryAndNow(t *testing.T) {
	for name, run := range map[string]func(context.Context, time.Duration, func()){"Every": Every, "Now": Now} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var n atomic.Int32
			done := make(chan struct{})
			go func() { run(ctx, 20*time.Millisecond, func() { n.Add(1) }); close(done) }()
			time.Sleep(5 * time.Millisecond)
			first := n.Load()
			if want := map[string]int32{"Every": 0, "Now": 1}[name]; first != want {
				t.Fatalf("calls before the first interval: %d, want %d", first, want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for n.Load() < first+3 {
				if time.Now().After(deadline) {
					t.Fatalf("only %d calls in 5s at a 20ms interval", n.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Fatal("did not return when the context ended")
			}
			after := n.Load()
			time.Sleep(60 * time.Millisecond)
			if n.Load() != after {
				t.Fatal("fn called after the context ended")
			}
		})
	}
}
