package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/secrets"
	"github.com/mcpguard/mcpguard/store"
)

// keyring builds the secret store's keyring from the configured master key
// and previous master keys.
func keyring(cfg *config.Config, env func(string) (string, bool)) (*secrets.Keyring, error) {
	raw, err := cfg.Secrets.MasterKey.Resolve(env)
	if err != nil {
		return nil, fmt.Errorf("secrets.master_key: %w", err)
	}
	current, err := secrets.ParseMasterKey(raw)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("secrets.master_key: %w", err)
	}
	var previous []*secrets.MasterKey
	for i, ref := range cfg.Secrets.PreviousMasterKeys {
		raw, err := ref.Resolve(env)
		if err != nil {
			return nil, fmt.Errorf("secrets.previous_master_keys[%d]: %w", i, err)
		}
		k, err := secrets.ParseMasterKey(raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("secrets.previous_master_keys[%d]: %w", i, err)
		}
		previous = append(previous, k)
	}
	return secrets.NewKeyring(current, previous...), nil
}

// resolver resolves configuration references, secret:NAME from st. The
// keyring is built on the first secret: reference, so that a server whose
// configuration uses none needs no master key.
func resolver(ctx context.Context, cfg *config.Config, st store.SecretStore, env func(string) (string, bool)) config.Resolver {
	var ring *secrets.Keyring
	if sealed, ok := st.(*sealingStore); ok {
		ring = sealed.ring // the master key is already read
	}
	return config.Resolver{Env: env, Secret: func(name string) ([]byte, error) {
		if ring == nil {
			r, err := keyring(cfg, env)
			if err != nil {
				return nil, err
			}
			ring = r
		}
		rec, err := st.GetSecret(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no secret named %q (store it with `mcpguard secrets set %s`)", name, name)
		}
		if err != nil {
			return nil, err
		}
		v, err := ring.Open(rec)
		if err != nil {
			return nil, err
		}
		return v.Bytes(), nil
	}}
}

// SecretsSet stores a secret, encrypted under the configured master key.
func SecretsSet(ctx context.Context, out io.Writer, cfg *config.Config, env func(string) (string, bool), name string, value []byte) error {
	ring, err := keyring(cfg, env)
	if err != nil {
		return err
	}
	rec, err := ring.Seal(name, value)
	clear(value)
	if err != nil {
		return err
	}
	st, err := OpenStore(ctx, cfg.StoreLocation())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.PutSecret(ctx, rec); err != nil {
		return err
	}
	fmt.Fprintf(out, "Stored secret %s (master key %s). Refer to it as secret:%s.\n", name, rec.MasterKeyID, name)
	return nil
}

// SecretsGet writes a secret's value to out.
func SecretsGet(ctx context.Context, out io.Writer, cfg *config.Config, env func(string) (string, bool), name string) error {
	st, err := OpenStore(ctx, cfg.StoreLocation())
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := resolver(ctx, cfg, st, env).Secret(name)
	if err != nil {
		return err
	}
	_, err = out.Write(v)
	clear(v)
	return err
}

// SecretsList writes the secrets' names and master key ids, never values.
func SecretsList(ctx context.Context, out io.Writer, dataDir string) error {
	st, err := OpenStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListSecrets(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMASTER KEY\tCREATED\tUPDATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.MasterKeyID, s.CreatedAt.Format(time.RFC3339), s.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// SecretsRotateMaster re-wraps every secret's data key with newKey, in one
// transaction; the values are not re-encrypted. Servers keep reading
// secrets through the rollout when they list the old key under
// secrets.previous_master_keys.
func SecretsRotateMaster(ctx context.Context, out io.Writer, cfg *config.Config, env func(string) (string, bool), newKey []byte) error {
	old, err := keyring(cfg, env)
	if err != nil {
		return err
	}
	next, err := secrets.ParseMasterKey(newKey)
	clear(newKey)
	if err != nil {
		return fmt.Errorf("new master key: %w", err)
	}
	// The new keyring opens what the configured keys wrapped.
	ring := secrets.NewKeyring(next, old.Keys()...)
	st, err := OpenStore(ctx, cfg.StoreLocation())
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.RewrapSecrets(ctx, ring.Rewrap)
	if err != nil {
		return fmt.Errorf("rotation refused, nothing changed: %w", err)
	}
	// The secrets inside the OAuth tables (signing keys, TOTP secrets):
	// sealed now if they were in clear.
	m, err := rewrapOAuthSecrets(ctx, st, ring)
	if err != nil {
		return fmt.Errorf("the secret store was re-wrapped, but not every signing key or TOTP secret (keep the old key under secrets.previous_master_keys and run rotate-master again): %w", err)
	}
	n += m
	fmt.Fprintf(out, "Re-wrapped %d secrets with master key %s. Set MCPGUARD_MASTER_KEY (secrets.master_key) to the new key; until every server has it, list the old key %s under secrets.previous_master_keys.\n",
		n, next.ID(), old.CurrentID())
	return nil
}
