package store

import (
	"context"
	"time"
)

// Secret is one entry of mcpguard's encrypted secret store, as stored:
// never in clear. Its value is encrypted with a data key of its own, and
// the data key is encrypted ("wrapped") with the master key named by
// MasterKeyID (package secrets does both).
type Secret struct {
	// Name identifies the secret; configuration refers to it as
	// secret:Name.
	Name string
	// MasterKeyID names the master key that wrapped WrappedKey.
	MasterKeyID string
	// WrappedKey is the data key, encrypted with the master key.
	WrappedKey []byte
	// Ciphertext is the value, encrypted with the data key.
	Ciphertext []byte
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SecretStore holds encrypted secrets.
type SecretStore interface {
	// PutSecret creates or replaces a secret.
	PutSecret(ctx context.Context, s *Secret) error
	// GetSecret returns a secret, or ErrNotFound.
	GetSecret(ctx context.Context, name string) (*Secret, error)
	// ListSecrets returns every secret, by name.
	ListSecrets(ctx context.Context) ([]*Secret, error)
	// DeleteSecret removes a secret; ErrNotFound if absent.
	DeleteSecret(ctx context.Context, name string) error
	// RewrapSecrets replaces every secret with rewrap's result in one
	// transaction: all of them or, if rewrap or a write fails, none.
	RewrapSecrets(ctx context.Context, rewrap func(*Secret) (*Secret, error)) (int, error)
}
