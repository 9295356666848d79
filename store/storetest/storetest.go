// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a constructor for a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/store"
)

// Run runs the conformance suite. open must return a new, empty store; the
// suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

	t.Run("APIKeyRoundTrip", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		want := &store.APIKey{ID: "0123456789abcdef", Name: "alice", Hash: []byte{1, 2, 3},
			Roles: []string{"admin", "viewer"}, Scopes: []string{"db:read"},
			CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := s.CreateAPIKey(ctx, want); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		got, err := s.GetAPIKey(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetAPIKey: %v", err)
		}
		if got.ID != want.ID || got.Name != want.Name || !bytes.Equal(got.Hash, want.Hash) ||
			!slices.Equal(got.Roles, want.Roles) || !slices.Equal(got.Scopes, want.Scopes) ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
			!got.LastUsedAt.IsZero() || got.Revoked() {
			t.Fatalf("GetAPIKey = %+v, want %+v", got, want)
		}
		if err := s.CreateAPIKey(ctx, want); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate CreateAPIKey error = %v, want ErrExists", err)
		}
		if _, err := s.GetAPIKey(ctx, "ffffffffffffffff"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetAPIKey(unknown) error = %v, want ErrNotFound", err)
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		for i := range 3 {
			k := &store.APIKey{ID: fmt.Sprintf("%016x", i), Name: fmt.Sprint("k", i), Hash: []byte{byte(i)}, CreatedAt: base.Add(time.Duration(i) * time.Minute)}
			if err := s.CreateAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range keys {
			names = append(names, k.Name)
		}
		if !slices.Equal(names, []string{"k2", "k1", "k0"}) {
			t.Fatalf("ListAPIKeys names = %v, want newest first", names)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		k := &store.APIKey{ID: "00000000000000aa", Name: "bob", Hash: []byte{9}, CreatedAt: base}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeAPIKey(ctx, k.ID, base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeAPIKey(ctx, k.ID, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.RevokedAt.Equal(base.Add(time.Minute)) {
			t.Fatalf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, base.Add(time.Minute))
		}
		if err := s.RevokeAPIKey(ctx, "ffffffffffffffff", base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeAPIKey(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("TouchBatch", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		for _, id := range []string{"000000000000000a", "000000000000000b"} {
			if err := s.CreateAPIKey(ctx, &store.APIKey{ID: id, Name: id, Hash: []byte{1}, CreatedAt: base}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{
			"000000000000000a": base.Add(2 * time.Hour),
			"000000000000000b": base.Add(time.Hour),
			"ffffffffffffffff": base, // unknown: ignored
		}); err != nil {
			t.Fatal(err)
		}
		// An older time never moves last-used backwards.
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{"000000000000000a": base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		a, _ := s.GetAPIKey(ctx, "000000000000000a")
		b, _ := s.GetAPIKey(ctx, "000000000000000b")
		if !a.LastUsedAt.Equal(base.Add(2*time.Hour)) || !b.LastUsedAt.Equal(base.Add(time.Hour)) {
			t.Fatalf("LastUsedAt = %v, %v", a.LastUsedAt, b.LastUsedAt)
		}
	})

	t.Run("TokenRevocation", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		if revoked, err := s.TokenRevoked(ctx, "jti-1"); err != nil || revoked {
			t.Fatalf("TokenRevoked before revoke = %v, %v", revoked, err)
		}
		if err := s.RevokeToken(ctx, "jti-1", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, "jti-1", time.Now().Add(2*time.Hour)); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if revoked, err := s.TokenRevoked(ctx, "jti-1"); err != nil || !revoked {
			t.Fatalf("TokenRevoked after revoke = %v, %v", revoked, err)
		}
		if revoked, _ := s.TokenRevoked(ctx, "jti-2"); revoked {
			t.Fatal("unrelated jti reported revoked")
		}
	})

	t.Run("ConcurrentCreates", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() {
				errs <- s.CreateAPIKey(ctx, &store.APIKey{ID: fmt.Sprintf("%016x", i%20), Name: "c", Hash: []byte{1}, CreatedAt: base})
			})
		}
		wg.Wait()
		close(errs)
		var ok, exists int
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrExists):
				exists++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 20 || exists != 20 {
			t.Fatalf("created %d, duplicates %d; want 20 and 20", ok, exists)
		}
	})
}
