package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/sqlite"
	"github.com/mcpguard/mcpguard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFilePermissionsAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "mcpguard.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(ctx, &store.APIKey{ID: "0000000000000001", Name: "a", Hash: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// Reopening applies no migration twice and keeps the data.
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.GetAPIKey(ctx, "0000000000000001"); err != nil {
		t.Fatalf("key lost across reopen: %v", err)
	}
}

func TestOAuthConformance(t *testing.T) {
	storetest.RunOAuth(t, func(t *testing.T) store.OAuthStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSecretsConformance(t *testing.T) {
	storetest.RunSecrets(t, func(t *testing.T) store.SecretStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestToolPinConformance(t *testing.T) {
	storetest.RunToolPins(t, func(t *testing.T) store.ToolPinStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestUpstreamStatusConformance(t *testing.T) {
	storetest.RunUpstreamStatus(t, func(t *testing.T) store.UpstreamStatusStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSessionsConformance(t *testing.T) {
	storetest.RunSessions(t, func(t *testing.T) store.SessionStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
