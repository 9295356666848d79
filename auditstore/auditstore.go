// Package auditstore writes audit records to a [store.Store], where they can
// be queried by time, decision, user and tool (`mcpguard audit query`, the
// admin page), alongside or instead of the JSON-lines file of package audit.
package auditstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// DefaultWriteTimeout bounds one store write made by a [Sink].
const DefaultWriteTimeout = 5 * time.Second

// Sink is a [guard.AuditSink] that appends each record to a store, one
// transaction per record, before Record returns: the pipeline refuses a
// request whose record could not be stored.
type Sink struct {
	store   store.Store
	now     func() time.Time
	timeout time.Duration
}

var _ guard.AuditSink = (*Sink)(nil)

// NewSink returns a Sink writing to s. Records without a time are stamped
// with the current time, as the file sink does.
func NewSink(s store.Store) *Sink {
	return &Sink{store: s, now: time.Now, timeout: DefaultWriteTimeout}
}

// Record implements [guard.AuditSink]. The write is not cancelled with ctx
// (a refused request's record must be kept even when its client has gone),
// but it is bounded by [DefaultWriteTimeout]. r is not modified.
func (s *Sink) Record(ctx context.Context, r *guard.Record) error {
	if r == nil {
		return errors.New("auditstore: nil record")
	}
	rec := *r
	if rec.Time.IsZero() {
		rec.Time = s.now()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := s.store.AppendAudit(wctx, []guard.Record{rec}); err != nil {
		return fmt.Errorf("auditstore: %w", err)
	}
	return nil
}

// Tee returns a [guard.AuditSink] that records to every sink in order, such
// as the audit log file and a store. Every sink is tried; Record fails (and
// the pipeline refuses the request) if any sink fails. Nil sinks are
// skipped.
func Tee(sinks ...guard.AuditSink) guard.AuditSink {
	out := make(tee, 0, len(sinks))
	for _, s := range sinks {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

type tee []guard.AuditSink

// Ready implements guard.ReadyChecker: the tee is ready when every sink
// that can tell is ready, so that wrapping the audit log file in a tee
// keeps the pipeline's refusal to run requests it could not record.
func (t tee) Ready() error {
	for _, s := range t {
		if rc, ok := s.(guard.ReadyChecker); ok {
			if err := rc.Ready(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Record implements guard.AuditSink.
func (t tee) Record(ctx context.Context, r *guard.Record) error {
	var errs []error
	for _, s := range t {
		if err := s.Record(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WriteJSONLines writes recs to w as JSON Lines: one JSON object per
// record and per line, in the format of the audit log file, for SIEM
// ingestion. JSON escapes every control character, so a record cannot
// break a line.
func WriteJSONLines(w io.Writer, recs []guard.Record) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return fmt.Errorf("auditstore: write record %d: %w", i, err)
		}
	}
	return nil
}
