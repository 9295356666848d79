package auditstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/auditstore"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSinkWritesRecords(t *testing.T) {
	s := openStore(t)
	sink := auditstore.NewSink(s)
	ts := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	in := &guard.Record{Time: ts, Subject: "bob", Method: "tools/call", Target: "drop_table", Decision: guard.Denied, Roles: []string{"viewer"}}
	if err := sink.Record(context.Background(), in); err != nil {
		t.Fatalf("Record: %v", err)
	}
	recs, err := s.QueryAudit(context.Background(), store.AuditQuery{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !recs[0].Time.Equal(ts) || recs[0].Target != "drop_table" || recs[0].Decision != guard.Denied || len(recs[0].Roles) != 1 {
		t.Fatalf("stored %+v", recs)
	}
}

func TestSinkStampsTimeWithoutModifyingRecord(t *testing.T) {
	s := openStore(t)
	sink := auditstore.NewSink(s)
	in := &guard.Record{Decision: guard.Allowed, Subject: "a"}
	before := time.Now()
	if err := sink.Record(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if !in.Time.IsZero() {
		t.Fatal("Record modified its argument")
	}
	recs, err := s.QueryAudit(context.Background(), store.AuditQuery{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("QueryAudit = %v, %v", recs, err)
	}
	if recs[0].Time.Before(before) || recs[0].Time.After(time.Now()) {
		t.Fatalf("stamped time %v outside the call", recs[0].Time)
	}
}

func TestSinkWritesDespiteCancelledRequest(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client hung up; its refusal must still be audited
	if err := auditstore.NewSink(s).Record(ctx, &guard.Record{Time: time.Now(), Decision: guard.AuthFailed}); err != nil {
		t.Fatalf("Record with a cancelled context: %v", err)
	}
	recs, err := s.QueryAudit(context.Background(), store.AuditQuery{Decision: "AUTH_FAILED"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("QueryAudit = %d records, %v", len(recs), err)
	}
}

func TestSinkFailsClosed(t *testing.T) {
	s := openStore(t)
	sink := auditstore.NewSink(s)
	if err := sink.Record(context.Background(), nil); err == nil {
		t.Error("Record(nil) succeeded")
	}
	if err := sink.Record(context.Background(), &guard.Record{Time: time.Now()}); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("Record without a decision: %v, want ErrInvalidRecord", err)
	}
	s.Close()
	if err := sink.Record(context.Background(), &guard.Record{Time: time.Now(), Decision: guard.Allowed}); err == nil {
		t.Error("Record on a closed store succeeded")
	}
}

type sinkFunc func(context.Context, *guard.Record) error

func (f sinkFunc) Record(ctx context.Context, r *guard.Record) error { return f(ctx, r) }

func TestTee(t *testing.T) {
	var calls []string
	boom := errors.New("disk full")
	ok := sinkFunc(func(context.Context, *guard.Record) error { calls = append(calls, "ok"); return nil })
	bad := sinkFunc(func(context.Context, *guard.Record) error { calls = append(calls, "bad"); return boom })

	if err := auditstore.Tee(ok, nil, ok).Record(context.Background(), &guard.Record{}); err != nil {
		t.Fatalf("Tee of healthy sinks: %v", err)
	}
	if len(calls) != 2 {
		t.Fatalf("calls = %v, want both sinks once", calls)
	}
	calls = nil
	err := auditstore.Tee(bad, ok).Record(context.Background(), &guard.Record{})
	if !errors.Is(err, boom) {
		t.Fatalf("Tee error = %v, want the failing sink's error", err)
	}
	if len(calls) != 2 || calls[1] != "ok" {
		t.Fatalf("calls = %v: a failing sink must not stop the others", calls)
	}
}

func TestWriteJSONLines(t *testing.T) {
	recs := []guard.Record{
		{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Subject: "evil\n{\"decision\":\"ALLOWED\"}", Decision: guard.Denied, Args: map[string]any{"q": "<b>"}},
		{Time: time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC), Subject: "ok", Decision: guard.Allowed},
	}
	var buf bytes.Buffer
	if err := auditstore.WriteJSONLines(&buf, recs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want one per record: %q", len(lines), buf.String())
	}
	for i, line := range lines {
		var got guard.Record
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if got.Subject != recs[i].Subject || got.Decision != recs[i].Decision || !got.Time.Equal(recs[i].Time) {
			t.Fatalf("line %d = %+v, want %+v", i, got, recs[i])
		}
	}
	if !strings.Contains(lines[0], `"args":{"q":"<b>"}`) || !strings.Contains(lines[0], `"user":"evil\n`) {
		t.Fatalf("line 0 = %s: want the log file's field names, no HTML escaping", lines[0])
	}
}
