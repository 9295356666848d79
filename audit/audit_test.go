package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// fullRecord returns a record with every field set.
func fullRecord() *guard.Record {
	return &guard.Record{
		Time:          time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC),
		RequestID:     "req-1",
		Subject:       "alice",
		Issuer:        "https://issuer.example",
		AuthMethod:    guard.MethodJWT,
		KeyID:         "k_123",
		Roles:         []string{"admin", "dev"},
		ClientAddr:    "192.0.2.1",
		Transport:     "http",
		SessionID:     "sess-9",
		Method:        "tools/call",
		Target:        "delete_users",
		Decision:      guard.Denied,
		Reason:        "no rule grants tools:call:delete_users",
		RequiredRoles: []string{"admin"},
		Policies:      []string{"deny-destructive", "default"},
		Duration:      1234567 * time.Nanosecond,
		ToolError:     true,
		PreviousKey:   true,
		Error:         "boom",
		ArgsDigest:    strings.Repeat("ab", 32),
		Args: map[string]any{
			"path":   "/tmp/<x>&y",
			"limit":  float64(10),
			"force":  true,
			"none":   nil,
			"nested": map[string]any{"a": []any{"b", float64(1)}},
		},
	}
}

// recordTags returns guard.Record's json keys in field order.
func recordTags() []string {
	t := reflect.TypeFor[guard.Record]()
	var keys []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}

// lineKeys returns the top-level keys of a JSON object, in order.
func lineKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line %q: not an object (%v)", line, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
	}
	return keys
}

func record(t testing.TB, l *Logger, r *guard.Record) {
	t.Helper()
	if err := l.Record(context.Background(), r); err != nil {
		t.Fatalf("Record: %v", err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := New(&buf)
	want := fullRecord()
	record(t, l, want)

	line := buf.Bytes()
	if bytes.Count(line, []byte{'\n'}) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("want exactly one terminated line, got %q", line)
	}
	if got, tags := lineKeys(t, line), append(recordTags(), "seq", "prev"); !reflect.DeepEqual(got, tags) {
		t.Fatalf("keys = %v\nwant   %v", got, tags)
	}
	if !bytes.HasPrefix(line, []byte(`{"ts":"2025-03-04T05:06:07.123456789Z",`)) {
		t.Errorf("line does not start with the record's own ts: %s", line)
	}
	var got guard.Record
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, *want)
	}
}

func TestRecordFormat(t *testing.T) {
	t.Parallel()
	est := time.FixedZone("EST", -5*3600)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  guard.Record
		want string
	}{
		{
			name: "empty fields omitted",
			rec:  guard.Record{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Decision: guard.Allowed},
			want: `{"ts":"2025-01-02T03:04:05.000000000Z","decision":"ALLOWED"}`,
		},
		{
			name: "time converted to UTC with nanoseconds",
			rec:  guard.Record{Time: time.Date(2025, 1, 2, 3, 4, 5, 7, est), Decision: guard.AuthFailed, ClientAddr: "::1"},
			want: `{"ts":"2025-01-02T08:04:05.000000007Z","client_addr":"::1","decision":"AUTH_FAILED"}`,
		},
		{
			name: "zero time becomes now",
			rec:  guard.Record{Decision: guard.RateLimited, Subject: "bob"},
			want: `{"ts":"2030-01-01T00:00:00.000000000Z","user":"bob","decision":"RATE_LIMITED"}`,
		},
		{
			name: "decision always present",
			rec:  guard.Record{Time: now},
			want: `{"ts":"2030-01-01T00:00:00.000000000Z","decision":""}`,
		},
		{
			name: "html not escaped in args",
			rec:  guard.Record{Time: now, Decision: guard.Allowed, Args: map[string]any{"q": "<a&b>"}},
			want: `{"ts":"2030-01-01T00:00:00.000000000Z","decision":"ALLOWED","args":{"q":"<a&b>"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			l := New(&buf)
			l.opts.Now = func() time.Time { return now }
			record(t, l, &tt.rec)
			want := strings.TrimSuffix(tt.want, "}") + `,"seq":1,"prev":"` + strings.Repeat("0", 64) + `"}`
			if got := strings.TrimSuffix(buf.String(), "\n"); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// hostile strings that must neither break lines nor reach a terminal raw.
var hostile = []string{
	"bob\n{\"decision\":\"ALLOWED\",\"user\":\"admin\"}",
	"\x1b[2J",
	"a\rb",
	"\x00\x07\x08\t\v\f\x7f",
	"\u0085next line (NEL)",
	"line\u2028separator\u2029",
	"\u202eevil bidi",
	"quote\" and back\\slash",
}

func TestRecordHostileFields(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []guard.Record
	for i, s := range hostile {
		r := guard.Record{
			Time:       time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC),
			Subject:    s,
			Target:     s,
			Reason:     s,
			Error:      s,
			Roles:      []string{s},
			Decision:   guard.Denied,
			SessionID:  s,
			RequestID:  s,
			ClientAddr: s,
			Args:       map[string]any{s: s, "k": []any{s}},
		}
		record(t, l, &r)
		want = append(want, r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte{'\n'}); n != len(hostile) {
		t.Fatalf("%d lines for %d records:\n%s", n, len(hostile), data)
	}
	for i, c := range data {
		if (c < 0x20 && c != '\n') || c == 0x7f {
			t.Fatalf("raw control byte %#x at offset %d", c, i)
		}
	}
	for _, bad := range []string{"\u2028", "\u2029", "\u0085", "\u202e"} {
		if bytes.Contains(data, []byte(bad)) {
			t.Errorf("raw %q in log (breaks JavaScript-based line readers)", bad)
		}
	}
	got, skipped, err := ReadLastSkipped(path, 100, Filter{})
	if err != nil || skipped != 0 {
		t.Fatalf("ReadLast: %v, %d skipped", err, skipped)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back:\n got %+v\nwant %+v", got, want)
	}
	// The forged record is not there: the filter for admin finds nothing.
	if forged, _ := ReadLast(path, 100, Filter{User: "admin"}); len(forged) != 0 {
		t.Fatalf("forged records: %+v", forged)
	}
}

func TestRecordConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 50, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := fullRecord()
				r.RequestID = fmt.Sprintf("%d-%d", g, i)
				r.Reason = strings.Repeat("x", 1000*(i%5)) // lines of varied length
				if err := l.Record(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'})
	if len(lines) != goroutines*each {
		t.Fatalf("%d lines, want %d", len(lines), goroutines*each)
	}
	seen := make(map[string]bool)
	for _, line := range lines {
		var r guard.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("torn line %.80q: %v", line, err)
		}
		if seen[r.RequestID] {
			t.Fatalf("duplicate %s", r.RequestID)
		}
		seen[r.RequestID] = true
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRecordErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("failing writer", func(t *testing.T) {
		t.Parallel()
		err := New(failWriter{}).Record(ctx, fullRecord())
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("err = %v, want the write error", err)
		}
	})
	t.Run("closed underlying file", func(t *testing.T) {
		t.Parallel()
		f, err := os.Create(filepath.Join(t.TempDir(), "a.log"))
		if err != nil {
			t.Fatal(err)
		}
		l := New(f)
		record(t, l, fullRecord())
		_ = f.Close()
		if err := l.Record(ctx, fullRecord()); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("err = %v, want os.ErrClosed", err)
		}
	})
	t.Run("after Close", func(t *testing.T) {
		t.Parallel()
		l, err := OpenFile(filepath.Join(t.TempDir(), "a.log"))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := l.Record(ctx, fullRecord()); !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	})
	t.Run("nil record", func(t *testing.T) {
		t.Parallel()
		if err := New(io.Discard).Record(ctx, nil); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("unencodable args", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		r := fullRecord()
		r.Args = map[string]any{"f": func() {}}
		if err := New(&buf).Record(ctx, r); err == nil {
			t.Fatal("want error")
		}
		if buf.Len() != 0 {
			t.Fatalf("partial record written: %q", buf.String())
		}
	})
}

func TestOpenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, fullRecord())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %v, want 0600", perm)
	}

	// Appends, and ends a torn last line before the next record.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"ts":"2025-01-01T00:00:00Z","decis`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	l, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, fullRecord())
	_ = l.Close()
	// The torn line was cut and a recovery line written instead.
	recs, skipped, err := ReadLastSkipped(path, 10, Filter{})
	if err != nil || len(recs) != 2 || skipped != 0 {
		t.Fatalf("after torn line: %d records, %d skipped, %v; want 2, 0", len(recs), skipped, err)
	}
	rep, err := Verify([]string{path}, nil, nil)
	if err != nil || rep.Records != 2 || rep.Recoveries != 1 {
		t.Fatalf("Verify after repair: %+v, %v", rep, err)
	}

	if _, err := OpenFile(filepath.Join(dir, "missing", "a.log")); err == nil {
		t.Error("OpenFile in a missing directory: want error")
	}
	stderr, err := OpenFile("-")
	if err != nil {
		t.Fatal(err)
	}
	if err := stderr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stderr.Stat(); err != nil {
		t.Fatalf("Close closed stderr: %v", err)
	}
}

func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	r := fullRecord()
	file := func(b *testing.B) *Logger {
		l, err := OpenFile(filepath.Join(b.TempDir(), "audit.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close() })
		return l
	}
	b.Run("discard", func(b *testing.B) {
		l := New(io.Discard)
		b.ReportAllocs()
		for b.Loop() {
			if err := l.Record(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("discard-minimal", func(b *testing.B) {
		l := New(io.Discard)
		m := &guard.Record{Time: r.Time, Subject: "alice", Method: "tools/call", Target: "search", Decision: guard.Allowed}
		b.ReportAllocs()
		for b.Loop() {
			if err := l.Record(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		l := file(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := l.Record(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("file-parallel", func(b *testing.B) {
		l := file(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Record(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
