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
		if err := r.Use(ctx, "s1", guard.SessionOwner(alice)); err != nil {
			t.Fatalf("Use after %v: %v", clock, err)
		}
	}
	// ...but not past its absolute lifetime.
	clock = clock.Add(16 * time.Minute) // 61 minutes after opening
	if err := r.Use(ctx, "s1", guard.SessionOwner(alice)); !errors.Is(err, guard.ErrSessionNotFound) {
		t.Fatalf("after the TTL: %v", err)
	}
	// Idle too long.
	if err := r.Open(ctx, "s2", alice); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(11 * time.Minute)
	if err := r.Use(ctx, "s2", guard.SessionOwner(alice)); !errors.Is(err, guard.ErrSessionNotFound) {
		t.Fatalf("idle session: %v", err)
	}
	// Close ends a session; closing an unknown one is not an error.
	if err := r.Open(ctx, "s3", alice); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx, "s3"); err != nil {
		t.Fatal(err)
	}
	if err := r.Use(ctx, "s3", guard.SessionOwner(alice)); !errors.Is(err, guard.ErrSessionNotFound) {
		t.Fatalf("closed session: %v", err)
	}
	if err := r.Close(ctx, "nope"); err != nil {
		t.Fatal(err)
	}
	// The same subject through another client is another owner.
	other := *alice
	other.ClientID = "c2"
	if err := r.Open(ctx, "s4", alice); err != nil {
		t.Fatal(err)
	}
	if err := r.Use(ctx, "s4", guard.SessionOwner(&other)); !errors.Is(err, guard.ErrSessionOwner) {
		t.Fatalf("same subject, other client: %v, want ErrSessionOwner", err)
	}
	bob := &guard.Principal{Method: guard.MethodOAuth, Issuer: "https://as", Subject: "bob", ClientID: "c1"}
	if err := r.Use(ctx, "s4", guard.SessionOwner(bob)); !errors.Is(err, guard.ErrSessionOwner) {
		t.Fatalf("other subject: %v, want ErrSessionOwner", err)
	}
	if err := r.Use(ctx, "s4", guard.SessionOwner(alice)); err != nil {
		t.Fatalf("owner: %v", err)
	}
}

// BenchmarkUse is the per-request cost of the session check (a store
// read; a write at most once a second per session).
func BenchmarkUse(b *testing.B) {
	ctx := context.Background()
	clock := time.Now()
	r := open(b, session.Policy{TTL: time.Hour, Idle: 30 * time.Minute}, &clock)
	p := &guard.Principal{Method: guard.MethodAPIKey, Issuer: "mcpguard", Subject: "alice"}
	id := guard.NewSessionID()
	if err := r.Open(ctx, id, p); err != nil {
		b.Fatal(err)
	}
	owner := guard.SessionOwner(p)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Use(ctx, id, owner); err != nil {
			b.Fatal(err)
		}
	}
}
