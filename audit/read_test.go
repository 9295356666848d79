package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// rec returns a record numbered i.
func rec(i int, d guard.Outcome, user, tool string) *guard.Record {
	return &guard.Record{Time: t0.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprint(i), Subject: user, Method: "tools/call", Target: tool, Decision: d}
}

// writeLog writes n records (deterministic mix) to a new log file and
// returns its path.
func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		d := guard.Allowed
		if i%3 == 0 {
			d = guard.Denied
		}
		r := rec(i, d, []string{"alice", "bob"}[i%2], []string{"read", "write", "delete"}[i%3])
		r.Reason = strings.Repeat("r", i%50) // vary line length across chunk edges
		record(t, l, r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func ids(recs []guard.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.RequestID
	}
	return out
}

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	r := rec(10, guard.Denied, "alice", "delete")
	tests := []struct {
		name string
		f    Filter
		r    *guard.Record
		want bool
	}{
		{"zero filter", Filter{}, r, true},
		{"nil record", Filter{}, nil, false},
		{"decision case-insensitive", Filter{Decision: "denied"}, r, true},
		{"decision mismatch", Filter{Decision: "ALLOWED"}, r, false},
		{"user", Filter{User: "alice"}, r, true},
		{"user is exact", Filter{User: "Alice"}, r, false},
		{"tool", Filter{Tool: "delete"}, r, true},
		{"tool mismatch", Filter{Tool: "del"}, r, false},
		{"tool needs tools/call", Filter{Tool: "delete"}, &guard.Record{Method: "prompts/get", Target: "delete"}, false},
		{"since equal", Filter{Since: r.Time}, r, true},
		{"since after", Filter{Since: r.Time.Add(time.Nanosecond)}, r, false},
		{"all", Filter{Decision: "DENIED", User: "alice", Tool: "delete", Since: t0}, r, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.f.Match(tt.r); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadLast(t *testing.T) {
	t.Parallel()
	const total = 3000 // several 64 KiB chunks
	path := writeLog(t, total)
	if st, _ := os.Stat(path); st.Size() < 3*readChunk {
		t.Fatalf("log too small (%d bytes) to cross chunks", st.Size())
	}
	tests := []struct {
		name string
		n    int
		f    Filter
		want []string
	}{
		{"last 3", 3, Filter{}, []string{"2997", "2998", "2999"}},
		{"zero", 0, Filter{}, []string{}},
		{"more than exist", total + 10, Filter{Since: t0.Add(2995 * time.Second)}, []string{"2995", "2996", "2997", "2998", "2999"}},
		{"user", 2, Filter{User: "alice"}, []string{"2996", "2998"}},
		{"decision and tool", 2, Filter{Decision: "denied", Tool: "read"}, []string{"2994", "2997"}},
		{"combined filter", 1, Filter{Since: t0, User: "alice", Tool: "read", Decision: "DENIED"}, []string{"2994"}},
		{"no match", 5, Filter{User: "mallory"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadLast(path, tt.n, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); strings.Join(g, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", g, tt.want)
			}
		})
	}
	all, err := ReadLast(path, total, Filter{})
	if err != nil || len(all) != total {
		t.Fatalf("all: %d records, %v", len(all), err)
	}
	for i, r := range all {
		if r.RequestID != fmt.Sprint(i) || r.Reason != strings.Repeat("r", i%50) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
}

func TestReadLastMalformed(t *testing.T) {
	t.Parallel()
	good := func(i int) string {
		var b bytes.Buffer
		record(t, New(&b), rec(i, guard.Allowed, "u", "t"))
		return strings.TrimSuffix(b.String(), "\n")
	}
	huge := `{"ts":"2025-01-01T00:00:00Z","decision":"ALLOWED","reason":"` + strings.Repeat("x", MaxLineBytes+10) + `"}`
	tests := []struct {
		name        string
		content     string
		wantIDs     string
		wantSkipped int
	}{
		{"empty file", "", "", 0},
		{"blank lines ignored", "\n\n" + good(1) + "\n\n", "1", 0},
		{"garbage skipped", good(1) + "\nnot json\n{\"x\":1}\n" + good(2) + "\n", "1,2", 2},
		{"no trailing newline", good(1) + "\n" + good(2), "1,2", 0},
		{"torn last line", good(1) + "\n" + good(2)[:20], "1", 1},
		{"overlong line skipped", good(1) + "\n" + huge + "\n" + good(2) + "\n", "1,2", 1},
		{"overlong first line", huge + "\n" + good(2) + "\n", "2", 1},
		{"CRLF tolerated", good(1) + "\r\n" + good(2) + "\r\n", "1,2", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "a.log")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, skipped, err := ReadLastSkipped(path, 100, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(ids(got), ","); g != tt.wantIDs || skipped != tt.wantSkipped {
				t.Errorf("got %q skipped %d, want %q skipped %d", g, skipped, tt.wantIDs, tt.wantSkipped)
			}
		})
	}
}

func TestReadLastErrors(t *testing.T) {
	t.Parallel()
	path := writeLog(t, 1)
	for _, n := range []int{-1, MaxReadLast + 1} {
		if _, err := ReadLast(path, n, Filter{}); err == nil {
			t.Errorf("n=%d: want error", n)
		}
	}
	if _, err := ReadLast(filepath.Join(t.TempDir(), "missing"), 1, Filter{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
}

// collector gathers records from Follow.
type collector struct {
	mu   sync.Mutex
	recs []string
}

func (c *collector) add(r guard.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.RequestID)
	return nil
}

func (c *collector) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := strings.Join(c.recs, ",")
		c.mu.Unlock()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("followed %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	path := writeLog(t, 5) // existing records are not replayed
	ctx, cancel := context.WithCancel(context.Background())
	var c collector
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, path, Filter{User: "alice"}, c.add) }()
	time.Sleep(100 * time.Millisecond) // let Follow reach the end of the file

	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, rec(100, guard.Allowed, "alice", "x"))
	record(t, l, rec(101, guard.Allowed, "bob", "x")) // filtered out
	c.waitFor(t, "100")

	// A line written in two pieces is delivered once complete.
	var b bytes.Buffer
	record(t, New(&b), rec(102, guard.Denied, "alice", "x"))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	half := b.Len() / 2
	if _, err := f.Write(b.Bytes()[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * followPoll)
	if _, err := f.Write(append(b.Bytes()[half:], "garbage\n"...)); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	c.waitFor(t, "100,102")

	// Truncation: the log is read again from the start.
	_ = l.Close()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * followPoll)
	l, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, rec(103, guard.Allowed, "alice", "x"))
	c.waitFor(t, "100,102,103")

	// Rotation: the new file is followed from its start.
	_ = l.Close()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, rec(104, guard.Allowed, "alice", "x"))
	_ = l.Close()
	c.waitFor(t, "100,102,103,104")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not stop when ctx was canceled")
	}
}

func TestFollowErrors(t *testing.T) {
	t.Parallel()
	if err := Follow(context.Background(), filepath.Join(t.TempDir(), "missing"), Filter{}, func(guard.Record) error { return nil }); err == nil {
		t.Error("missing file: want error")
	}
	path := writeLog(t, 0)
	stop := errors.New("stop")
	done := make(chan error, 1)
	go func() {
		done <- Follow(context.Background(), path, Filter{}, func(guard.Record) error { return stop })
	}()
	time.Sleep(100 * time.Millisecond)
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, rec(1, guard.Allowed, "a", "b"))
	_ = l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, stop) {
			t.Fatalf("err = %v, want fn's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return fn's error")
	}
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	var recs []guard.Record
	for _, s := range hostile {
		recs = append(recs, guard.Record{Time: t0, Decision: guard.Denied, Subject: s, Method: "tools/call", Target: s, Reason: s, Error: s})
	}
	recs = append(recs,
		guard.Record{Time: t0, Decision: guard.Allowed, Subject: "名前", Target: "café"},
		guard.Record{Decision: guard.Allowed, Reason: strings.Repeat("y", 1000), Subject: "bad\xffutf8"},
	)
	var buf bytes.Buffer
	if err := WriteTable(&buf, recs); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, "\n"); n != len(recs)+1 {
		t.Fatalf("%d lines for %d records + header:\n%s", n, len(recs), out)
	}
	for i, r := range out {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e || r == 0x2028 || r == 0xfffd) {
			t.Fatalf("unsafe character %U at %d in:\n%s", r, i, out)
		}
	}
	for _, want := range []string{
		"TIME", "REASON", "2025-06-01T12:00:00.000Z",
		`bob\x0a{"decision":"ALLOWED","user":"admin"}`, `\x1b[2J`, `a\x0db`, `\u0085`, `\u202e`, `\u2028`,
		"名前", "café", `bad\xffutf8`, "…", "error: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, strings.Repeat("y", maxCellRunes+1)) {
		t.Error("long cell not truncated")
	}
}

func TestEscapeWriter(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"a":"plain"}`, `{"a":"plain"}`},
		{"{\"a\":\"\x7f\"}", `{"a":"\u007f"}`},
		{"{\"a\":\"\u009b31m\"}", `{"a":"\u009b31m"}`},
		{"{\"a\":\"x\u202ey\u2066\"}", `{"a":"x\u202ey\u2066"}`},
		{`{"a":"日本 é ✓"}`, `{"a":"日本 é ✓"}`},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := &escapeWriter{w: &buf}
		n, err := w.Write([]byte(tt.in))
		if err != nil || n != len(tt.in) {
			t.Fatalf("Write(%q) = %d, %v", tt.in, n, err)
		}
		if buf.String() != tt.want {
			t.Errorf("Write(%q) wrote %q, want %q", tt.in, buf.String(), tt.want)
		}
	}
}
