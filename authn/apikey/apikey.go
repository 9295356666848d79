// Package apikey implements mcpguard's API keys.
//
// A key looks like
//
//	mcp_0123456789abcdef_<43 characters of base64url>
//
// The 16 hexadecimal digits are the key's public id (it is shown by
// `mcpguard keys list` and written to audit records); the rest is 32 bytes
// from crypto/rand. Only the SHA-256 digest of the whole key is stored: a
// 256-bit random secret needs no slow password hash, and a stolen database
// yields no usable key. Verification looks the id up and compares digests in
// constant time.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// Prefix starts every mcpguard API key, so that secret scanners and people
// recognize one, and so that mcpguard can tell a key from a JWT.
const Prefix = "mcp_"

const (
	idLen     = 16 // hex digits
	secretLen = 43 // base64url characters of 32 random bytes, no padding
	// KeyLen is the length of every well-formed key.
	KeyLen = len(Prefix) + idLen + 1 + secretLen
)

// Issuer is the Principal.Issuer of API-key principals.
const Issuer = "mcpguard"

// Generate returns a new random key and its id.
func Generate() (key, id string, err error) {
	var idBytes [idLen / 2]byte
	var secret [32]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return "", "", fmt.Errorf("apikey: random id: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", fmt.Errorf("apikey: random secret: %w", err)
	}
	id = hex.EncodeToString(idBytes[:])
	return Prefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:]), id, nil
}

// Hash returns the digest stored for key.
func Hash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// ErrMalformed is returned by Parse for a string that is not an mcpguard key.
var ErrMalformed = errors.New("malformed api key")

// Parse checks key's format and returns its id. It does not check that the
// key exists.
func Parse(key string) (id string, err error) {
	if len(key) != KeyLen || key[:len(Prefix)] != Prefix || key[len(Prefix)+idLen] != '_' {
		return "", ErrMalformed
	}
	id = key[len(Prefix) : len(Prefix)+idLen]
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", ErrMalformed
		}
	}
	for _, c := range []byte(key[len(Prefix)+idLen+1:]) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", ErrMalformed
		}
	}
	return id, nil
}

// LooksLikeKey reports whether s has the API-key prefix, so that a bearer
// token can be routed to the right authenticator.
func LooksLikeKey(s string) bool { return len(s) >= len(Prefix) && s[:len(Prefix)] == Prefix }

// CreateOptions describes a key to create.
type CreateOptions struct {
	Name   string
	Roles  []string
	Scopes []string
	// TTL is the key's lifetime; zero means it never expires.
	TTL time.Duration
	// Now is the creation time; zero means time.Now().
	Now time.Time
}

// Create generates a key, stores its hash and returns the key, which must be
// shown to its owner once and never stored in clear.
func Create(ctx context.Context, s store.Store, opts CreateOptions) (key string, rec *store.APIKey, err error) {
	if opts.Name == "" {
		return "", nil, errors.New("apikey: a key needs a name")
	}
	if len(opts.Name) > 200 {
		return "", nil, errors.New("apikey: name longer than 200 characters")
	}
	if opts.TTL < 0 {
		return "", nil, errors.New("apikey: negative lifetime")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	key, id, err := Generate()
	if err != nil {
		return "", nil, err
	}
	rec = &store.APIKey{ID: id, Name: opts.Name, Hash: Hash(key), Roles: opts.Roles, Scopes: opts.Scopes, CreatedAt: now.UTC()}
	if opts.TTL > 0 {
		rec.ExpiresAt = now.Add(opts.TTL).UTC()
	}
	if err := s.CreateAPIKey(ctx, rec); err != nil {
		return "", nil, fmt.Errorf("apikey: %w", err)
	}
	return key, rec, nil
}

// Authenticator verifies API keys against a store. Last-used times are
// collected in memory and written in batches by Flush (and Run), so that a
// request never waits for a database write.
type Authenticator struct {
	store store.Store
	now   func() time.Time

	mu      sync.Mutex
	pending map[string]time.Time
}

// New returns an Authenticator over s. now may be nil for time.Now.
func New(s store.Store, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	return &Authenticator{store: s, now: now, pending: make(map[string]time.Time)}
}

// a fixed digest compared against when the id is unknown, so that unknown
// ids and wrong secrets take the same path.
var decoyHash = make([]byte, sha256.Size)

// Authenticate implements guard.Authenticator. It accepts both credential
// kinds (Authorization: Bearer and X-API-Key).
func (a *Authenticator) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	id, err := Parse(cred.Secret)
	if err != nil {
		return nil, fmt.Errorf("%w: api key: malformed key", guard.ErrInvalidCredentials)
	}
	sum := sha256.Sum256([]byte(cred.Secret))
	rec, err := a.store.GetAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		subtle.ConstantTimeCompare(sum[:], decoyHash)
		return nil, fmt.Errorf("%w: api key: unknown key id %s", guard.ErrInvalidCredentials, id)
	}
	if err != nil {
		return nil, fmt.Errorf("api key: lookup: %w", err)
	}
	if subtle.ConstantTimeCompare(sum[:], rec.Hash) != 1 {
		return nil, fmt.Errorf("%w: api key: wrong secret for key id %s", guard.ErrInvalidCredentials, id)
	}
	now := a.now()
	if rec.Revoked() {
		return nil, fmt.Errorf("%w: api key: key %s was revoked", guard.ErrInvalidCredentials, id)
	}
	if rec.Expired(now) {
		return nil, fmt.Errorf("%w: api key: key %s expired", guard.ErrInvalidCredentials, id)
	}
	a.mu.Lock()
	a.pending[id] = now
	a.mu.Unlock()
	return &guard.Principal{
		Subject:   rec.Name,
		Issuer:    Issuer,
		Method:    guard.MethodAPIKey,
		KeyID:     rec.ID,
		Roles:     rec.Roles,
		Scopes:    rec.Scopes,
		ExpiresAt: rec.ExpiresAt,
	}, nil
}

// Flush writes the collected last-used times in one store write.
func (a *Authenticator) Flush(ctx context.Context) error {
	a.mu.Lock()
	batch := a.pending
	a.pending = make(map[string]time.Time, len(batch))
	a.mu.Unlock()
	if err := a.store.TouchAPIKeys(ctx, batch); err != nil {
		// Put the batch back so that a later flush retries it.
		a.mu.Lock()
		for id, t := range batch {
			if t.After(a.pending[id]) {
				a.pending[id] = t
			}
		}
		a.mu.Unlock()
		return fmt.Errorf("apikey: flush last-used: %w", err)
	}
	return nil
}

// Run flushes last-used times every interval until ctx is done, then flushes
// once more. Errors are logged to logger and retried.
func (a *Authenticator) Run(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := a.Flush(context.WithoutCancel(ctx)); err != nil && logger != nil {
				logger.Error("api key last-used flush failed", "err", err)
			}
			return
		case <-t.C:
			if err := a.Flush(ctx); err != nil && logger != nil {
				logger.Error("api key last-used flush failed", "err", err)
			}
		}
	}
}
