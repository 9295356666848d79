// Package audit writes and reads mcpguard's audit log.
//
// The log is JSON Lines: one [guard.Record] per line, written through
// log/slog's JSON handler so that every string is escaped by the same code
// as the rest of the program's structured logs. A line's keys are exactly the
// json tags of guard.Record, in field order, with empty fields omitted and no
// slog "level" or "msg" keys:
//
//	{"ts":"2025-01-02T03:04:05.000000000Z","request_id":"r1","user":"alice",...,"decision":"ALLOWED",...}
//
// so that json.Unmarshal of a line into a guard.Record restores it. Control
// characters in any field are escaped (\n, \r, \u001b, and also DEL, C1
// controls, U+2028/U+2029 and bidirectional overrides), so no field value can
// end a line early, forge a second record, or reach a terminal raw.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// TimeLayout is the format of the "ts" key: RFC 3339 in UTC with a fixed
// nine-digit fraction, so that lines sort lexically by time.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// ErrClosed is returned by [Logger.Record] after [Logger.Close].
var ErrClosed = errors.New("audit: logger closed")

// Logger writes audit records as JSON lines. It implements [guard.AuditSink]
// and is safe for concurrent use: each record is written with a single Write
// call, under a mutex, so concurrent records never interleave.
type Logger struct {
	mu     sync.Mutex
	h      slog.Handler
	closer io.Closer // nil when Close must not close the writer
	closed bool
	now    func() time.Time
}

var _ guard.AuditSink = (*Logger)(nil)

// New returns a Logger writing JSON lines to w. Close does not close w.
func New(w io.Writer) *Logger {
	return &Logger{
		h:   slog.NewJSONHandler(&escapeWriter{w: w}, &slog.HandlerOptions{ReplaceAttr: replaceAttr}),
		now: time.Now,
	}
}

// OpenFile returns a Logger appending to the file at path, creating it with
// mode 0600 if needed (an existing file keeps its mode). The path "-" means
// standard error, which Close leaves open.
//
// If the file does not end with a newline (a previous writer stopped in the
// middle of a line), OpenFile first ends that line, so that the fragment
// stays a single malformed line instead of swallowing the next record.
func OpenFile(path string) (*Logger, error) {
	if path == "-" {
		return New(os.Stderr), nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open log: %w", err)
	}
	if err := terminateLastLine(f, path); err != nil {
		_ = f.Close()
		return nil, err
	}
	l := New(f)
	l.closer = f
	return l, nil
}

// terminateLastLine appends a newline to f when the regular file at path is
// not empty and does not end with one.
func terminateLastLine(f *os.File, path string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit: stat log: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil
	}
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: check log end: %w", err)
	}
	defer r.Close()
	var last [1]byte
	if _, err := r.ReadAt(last[:], st.Size()-1); err != nil {
		return fmt.Errorf("audit: check log end: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("audit: terminate partial line: %w", err)
	}
	return nil
}

// Record writes r as one JSON line. It returns an error when the line could
// not be written in full (for example after Close, or when the disk is
// full); the pipeline then refuses the request. A zero r.Time is recorded as
// the current time. r is not modified.
func (l *Logger) Record(ctx context.Context, r *guard.Record) error {
	if r == nil {
		return errors.New("audit: nil record")
	}
	ts := r.Time
	if ts.IsZero() {
		ts = l.now()
	}
	var args json.RawMessage
	if len(r.Args) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.Args); err != nil {
			return fmt.Errorf("audit: encode args: %w", err)
		}
		args = bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	}

	rec := slog.NewRecord(ts, slog.LevelInfo, "", 0)
	var attrs [21]slog.Attr
	a := attrs[:0]
	str := func(key, v string) {
		if v != "" {
			a = append(a, slog.String(key, v))
		}
	}
	strs := func(key string, v []string) {
		if len(v) > 0 {
			a = append(a, slog.Any(key, v))
		}
	}
	str("request_id", r.RequestID)
	str("user", r.Subject)
	str("issuer", r.Issuer)
	str("auth_method", string(r.AuthMethod))
	str("key_id", r.KeyID)
	strs("roles", r.Roles)
	str("client_addr", r.ClientAddr)
	str("transport", r.Transport)
	str("session_id", r.SessionID)
	str("method", r.Method)
	str("target", r.Target)
	a = append(a, slog.String("decision", string(r.Decision)))
	str("reason", r.Reason)
	strs("required_roles", r.RequiredRoles)
	strs("policies", r.Policies)
	if r.Duration != 0 {
		a = append(a, slog.Int64("duration_ns", int64(r.Duration)))
	}
	if r.ToolError {
		a = append(a, slog.Bool("tool_error", true))
	}
	str("error", r.Error)
	str("args_sha256", r.ArgsDigest)
	if args != nil {
		a = append(a, slog.Any("args", args))
	}
	rec.AddAttrs(a...)

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.h.Handle(ctx, rec); err != nil {
		return fmt.Errorf("audit: write record: %w", err)
	}
	return nil
}

// Close stops the Logger; later calls to Record fail with [ErrClosed]. It
// closes the file opened by [OpenFile], but not a writer given to [New].
// Close is idempotent.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.closer != nil {
		if err := l.closer.Close(); err != nil {
			return fmt.Errorf("audit: close log: %w", err)
		}
	}
	return nil
}

// replaceAttr drops slog's level and message and turns its time into "ts".
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey, slog.MessageKey:
		return slog.Attr{}
	case slog.TimeKey:
		if a.Value.Kind() == slog.KindTime {
			return slog.String("ts", a.Value.Time().UTC().Format(TimeLayout))
		}
	}
	return a
}
