package apikey_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

func openStore(t testing.TB) store.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestGenerateParse(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		key, id, err := apikey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != apikey.KeyLen || !strings.HasPrefix(key, "mcp_"+id+"_") {
			t.Fatalf("key %q has the wrong shape", key)
		}
		got, err := apikey.Parse(key)
		if err != nil || got != id {
			t.Fatalf("Parse(%q) = %q, %v; want %q", key, got, err, id)
		}
		if seen[key] {
			t.Fatal("duplicate key generated")
		}
		seen[key] = true
	}
	good, _, _ := apikey.Generate()
	for _, bad := range []string{
		"", "mcp_", good[:len(good)-1], good + "x",
		"xcp_" + good[4:],
		"mcp_0123456789ABCDEF_" + good[21:],                      // upper-case id
		"mcp_0123456789abcdef-" + good[21:],                      // wrong separator
		good[:len(good)-1] + "=",                                 // padding is not base64url-raw
		"mcp_0123456789abcdef_" + strings.Repeat("a", 42) + "\n", // control char
	} {
		if _, err := apikey.Parse(bad); !errors.Is(err, apikey.ErrMalformed) {
			t.Errorf("Parse(%q) error = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := apikey.New(s, clock)

	valid, rec, err := apikey.Create(ctx, s, apikey.CreateOptions{Name: "dev", Roles: []string{"developer"}, Scopes: []string{"db:read"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	expired, _, _ := apikey.Create(ctx, s, apikey.CreateOptions{Name: "old", Roles: []string{"viewer"}, TTL: time.Hour, Now: now.Add(-2 * time.Hour)})
	revoked, revRec, _ := apikey.Create(ctx, s, apikey.CreateOptions{Name: "gone", Roles: []string{"admin"}, Now: now})
	if err := s.RevokeAPIKey(ctx, revRec.ID, now); err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := apikey.Generate()
	wrongSecret := valid[:len(valid)-4] + "AAAA"
	if wrongSecret == valid {
		wrongSecret = valid[:len(valid)-4] + "BBBB"
	}

	p, err := a.Authenticate(ctx, guard.Credential{Kind: guard.APIKeyHeader, Secret: valid})
	if err != nil {
		t.Fatalf("valid key refused: %v", err)
	}
	if p.Subject != "dev" || p.KeyID != rec.ID || p.Method != guard.MethodAPIKey || !p.HasRole("developer") || p.Scopes[0] != "db:read" {
		t.Fatalf("principal = %+v", p)
	}

	for name, tc := range map[string]struct{ key, reason string }{
		"expired":      {expired, "expired"},
		"revoked":      {revoked, "revoked"},
		"unknown":      {unknown, "unknown key id"},
		"wrong secret": {wrongSecret, "wrong secret"},
		"malformed":    {"mcp_nope", "malformed"},
	} {
		_, err := a.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: tc.key})
		if !errors.Is(err, guard.ErrInvalidCredentials) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error = %v, want ErrInvalidCredentials mentioning %q", name, err, tc.reason)
		}
		if err != nil && len(tc.key) > 20 && strings.Contains(err.Error(), tc.key[21:]) {
			t.Errorf("%s: error leaks the secret: %v", name, err)
		}
	}
}

func TestLastUsedBatched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a := apikey.New(s, func() time.Time { return now })
	key, rec, _ := apikey.Create(ctx, s, apikey.CreateOptions{Name: "k", Now: now})
	for range 10 {
		if _, err := a.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: key}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.GetAPIKey(ctx, rec.ID)
	if !got.LastUsedAt.IsZero() {
		t.Fatal("last-used written per request; want batched")
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetAPIKey(ctx, rec.ID)
	if !got.LastUsedAt.Equal(now) {
		t.Fatalf("LastUsedAt = %v after flush, want %v", got.LastUsedAt, now)
	}
}

// BenchmarkAuthenticate measures a verification that reads the store: the
// cache is disabled. BenchmarkAuthenticateCached measures a cache hit.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	a := apikey.NewWithOptions(s, apikey.Options{CacheSize: -1})
	key, _, err := apikey.Create(ctx, s, apikey.CreateOptions{Name: "bench", Roles: []string{"viewer"}})
	if err != nil {
		b.Fatal(err)
	}
	cred := guard.Credential{Kind: guard.Bearer, Secret: key}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}

// A rotated key's old secret works, marked, until the grace ends; the new
// secret works at once.
func TestRotateWithGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a := apikey.NewWithOptions(s, apikey.Options{Now: func() time.Time { return now }, RevocationRecheck: -1})
	old, rec, err := apikey.Create(ctx, s, apikey.CreateOptions{Name: "svc", Roles: []string{"viewer"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	auth := func(key string) (*guard.Principal, error) {
		return a.Authenticate(ctx, guard.Credential{Kind: guard.Bearer, Secret: key})
	}
	if _, err := auth(old); err != nil {
		t.Fatal(err)
	}
	fresh, err := apikey.Rotate(ctx, s, rec.ID, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := apikey.Parse(fresh); id != rec.ID || fresh == old {
		t.Fatalf("rotated key %q does not keep the id %s", fresh, rec.ID)
	}
	p, err := auth(fresh)
	if err != nil || p.PreviousSecret {
		t.Fatalf("new secret: %+v %v", p, err)
	}
	p, err = auth(old)
	if err != nil || !p.PreviousSecret || !p.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("old secret in grace: %+v %v", p, err)
	}
	now = now.Add(time.Hour)
	if _, err := auth(old); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("old secret after the grace: %v", err)
	}
	if _, err := auth(fresh); err != nil {
		t.Fatalf("new secret after the grace: %v", err)
	}
	// Without grace, the old secret stops at once.
	newer, err := apikey.Rotate(ctx, s, rec.ID, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth(fresh); !errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("secret rotated without grace still works: %v", err)
	}
	if _, err := auth(newer); err != nil {
		t.Fatal(err)
	}
	if _, err := apikey.Rotate(ctx, s, "ffffffffffffffff", time.Hour, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotate unknown: %v", err)
	}
}
