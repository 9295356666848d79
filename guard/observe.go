package guard

import (
	"context"
	"time"
)

// Stage names a pipeline stage for an Observer.
type Stage string

// The pipeline's stages, in order.
const (
	StageAuthenticate Stage = "authenticate"
	StageRateLimit    Stage = "ratelimit"
	StageAuthorize    Stage = "authorize"
	StageExecute      Stage = "execute"
	StageAudit        Stage = "audit"
)

// Observer watches the pipeline, for metrics and tracing. Its methods are
// called on the request path and must be fast and safe for concurrent use.
type Observer interface {
	// StartStage is called when a stage begins. It may return a derived
	// context (a tracing span); the returned function is called when the
	// stage ends, with its duration.
	StartStage(ctx context.Context, s Stage) (context.Context, func(d time.Duration))
	// Recorded is called once for every audit record after the sink was
	// asked to write it; err is the sink's error, if any.
	Recorded(ctx context.Context, r *Record, err error)
}

// noopObserver is used when Guard.Observer is nil.
type noopObserver struct{}

func (noopObserver) StartStage(ctx context.Context, _ Stage) (context.Context, func(time.Duration)) {
	return ctx, func(time.Duration) {}
}

func (noopObserver) Recorded(context.Context, *Record, error) {}

// Observers fans one pipeline out to several observers.
type Observers []Observer

// StartStage implements Observer.
func (os Observers) StartStage(ctx context.Context, s Stage) (context.Context, func(time.Duration)) {
	ends := make([]func(time.Duration), 0, len(os))
	for _, o := range os {
		var end func(time.Duration)
		ctx, end = o.StartStage(ctx, s)
		ends = append(ends, end)
	}
	return ctx, func(d time.Duration) {
		for i := len(ends) - 1; i >= 0; i-- {
			ends[i](d)
		}
	}
}

// Recorded implements Observer.
func (os Observers) Recorded(ctx context.Context, r *Record, err error) {
	for _, o := range os {
		o.Recorded(ctx, r, err)
	}
}
