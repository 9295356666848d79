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
//
// An [Authenticator] remembers the keys it verified, by digest, for a bounded
// time: a revoked key is refused within [Options.RevocationRecheck] (one
// second by default) rather than at once.
package apikey

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/authn/internal/credcache"
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

// Cache defaults.
const (
	// DefaultCacheSize is the number of verified keys an Authenticator
	// remembers when Options.CacheSize is zero.
	DefaultCacheSize = 10_000
	// DefaultRevocationRecheck is how long a remembered key is accepted
	// without asking the store again when Options.RevocationRecheck is zero.
	DefaultRevocationRecheck = time.Second
)

// Options configures an Authenticator made by [NewWithOptions]. The zero
// value is a sound configuration.
type Options struct {
	// CacheSize bounds the number of verified keys remembered, so that a
	// key presented again is accepted without a store query. Zero means
	// [DefaultCacheSize]; a negative value disables the cache, so that
	// every request reads the store.
	CacheSize int
	// RevocationRecheck is how long a remembered key is accepted without
	// reading its record again. A key revoked (or deleted) in the store is
	// therefore refused at most this long after the revocation, and at once
	// by an Authenticator without a cache. Zero means
	// [DefaultRevocationRecheck]; a negative value re-reads the record on
	// every request. Expiry needs no store query and is enforced at once.
	RevocationRecheck time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Authenticator verifies API keys against a store. Last-used times are
// collected in memory and written in batches by Flush (and Run), so that a
// request never waits for a database write.
//
// Verified keys are remembered in a bounded least-recently-used cache keyed
// by the SHA-256 digest of the whole key (the key itself is never kept), so
// that a key presented again within Options.RevocationRecheck of its last
// store read costs no store query. See [Options].
type Authenticator struct {
	store   store.Store
	now     func() time.Time
	recheck time.Duration
	cache   *credcache.Cache[*cached] // nil when disabled

	// pending holds the last-used times not yet flushed, split by the
	// key id's first hex digit so that concurrent requests with different
	// keys rarely wait for one another.
	pending [16]pendingShard
}

type pendingShard struct {
	mu sync.Mutex
	m  map[string]time.Time
	_  [48]byte // keeps neighbouring shards' locks off one cache line
}

// shardOf returns the pending shard of a well-formed key id.
func (a *Authenticator) shardOf(id string) *pendingShard {
	c := id[0]
	if c >= 'a' {
		return &a.pending[c-'a'+10]
	}
	return &a.pending[c-'0']
}

// cached is what the cache remembers of a verified key. It is never
// modified once stored: a re-read replaces it.
type cached struct {
	p         *guard.Principal
	expiresAt time.Time
	checked   int64 // Unix nanoseconds of the last store read
}

// New returns an Authenticator over s with the default cache (see
// [Options]). now may be nil for time.Now. It is shorthand for
// NewWithOptions(s, Options{Now: now}).
func New(s store.Store, now func() time.Time) *Authenticator {
	return NewWithOptions(s, Options{Now: now})
}

// NewWithOptions returns an Authenticator over s configured by o.
func NewWithOptions(s store.Store, o Options) *Authenticator {
	a := &Authenticator{
		store:   s,
		now:     o.Now,
		recheck: cmp.Or(o.RevocationRecheck, DefaultRevocationRecheck),
		cache:   credcache.New[*cached](cmp.Or(o.CacheSize, DefaultCacheSize)),
	}
	for i := range a.pending {
		a.pending[i].m = make(map[string]time.Time)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// a fixed digest compared against when the id is unknown, so that unknown
// ids and wrong secrets take the same path.
var decoyHash = make([]byte, sha256.Size)

// Authenticate implements guard.Authenticator. It accepts both credential
// kinds (Authorization: Bearer and X-API-Key).
//
// The Principal returned for a remembered key is shared by every request
// presenting that key until its record is re-read: callers must treat it
// as read-only (as every guard stage does), and must not modify its fields
// or the elements of its slices.
func (a *Authenticator) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	id, err := Parse(cred.Secret)
	if err != nil {
		return nil, fmt.Errorf("%w: api key: malformed key", guard.ErrInvalidCredentials)
	}
	sum := a.cache.Sum(cred.Secret)
	now := a.now()
	if e, ok := a.cache.Get(sum); ok && !credcache.Due(e.checked, now, a.recheck) {
		// The digest of the whole key matched, so the secret is right and
		// id is e.p.KeyID; only the expiry can have changed since the
		// record was read.
		if !e.expiresAt.IsZero() && !now.Before(e.expiresAt) {
			a.cache.Remove(sum)
			return nil, fmt.Errorf("%w: api key: key %s expired", guard.ErrInvalidCredentials, id)
		}
		a.touch(id, now)
		return e.p, nil
	}
	p, err := a.verify(ctx, id, sum, now)
	if err != nil {
		if errors.Is(err, guard.ErrInvalidCredentials) {
			a.cache.Remove(sum)
		}
		return nil, err
	}
	if a.cache != nil {
		a.cache.Add(sum, &cached{p: p, expiresAt: p.ExpiresAt, checked: now.UnixNano()})
	}
	a.touch(id, now)
	return p, nil
}

// verify reads the record of key id, checks that its digest is sum in
// constant time and that it is neither revoked nor expired at now, and
// returns the principal it describes.
func (a *Authenticator) verify(ctx context.Context, id string, sum [sha256.Size]byte, now time.Time) (*guard.Principal, error) {
	rec, err := a.store.GetAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		subtle.ConstantTimeCompare(sum[:], decoyHash)
		return nil, fmt.Errorf("%w: api key: unknown key id %s", guard.ErrInvalidCredentials, id)
	}
	if err != nil {
		return nil, fmt.Errorf("api key: lookup: %w", err)
	}
	current := subtle.ConstantTimeCompare(sum[:], rec.Hash) == 1
	// Both digests are always compared, so that timing does not tell
	// whether a key has a previous secret.
	previous := subtle.ConstantTimeCompare(sum[:], orDecoy(rec.PreviousHash)) == 1 && now.Before(rec.PreviousExpiresAt)
	if !current && !previous {
		return nil, fmt.Errorf("%w: api key: wrong secret for key id %s", guard.ErrInvalidCredentials, id)
	}
	if rec.Revoked() {
		return nil, fmt.Errorf("%w: api key: key %s was revoked", guard.ErrInvalidCredentials, id)
	}
	if rec.Expired(now) {
		return nil, fmt.Errorf("%w: api key: key %s expired", guard.ErrInvalidCredentials, id)
	}
	p := &guard.Principal{
		Subject:        rec.Name,
		Issuer:         Issuer,
		Method:         guard.MethodAPIKey,
		KeyID:          rec.ID,
		Roles:          slices.Clip(rec.Roles),
		Scopes:         slices.Clip(rec.Scopes),
		ExpiresAt:      rec.ExpiresAt,
		PreviousSecret: !current,
	}
	if !current && (p.ExpiresAt.IsZero() || rec.PreviousExpiresAt.Before(p.ExpiresAt)) {
		// The old secret stops at the end of the grace period: a cached
		// principal must not outlive it.
		p.ExpiresAt = rec.PreviousExpiresAt
	}
	return p, nil
}

// orDecoy returns h, or the decoy digest when h is empty.
func orDecoy(h []byte) []byte {
	if len(h) == 0 {
		return decoyHash
	}
	return h
}

// Rotate gives key id a new secret and returns the new key, once. The old
// secret keeps working for grace (zero: it stops at once), so that clients
// can move to the new one without downtime; uses of the old secret are
// marked in audit records (key_previous_secret).
func Rotate(ctx context.Context, s store.Store, id string, grace time.Duration, now time.Time) (string, error) {
	if grace < 0 {
		return "", errors.New("apikey: negative grace period")
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", fmt.Errorf("apikey: random secret: %w", err)
	}
	key := Prefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	if _, err := Parse(key); err != nil {
		return "", fmt.Errorf("apikey: %q is not a key id", id)
	}
	var until time.Time
	if grace > 0 {
		until = now.Add(grace).UTC()
	}
	if err := s.RotateAPIKey(ctx, id, Hash(key), until); err != nil {
		return "", fmt.Errorf("apikey: %w", err)
	}
	return key, nil
}

// touch records that key id was used at now, for the next Flush.
func (a *Authenticator) touch(id string, now time.Time) {
	ps := a.shardOf(id)
	ps.mu.Lock()
	ps.m[id] = now
	ps.mu.Unlock()
}

// Flush writes the collected last-used times in one store write.
func (a *Authenticator) Flush(ctx context.Context) error {
	batch := make(map[string]time.Time)
	for i := range a.pending {
		ps := &a.pending[i]
		ps.mu.Lock()
		if len(ps.m) > 0 {
			maps.Copy(batch, ps.m)
			clear(ps.m)
		}
		ps.mu.Unlock()
	}
	if err := a.store.TouchAPIKeys(ctx, batch); err != nil {
		// Put the batch back so that a later flush retries it.
		for id, t := range batch {
			ps := a.shardOf(id)
			ps.mu.Lock()
			if t.After(ps.m[id]) {
				ps.m[id] = t
			}
			ps.mu.Unlock()
		}
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

// Invalidate forgets every remembered key, so that each is read from the
// store again on its next use: called when another process revoked or
// rotated a key, it makes the revocation effective at once rather than
// within RevocationRecheck. (A verification already under way may still
// cache what it read; RevocationRecheck bounds that.)
func (a *Authenticator) Invalidate() { a.cache.Clear() }
