package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/secrets"
	"github.com/mcpguard/mcpguard/store"
)

// sealingStore seals the secrets that the OAuth tables hold, the signing
// keys' private halves and users' TOTP secrets, with the secret store's
// master key, so that a copy of the database alone reveals none of them.
// Values stored in clear before a master key was configured are still
// read, and sealed by the next `mcpguard secrets rotate-master`.
type sealingStore struct {
	store.Store
	ring *secrets.Keyring
}

func signingKeyField(id string) string { return "oauth-signing-key." + id }

// totpField names a user's TOTP secret; user names may hold characters a
// secret name cannot, so the name is a digest of it.
func totpField(user string) string {
	sum := sha256.Sum256([]byte(user))
	return "totp." + hex.EncodeToString(sum[:16])
}

// openStoreFor opens the store in cfg's data directory, sealing OAuth
// secrets when a master key is configured. Without one (the default
// env:MCPGUARD_MASTER_KEY unset) they are kept in clear, as the demo does.
func openStoreFor(ctx context.Context, cfg *config.Config, env func(string) (string, bool)) (store.Store, error) {
	if isPostgres(cfg.StoreLocation()) {
		// The store is elsewhere, but key files (audit, OAuth sessions)
		// still live in data_dir.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	st, err := OpenStore(ctx, cfg.StoreLocation())
	if err != nil {
		return nil, err
	}
	sealed, err := sealStore(cfg, env, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return sealed, nil
}

// sealStore wraps st in a sealingStore when a master key is configured.
func sealStore(cfg *config.Config, env func(string) (string, bool), st store.Store) (store.Store, error) {
	ref := string(cfg.Secrets.MasterKey)
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		if v, set := lookup(env, name); !set || v == "" {
			return st, nil
		}
	}
	ring, err := keyring(cfg, env)
	if err != nil {
		return nil, err
	}
	return &sealingStore{Store: st, ring: ring}, nil
}

func lookup(env func(string) (string, bool), name string) (string, bool) {
	if env == nil {
		env = os.LookupEnv // as config references do
	}
	return env(name)
}

// CreateSigningKey seals the private key.
func (s *sealingStore) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	sealed, err := s.ring.SealField(signingKeyField(k.ID), k.PrivateKeyPEM)
	if err != nil {
		return err
	}
	c := *k
	c.PrivateKeyPEM = sealed
	return s.Store.CreateSigningKey(ctx, &c)
}

// ListSigningKeys opens the private keys.
func (s *sealingStore) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	keys, err := s.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.PrivateKeyPEM, err = s.ring.OpenField(signingKeyField(k.ID), k.PrivateKeyPEM); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
	}
	return keys, nil
}

func (s *sealingStore) sealUser(u *store.User) (*store.User, error) {
	if len(u.MFASecret) == 0 {
		return u, nil
	}
	sealed, err := s.ring.SealField(totpField(u.Name), u.MFASecret)
	if err != nil {
		return nil, err
	}
	c := *u
	c.MFASecret = sealed
	return &c, nil
}

func (s *sealingStore) openUser(u *store.User) (*store.User, error) {
	if len(u.MFASecret) == 0 {
		return u, nil
	}
	secret, err := s.ring.OpenField(totpField(u.Name), u.MFASecret)
	if err != nil {
		return nil, fmt.Errorf("user %s: TOTP secret: %w", u.Name, err)
	}
	u.MFASecret = secret
	return u, nil
}

// CreateUser seals the TOTP secret.
func (s *sealingStore) CreateUser(ctx context.Context, u *store.User) error {
	c, err := s.sealUser(u)
	if err != nil {
		return err
	}
	return s.Store.CreateUser(ctx, c)
}

// UpdateUser seals the TOTP secret.
func (s *sealingStore) UpdateUser(ctx context.Context, u *store.User) error {
	c, err := s.sealUser(u)
	if err != nil {
		return err
	}
	return s.Store.UpdateUser(ctx, c)
}

// GetUser opens the TOTP secret.
func (s *sealingStore) GetUser(ctx context.Context, name string) (*store.User, error) {
	u, err := s.Store.GetUser(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.openUser(u)
}

// ListUsers opens the TOTP secrets.
func (s *sealingStore) ListUsers(ctx context.Context) ([]*store.User, error) {
	users, err := s.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if _, err := s.openUser(u); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// rewrapOAuthSecrets re-wraps (or seals, if stored in clear) the signing
// keys and TOTP secrets in the raw store st with ring's current key.
// Every value is re-wrapped in memory first, so that a value the keyring
// cannot open stops the rotation before anything is written.
func rewrapOAuthSecrets(ctx context.Context, st store.Store, ring *secrets.Keyring) (int, error) {
	keys, err := st.ListSigningKeys(ctx)
	if err != nil {
		return 0, err
	}
	users, err := st.ListUsers(ctx)
	if err != nil {
		return 0, err
	}
	keyMaterial := map[string][]byte{}
	for _, k := range keys {
		v, err := ring.RewrapField(signingKeyField(k.ID), k.PrivateKeyPEM)
		if err != nil {
			return 0, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		keyMaterial[k.ID] = v
	}
	var mfaUsers []*store.User
	for _, u := range users {
		if len(u.MFASecret) == 0 {
			continue
		}
		v, err := ring.RewrapField(totpField(u.Name), u.MFASecret)
		if err != nil {
			return 0, fmt.Errorf("user %s: %w", u.Name, err)
		}
		u.MFASecret = v
		mfaUsers = append(mfaUsers, u)
	}
	n := 0
	for id, v := range keyMaterial {
		if err := st.SetSigningKeyMaterial(ctx, id, v); err != nil {
			return n, err
		}
		n++
	}
	for _, u := range mfaUsers {
		if err := st.UpdateUser(ctx, u); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
