package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/secrets"
)

// With a master key, the signing keys' private halves and TOTP secrets are
// sealed in the database, read transparently, sealed anew (or for the
// first time, if stored in clear) by rotate-master, and refused with a
// clear error under a wrong key.
func TestOAuthSecretsSealedAtRest(t *testing.T) {
	ctx := context.Background()
	cfg := cfgIn(t.TempDir())
	_, oldHex, _ := secrets.NewMasterKey()
	_, newHex, _ := secrets.NewMasterKey()
	env := func(vars ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k == "MCPGUARD_MASTER_KEY" && len(vars) > 0 {
				return vars[0], true
			}
			return "", false
		}
	}
	var out bytes.Buffer
	// A signing key and a user created before any master key: in clear.
	raw, err := OpenStore(ctx, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	mustServerAt(t, raw, time.Now())
	raw.Close()
	if err := UsersAdd(ctx, &out, UserOptions{DataDir: cfg.DataDir, Name: "ann@example.com", Roles: []string{"admin"}, Password: "long enough password"}); err != nil {
		t.Fatal(err)
	}
	// Enrolled with the master key: the TOTP secret is sealed.
	if err := UsersMFAEnroll(ctx, &out, cfg, env(oldHex), "ann@example.com", "mcpguard"); err != nil {
		t.Fatal(err)
	}
	raw, _ = OpenStore(ctx, cfg.DataDir)
	u, _ := raw.GetUser(ctx, "ann@example.com")
	keys, _ := raw.ListSigningKeys(ctx)
	if !secrets.IsSealedField(u.MFASecret) || secrets.IsSealedField(keys[0].PrivateKeyPEM) {
		t.Fatalf("before rotation: TOTP sealed=%v, legacy signing key sealed=%v", secrets.IsSealedField(u.MFASecret), secrets.IsSealedField(keys[0].PrivateKeyPEM))
	}
	raw.Close()
	sealed, err := openStoreFor(ctx, cfg, env(oldHex))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := sealed.GetUser(ctx, "ann@example.com"); err != nil || len(u.MFASecret) != 20 {
		t.Fatalf("sealed read: %v", err)
	}
	if keys, err := sealed.ListSigningKeys(ctx); err != nil || !strings.Contains(string(keys[0].PrivateKeyPEM), "PRIVATE KEY") {
		t.Fatalf("legacy key read: %v", err)
	}
	// A new signing key is sealed when created.
	mustServerAt(t, sealed, time.Now())
	if err := KeysRotateSigning(ctx, &out, cfg, env(oldHex), time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	sealed.Close()

	if err := SecretsRotateMaster(ctx, &out, cfg, env(oldHex), []byte(newHex)); err != nil {
		t.Fatal(err)
	}
	raw, _ = OpenStore(ctx, cfg.DataDir)
	keys, _ = raw.ListSigningKeys(ctx)
	for _, k := range keys {
		if !secrets.IsSealedField(k.PrivateKeyPEM) || bytes.Contains(k.PrivateKeyPEM, []byte("PRIVATE KEY")) {
			t.Fatalf("signing key %s not sealed after rotate-master", k.ID)
		}
	}
	raw.Close()
	fresh, err := openStoreFor(ctx, cfg, env(newHex))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.ListSigningKeys(ctx); err != nil {
		t.Fatalf("new master key: %v", err)
	}
	if u, err := fresh.GetUser(ctx, "ann@example.com"); err != nil || len(u.MFASecret) != 20 {
		t.Fatalf("new master key, user: %v", err)
	}
	fresh.Close()
	stale, _ := openStoreFor(ctx, cfg, env(oldHex))
	defer stale.Close()
	if _, err := stale.ListSigningKeys(ctx); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("old master key after rotation: %v", err)
	}
}
