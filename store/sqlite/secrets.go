package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/store/internal/codec"
)

var _ store.SecretStore = (*Store)(nil)

// PutSecret implements store.SecretStore.
func (s *Store) PutSecret(ctx context.Context, sec *store.Secret) error {
	now := time.Now().UnixNano()
	_, err := s.db.ExecContext(ctx, `INSERT INTO secrets (`+codec.SecretColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET master_key_id = excluded.master_key_id, wrapped_key = excluded.wrapped_key,
			ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
		sec.Name, sec.MasterKeyID, sec.WrappedKey, sec.Ciphertext, now, now)
	if err != nil {
		return fmt.Errorf("store: put secret: %w", err)
	}
	return nil
}

// GetSecret implements store.SecretStore.
func (s *Store) GetSecret(ctx context.Context, name string) (*store.Secret, error) {
	sec, err := codec.ScanSecret(s.db.QueryRowContext(ctx, `SELECT `+codec.SecretColumns+` FROM secrets WHERE name = ?`, name))
	if err != nil {
		return nil, notFound(err, "get secret")
	}
	return sec, nil
}

// ListSecrets implements store.SecretStore.
func (s *Store) ListSecrets(ctx context.Context) ([]*store.Secret, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+codec.SecretColumns+` FROM secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list secrets: %w", err)
	}
	defer rows.Close()
	var out []*store.Secret
	for rows.Next() {
		sec, err := codec.ScanSecret(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list secrets: %w", err)
		}
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list secrets: %w", err)
	}
	return out, nil
}

// DeleteSecret implements store.SecretStore.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM secrets WHERE name = ?`, name)
	return affected(res, err, "delete secret "+name)
}

// RewrapSecrets implements store.SecretStore.
func (s *Store) RewrapSecrets(ctx context.Context, rewrap func(*store.Secret) (*store.Secret, error)) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+codec.SecretColumns+` FROM secrets ORDER BY name`)
		if err != nil {
			return fmt.Errorf("store: rewrap secrets: %w", err)
		}
		var all []*store.Secret
		for rows.Next() {
			sec, err := codec.ScanSecret(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("store: rewrap secrets: %w", err)
			}
			all = append(all, sec)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: rewrap secrets: %w", err)
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
			if _, err := tx.ExecContext(ctx, `UPDATE secrets SET master_key_id = ?, wrapped_key = ?, ciphertext = ?, updated_at = ? WHERE name = ?`,
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
