package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/internal/servicetest"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/postgres"
	"github.com/mcpguard/mcpguard/store/storetest"
)

func open(t *testing.T) *postgres.Store {
	s, err := postgres.Open(context.Background(), servicetest.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestOAuthConformance(t *testing.T) {
	storetest.RunOAuth(t, func(t *testing.T) store.OAuthStore {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSecretsConformance(t *testing.T) {
	storetest.RunSecrets(t, func(t *testing.T) store.SecretStore {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestToolPinsConformance(t *testing.T) {
	storetest.RunToolPins(t, func(t *testing.T) store.ToolPinStore {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestUpstreamStatusConformance(t *testing.T) {
	storetest.RunUpstreamStatus(t, func(t *testing.T) store.UpstreamStatusStore {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSessionsConformance(t *testing.T) {
	storetest.RunSessions(t, func(t *testing.T) store.SessionStore {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Replicas starting at once against an empty database: the advisory lock
// makes exactly one apply each migration, and all of them come up.
func TestConcurrentMigrations(t *testing.T) {
	url := servicetest.PostgresSchema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	stores := make([]*postgres.Store, len(errs))
	for i := range errs {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	v, err := stores[0].SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v == 0 {
		t.Fatal("no migration recorded")
	}
	// Reopening applies nothing twice and keeps the data.
	if err := stores[1].CreateAPIKey(ctx, &store.APIKey{ID: "0000000000000001", Name: "a", Hash: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	again, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.GetAPIKey(ctx, "0000000000000001"); err != nil {
		t.Fatalf("key lost across reopen: %v", err)
	}
}

func TestInvalidURLHidesIt(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:s3cret@[::1:5432/db")
	if err == nil {
		t.Fatal("Open accepted a malformed URL")
	}
	if got := err.Error(); contains(got, "s3cret") {
		t.Fatalf("error leaks the password: %s", got)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// A revocation committed through one store (another replica, the CLI) is
// announced to every store watching the same database.
func TestWatchRevocations(t *testing.T) {
	url := servicetest.PostgresSchema(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	heard := make(chan struct{}, 16)
	go b.WatchRevocations(ctx, func() { heard <- struct{}{} })
	select { // the first call: listening started
	case <-heard:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchRevocations did not start")
	}
	if err := a.CreateAPIKey(ctx, &store.APIKey{ID: "00000000000000ff", Name: "k", Hash: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-heard:
		t.Fatal("a key creation was announced as a revocation")
	case <-time.After(200 * time.Millisecond):
	}
	for name, revoke := range map[string]func() error{
		"key":     func() error { return a.RevokeAPIKey(ctx, "00000000000000ff", time.Now()) },
		"token":   func() error { return a.RevokeToken(ctx, "jti-1", time.Now().Add(time.Hour)) },
		"refresh": func() error { return a.RevokeRefreshFamily(ctx, "fam", time.Now()) },
	} {
		start := time.Now()
		if err := revoke(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-heard:
			t.Logf("%s revocation heard after %v", name, time.Since(start))
		case <-time.After(time.Second):
			t.Fatalf("%s revocation not announced within 1s", name)
		}
	}
	// A failed revocation (unknown key) announces nothing.
	if err := a.RevokeAPIKey(ctx, "0000000000000000", time.Now()); err == nil {
		t.Fatal("revoking an unknown key succeeded")
	}
	select {
	case <-heard:
		t.Fatal("a rolled-back revocation was announced")
	case <-time.After(200 * time.Millisecond):
	}
}
