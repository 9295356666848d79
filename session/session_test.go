package session_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/session"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

func open(t testing.TB, p session.Policy, clock *time.Time) *session.Registry {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := session.New(st, p, func() time.Time { return *clock })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPolicy(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 7, 28, 9, 0, 0, 0, time.UTC)
	r := open(t, session.Policy{TTL: time.Hour, Idle: 10 * time.Minute, MaxPerPrincipal: 2}, &clock)
	alice := &guard.Principal{Method: guard.MethodOAuth, Issuer: "https://as", Subject: "alice", ClientID: "c1"}
	if err := r.Open(ctx, "s1", alice); err != nil {
		t.Fatal(err)
	}
	// Active use keeps the session past the inactivity timeout...
	for range 5 {
		clock = clock.Add(9 * time.Minute)
		owner, err := r.Owner(ctx, "s1")
		if err != nil || owner != guard.SessionOwner(alice) {
			t.Fatalf("Owner after %v: %q %v", clock, owner, err)
		}
	}
	// ...but not past its absolute lifetime.
	clock = clock.Add(16 * time.Minute) // 61 minutes after opening
	if _, err := r.Owner(ctx, "s1"); !errors.Is(err, guard.ErrSessionNotFound) {
		t.Fatalf("after the TTL: %v", err)
	}
	// Idle too long.
	if err := r.Open(ctx, "s2", alice); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(11 * time.Minute)
	if _, err := r.Owner(ctx, "s2"); !errors.Is(err, guard.ErrSessionNotFound) {
		t.Fatalf("idle session: %v", err)
	}
	// Close ends a session; closing an unknown one is not an error.
	if err := r.Open(ctx, "s3", alice); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx, "s3"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Owner(ctx, "s3"); !errors.Is(err, guard.ErrSessionNotFound) {
		t.Fatalf("closed session: %v", err)
	}
	if err := r.Close(ctx, "nope"); err != nil {
		t.Fatal(err)
	}
	// The same subject through another client is another owner.
	other := *alice
	other.ClientID = "c2"
	if guard.SessionOwner(&other) == guard.SessionOwner(alice) {
		t.Fatal("the client is not part of the binding")
	}
}

// BenchmarkOwner is the per-request cost of the session check (a store
// read; a write at most once a second per session).
func BenchmarkOwner(b *testing.B) {
	ctx := context.Background()
	clock := time.Now()
	r := open(b, session.Policy{TTL: time.Hour, Idle: 30 * time.Minute}, &clock)
	p := &guard.Principal{Method: guard.MethodAPIKey, Issuer: "mcpguard", Subject: "alice"}
	id := guard.NewSessionID()
	if err := r.Open(ctx, id, p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Owner(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
