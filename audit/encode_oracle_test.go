package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// This file keeps the encoder the log used before lines were appended
// directly: guard.Record through log/slog's JSON handler, then through
// escapeWriter. It is the oracle that [encoder] must match byte for byte.

// escapeWriter passes each JSON line written to it on to w in a single
// Write, first replacing the characters listed in escape.go by their \u
// escapes.
type escapeWriter struct {
	w   io.Writer
	buf []byte
}

func (e *escapeWriter) Write(p []byte) (int, error) {
	if firstUnsafe(p) < 0 {
		return e.w.Write(p)
	}
	b := appendEscaped(e.buf[:0], p)
	if cap(b) <= maxKeptBuf {
		e.buf = b
	}
	if _, err := e.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// slogEncoder is the former encoder.
type slogEncoder struct {
	buf bytes.Buffer
	h   slog.Handler
}

func newSlogEncoder() *slogEncoder {
	e := &slogEncoder{}
	e.h = slog.NewJSONHandler(&escapeWriter{w: &e.buf}, &slog.HandlerOptions{ReplaceAttr: slogReplaceAttr})
	return e
}

// body returns the encoded object without its closing brace and newline.
func (e *slogEncoder) body() []byte {
	b := e.buf.Bytes()
	return b[:len(b)-2]
}

func (e *slogEncoder) encode(ctx context.Context, r *guard.Record, now func() time.Time) error {
	e.buf.Reset()
	ts := r.Time
	if ts.IsZero() {
		ts = now()
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
	if r.PreviousKey {
		a = append(a, slog.Bool("key_previous_secret", true))
	}
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
	if err := e.h.Handle(ctx, rec); err != nil {
		return fmt.Errorf("audit: encode record: %w", err)
	}
	if b := e.buf.Bytes(); len(b) < 3 || !bytes.HasSuffix(b, []byte("}\n")) {
		return fmt.Errorf("audit: encode record: unexpected output %.40q", b)
	}
	return nil
}

// slogReplaceAttr drops slog's level and message and turns its time into "ts".
func slogReplaceAttr(groups []string, a slog.Attr) slog.Attr {
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

// oldJSONString is the former appendJSONString of notice lines.
func oldJSONString(dst []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return appendEscaped(dst, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}))
}

// compareWithSlog encodes r with both encoders and reports any difference.
func compareWithSlog(t testing.TB, r *guard.Record, now func() time.Time) {
	t.Helper()
	old := newSlogEncoder()
	oldErr := old.encode(context.Background(), r, now)
	e := newEncoder()
	err := e.encode(r, now)
	if (err != nil) != (oldErr != nil) {
		t.Fatalf("record %+v: error %v, slog encoder's %v", r, err, oldErr)
	}
	if err != nil {
		return
	}
	if got, want := e.body(), old.body(); !bytes.Equal(got, want) {
		t.Fatalf("record %+v:\n got %q\nwant %q", r, got, want)
	}
	// An encoder reused for the same record writes the same bytes.
	if err := e.encode(r, now); err != nil || !bytes.Equal(e.body(), old.body()) {
		t.Fatalf("record %+v: reused encoder wrote %q, %v", r, e.body(), err)
	}
}

// nasty holds strings that exercise every escaping rule.
var nasty = []string{
	"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>",
	"\x00\x01\x07\b\t\n\v\f\r\x1b[31m\x1f", "del\x7f", "c1 \u0080 \u0085 \u009b31m \u009f",
	"sep \u2028 para \u2029", "bidi \u061c \u200e \u200f \u202a \u202b \u202c \u202d \u202e \u2066 \u2067 \u2068 \u2069",
	"near \u2027 \u202f \u2065 \u206a \u00a0 \u00ff", "日本語 é ✓ 🙂", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
	"trunc \xe2\x80", "\ufffd", strings.Repeat("long ", 300),
}

func TestEncodeMatchesSlog(t *testing.T) {
	t.Parallel()
	now := func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)) }
	zero := func() time.Time { return time.Time{} }
	recs := []*guard.Record{
		fullRecord(),
		{Decision: guard.Allowed},
		{Time: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC), Subject: "alice", Method: "tools/call", Target: "search", Decision: guard.Allowed},
		{Time: time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC), Decision: guard.Denied},
		{Time: time.Date(-5, 1, 1, 0, 0, 0, 1, time.FixedZone("Y", -7*3600)), Decision: guard.Denied},
		{Decision: "", Duration: -5, Roles: []string{}, Policies: []string{""}, Args: map[string]any{}},
		{Decision: guard.Failed, Duration: math.MaxInt64, ToolError: true, Error: "boom"},
		{Decision: guard.Allowed, Args: map[string]any{
			"f0": float64(0), "f1": -0.0, "f2": 1e-7, "f3": 1e21, "f4": 123456789.125, "f5": 1e20, "f6": 5e-324,
			"f7": math.MaxFloat64, "f8": -1e-6, "f9": 0.000001, "b": false, "n": nil, "i": 42, "u": uint8(7),
			"s": []string{"a\u2028", "<>"}, "m": map[string]any{"z": 1, "a": "\x7f"}, "raw": json.RawMessage(`{"x": [1, 2]}`),
			"f32": float32(0.1), "num": json.Number("12.50"), "t": time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		}},
		{Decision: guard.Allowed, Args: map[string]any{"nan": math.NaN()}},
		{Decision: guard.Allowed, Args: map[string]any{"inf": math.Inf(-1)}},
		{Decision: guard.Allowed, Args: map[string]any{"ch": make(chan int)}},
	}
	for _, s := range nasty {
		recs = append(recs, &guard.Record{
			RequestID: s, Subject: s, Issuer: s, AuthMethod: guard.AuthMethod(s), KeyID: s, Roles: []string{s, s},
			ClientAddr: s, Transport: s, SessionID: s, Method: s, Target: s, Decision: guard.Outcome(s), Reason: s,
			RequiredRoles: []string{s}, Policies: []string{"p", s}, Error: s, ArgsDigest: s,
			Args: map[string]any{s: s, s + "2": []any{s}, "k" + s: map[string]any{s: s}},
		})
	}
	for _, r := range recs {
		compareWithSlog(t, r, now)
		compareWithSlog(t, r, zero)
	}
}

func TestNoticeStringsMatchEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range nasty {
		if got, want := appendJSONString(nil, s), oldJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %q, want %q", s, got, want)
		}
	}
}

// FuzzEncodeMatchesSlog checks that the encoder writes the bytes the
// slog-based encoder wrote, for random strings, roles and arguments.
func FuzzEncodeMatchesSlog(f *testing.F) {
	for i, s := range nasty {
		f.Add(s, "developer", "table", s, float64(i), int64(i)*1e9, uint8(i))
	}
	f.Add("", "", "", "", 0.0, int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, s, role, key, val string, num float64, nanos int64, flags uint8) {
		r := &guard.Record{
			Time:      time.Unix(0, nanos),
			RequestID: s, Subject: val, Issuer: s, KeyID: key, ClientAddr: role,
			Transport: "stdio", SessionID: s, Method: "tools/call", Target: key,
			Decision: guard.Outcome(role), Reason: s + val,
			Duration: time.Duration(nanos), ToolError: flags&1 != 0, Error: val, ArgsDigest: key,
			PreviousKey: flags&4 != 0,
		}
		if flags&2 != 0 {
			r.Roles = []string{role, s}
			r.RequiredRoles = []string{role}
			r.Policies = []string{"tool:" + key, "role:" + role}
		}
		if flags&4 != 0 {
			r.Args = map[string]any{key: val, s: num, role: flags&8 != 0, val: nil, "nested": map[string]any{s: []any{val, num}}}
		}
		if flags&16 != 0 {
			r.Time = time.Time{}
		}
		now := func() time.Time { return time.Unix(nanos/2, 0) }
		compareWithSlog(t, r, now)
		if got, want := appendJSONString(nil, s), oldJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %q, want %q", s, got, want)
		}
	})
}
