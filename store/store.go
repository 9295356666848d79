// Package store defines mcpguard's persistent state: API keys and revoked
// token ids. Backends live in subpackages (store/sqlite); every backend must
// pass the conformance suite in store/storetest.
//
// The interface lives here rather than in package guard because the pipeline
// never touches the store directly: authenticators do. Keeping it apart lets a
// program that secures its own go-sdk server with, say, JWTs alone import
// guard without any database driver.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a created record's id is already taken.
var ErrExists = errors.New("already exists")

// APIKey is an API key as stored: never the secret, only its hash.
type APIKey struct {
	// ID is the public 16-hex-digit identifier embedded in the key.
	ID string
	// Name identifies the key's owner; it becomes the principal's subject.
	Name string
	// Hash is the SHA-256 digest of the full key string.
	Hash []byte
	// Roles and Scopes are granted to whoever presents the key.
	Roles  []string
	Scopes []string
	// CreatedAt is when the key was created.
	CreatedAt time.Time
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time
	// LastUsedAt is the last successful use, recorded in batches; zero if
	// never used (or not yet flushed).
	LastUsedAt time.Time
	// RevokedAt is when the key was revoked; zero if it was not.
	RevokedAt time.Time
}

// Revoked reports whether the key has been revoked.
func (k *APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// Expired reports whether the key has expired at time now.
func (k *APIKey) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// Store is mcpguard's persistent state. Implementations must be safe for
// concurrent use and must make each method atomic: a crash mid-call leaves
// either the old state or the new one.
type Store interface {
	// CreateAPIKey stores a new key; ErrExists if its ID is taken.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKey returns the key with id, or ErrNotFound.
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns all keys, newest first.
	ListAPIKeys(ctx context.Context) ([]*APIKey, error)
	// RevokeAPIKey marks the key revoked at time at; ErrNotFound if absent.
	// Revoking a revoked key keeps the first revocation time.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// TouchAPIKeys records last-used times for many keys in one write.
	// Unknown ids are ignored; a time older than the stored one is ignored.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error

	// RevokeToken adds a JWT id to the revocation list until expiresAt
	// (after which the token is expired anyway and the entry may be purged).
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// TokenRevoked reports whether jti is on the revocation list.
	TokenRevoked(ctx context.Context, jti string) (bool, error)

	// Close releases the store's resources.
	Close() error
}
