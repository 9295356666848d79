package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

var _ store.SecretStore = (*Store)(nil)

// PutSecret implements store.SecretStore.
func (s *Store) PutSecret(ctx context.Context, sec *store.Secret) error {
	now := time.Now().UnixNano()
	_, err := s.pool.Exec(ctx, `INSERT INTO secrets (`+codec.SecretColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (name) DO UPDATE SET master_key_id = excluded.master_key_id, wrapped_key = excluded.wrapped_key,
			ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
		sec.Name, sec.MasterKeyID, sec.WrappedKey, sec.Ciphertext, now, now)
	if err != nil {
		return fmt.Errorf("store: put secret: %w", err)
	}
	return nil
}

// GetSecret implements store.SecretStore.
func (s *Store) GetSecret(ctx context.Context, name string) (*store.Secret, error) {
	sec, err := codec.ScanSecret(s.pool.QueryRow(ctx, `SELECT `+codec.SecretColumns+` FROM secrets WHERE name = $1`, name))
	if err != nil {
		return nil, notFound(err, "get secret")
	}
	return sec, nil
}

// ListSecrets implements store.SecretStore.
func (s *Store) ListSecrets(ctx context.Context) ([]*store.Secret, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+codec.SecretColumns+` FROM secrets ORDER BY name`)
	return collect(rows, err, "list secrets", codec.ScanSecret)
}

// DeleteSecret implements store.SecretStore.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM secrets WHERE name = $1`, name)
	return affected(tag, err, "delete secret "+name)
}

// RewrapSecrets implements store.SecretStore. The rows are locked for the
// transaction, so that a concurrent PutSecret waits rather than being lost.
func (s *Store) RewrapSecrets(ctx context.Context, rewrap func(*store.Secret) (*store.Secret, error)) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+codec.SecretColumns+` FROM secrets ORDER BY name FOR UPDATE`)
		all, err := collect(rows, err, "rewrap secrets", codec.ScanSecret)
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		for _, sec := range all {
			next, err := rewrap(sec)
			if err != nil {
				return fmt.Errorf("secret %s: %w", sec.Name, err)
			}
			if next.Name != sec.Name {
				return fmt.Errorf("store: rewrap secrets: %s renamed", sec.Name)
			}
			if _, err := tx.Exec(ctx, `UPDATE secrets SET master_key_id = $1, wrapped_key = $2, ciphertext = $3, updated_at = $4 WHERE name = $5`,
				next.MasterKeyID, next.WrappedKey, next.Ciphertext, now, sec.Name); err != nil {
				return fmt.Errorf("store: rewrap secrets: %w", err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
