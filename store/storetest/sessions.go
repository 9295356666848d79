package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/store"
)

// RunSessions runs the conformance suite of store.SessionStore. open must
// return an empty store.
func RunSessions(t *testing.T, open func(t *testing.T) store.SessionStore) {
	ctx := context.Background()
	base := time.Date(2026, 7, 28, 10, 0, 0, 0, time.UTC)
	mk := func(id, owner, subject string, at time.Time) *store.Session {
		return &store.Session{ID: id, Owner: owner, Subject: subject, ClientID: "c1", CreatedAt: at, LastSeen: at, ExpiresAt: at.Add(time.Hour)}
	}
	ids := func(l []*store.Session) []string {
		var out []string
		for _, s := range l {
			out = append(out, s.ID)
		}
		return out
	}

	t.Run("RoundTripAndTouch", func(t *testing.T) {
		s := open(t)
		want := mk("s1", "api_key:mcpguard:alice", "alice", base)
		if _, err := s.CreateSession(ctx, want, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSession(ctx, mk("s1", "x", "bob", base), 0); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate id: %v, want ErrExists", err)
		}
		got, err := s.GetSession(ctx, "s1")
		if err != nil || got.Owner != want.Owner || got.Subject != "alice" || got.ClientID != "c1" ||
			!got.CreatedAt.Equal(base) || !got.ExpiresAt.Equal(base.Add(time.Hour)) || !got.LastSeen.Equal(base) || !got.RevokedAt.IsZero() {
			t.Fatalf("GetSession = %+v, %v", got, err)
		}
		if err := s.TouchSession(ctx, "s1", base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchSession(ctx, "s1", base.Add(time.Second)); err != nil { // older: ignored
			t.Fatal(err)
		}
		got, _ = s.GetSession(ctx, "s1")
		if !got.LastSeen.Equal(base.Add(time.Minute)) {
			t.Fatalf("LastSeen = %v", got.LastSeen)
		}
		if _, err := s.GetSession(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetSession(unknown) = %v", err)
		}
		if err := s.TouchSession(ctx, "nope", base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TouchSession(unknown) = %v", err)
		}
		if !got.Live(base.Add(2*time.Minute), 5*time.Minute) || got.Live(base.Add(7*time.Minute), 5*time.Minute) || got.Live(base.Add(time.Hour), 0) {
			t.Fatal("Live does not apply the inactivity timeout and the absolute end")
		}
	})

	t.Run("EvictOldestBeyondCap", func(t *testing.T) {
		s := open(t)
		for i, id := range []string{"a", "b", "c"} {
			ev, err := s.CreateSession(ctx, mk(id, "o", "alice", base.Add(time.Duration(i)*time.Second)), 2)
			if err != nil || len(ev) != 0 {
				if i < 2 {
					t.Fatalf("create %s: %v %v", id, ev, err)
				}
				if !slices.Equal(ev, []string{"a"}) {
					t.Fatalf("third session evicted %v, want [a]", ev)
				}
			}
		}
		if _, err := s.CreateSession(ctx, mk("other", "o2", "bob", base), 2); err != nil {
			t.Fatal(err)
		}
		live, err := s.ListSessions(ctx, "alice", base.Add(time.Minute))
		if err != nil || !slices.Equal(ids(live), []string{"c", "b"}) {
			t.Fatalf("ListSessions(alice) = %v %v, want [c b]", ids(live), err)
		}
		a, _ := s.GetSession(ctx, "a")
		if a.RevokedAt.IsZero() {
			t.Fatal("evicted session not marked revoked")
		}
		all, _ := s.ListSessions(ctx, "", base.Add(time.Minute))
		if len(all) != 3 {
			t.Fatalf("ListSessions(all) = %v", ids(all))
		}
		if l, _ := s.ListSessions(ctx, "", base.Add(2*time.Hour)); len(l) != 0 {
			t.Fatalf("expired sessions listed: %v", ids(l))
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		for _, sess := range []*store.Session{mk("a1", "o", "alice", base), mk("a2", "o", "alice", base.Add(time.Second)), mk("b1", "p", "bob", base)} {
			if _, err := s.CreateSession(ctx, sess, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RevokeSession(ctx, "b1", base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(ctx, "b1", base.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.GetSession(ctx, "b1"); !b.RevokedAt.Equal(base.Add(time.Minute)) {
			t.Fatalf("second revocation moved RevokedAt to %v", b.RevokedAt)
		}
		if err := s.RevokeSession(ctx, "zz", base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeSession(unknown) = %v", err)
		}
		n, err := s.RevokeSessions(ctx, "alice", base.Add(time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("RevokeSessions(alice) = %d %v, want 2", n, err)
		}
		if l, _ := s.ListSessions(ctx, "", base.Add(2*time.Minute)); len(l) != 0 {
			t.Fatalf("revoked sessions listed: %v", ids(l))
		}
		n, err = s.PurgeSessions(ctx, base.Add(90*time.Second))
		if err != nil || n != 3 {
			t.Fatalf("PurgeSessions = %d %v, want 3", n, err)
		}
		if _, err := s.GetSession(ctx, "a1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("purged session still there: %v", err)
		}
	})
}
