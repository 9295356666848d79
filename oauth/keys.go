package oauth

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/mcpguard/mcpguard/store"
)

// VerificationKey is a public key that verifies the server's access tokens.
type VerificationKey struct {
	// ID is the JWS "kid".
	ID string
	// Algorithm is the JWS algorithm, "ES256".
	Algorithm string
	// Key is the public key (*ecdsa.PublicKey).
	Key crypto.PublicKey
}

// VerificationKeys returns the public keys that verify the server's tokens:
// the signing key, keys published ahead of a rotation, and retired keys
// whose tokens may not have expired yet. The store is re-read at most once
// a minute (and whenever [Server.ReloadKeys] is called).
func (s *Server) VerificationKeys(ctx context.Context) ([]VerificationKey, error) {
	if err := s.keys.refresh(ctx, false); err != nil {
		return nil, err
	}
	return s.keys.public(), nil
}

// ReloadKeys reads the signing keys from the store again, so that a
// rotation made by another process (`mcpguard keys rotate-signing`, another
// replica) takes effect; call it periodically. When no key may sign now, it
// creates one.
func (s *Server) ReloadKeys(ctx context.Context) error {
	s.keys.loadMu.Lock()
	defer s.keys.loadMu.Unlock()
	return s.keys.load(ctx)
}

// RotateSigningKey starts a signing-key rotation: it stores a new ES256 key
// that is published at once (in the JWKS and to resource servers that
// reload keys) but signs only from now+publishFor, when the keys that sign
// now retire. Retired keys keep verifying for as long as their tokens may
// live (the access-token lifetime), so no valid token is ever refused.
func RotateSigningKey(ctx context.Context, st store.OAuthStore, publishFor time.Duration, now time.Time) (*store.SigningKey, error) {
	if publishFor < 0 {
		return nil, errors.New("oauth: negative publication delay")
	}
	keys, err := st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauth: signing keys: %w", err)
	}
	k, err := newSigningKey(now.Add(publishFor))
	if err != nil {
		return nil, err
	}
	if err := st.CreateSigningKey(ctx, k); err != nil {
		return nil, fmt.Errorf("oauth: store signing key: %w", err)
	}
	for _, old := range keys {
		if old.RetiredAt.IsZero() && !old.CreatedAt.After(now) {
			if err := st.RetireSigningKey(ctx, old.ID, k.CreatedAt); err != nil {
				return nil, fmt.Errorf("oauth: retire signing key %s: %w", old.ID, err)
			}
		}
	}
	return k, nil
}

// Key refresh intervals.
const (
	// keyRefresh is how often the store's signing keys are re-read, so that
	// a key created or retired by another replica or the CLI is seen.
	keyRefresh = time.Minute
	// keyMissRefresh bounds re-reads caused by tokens naming an unknown
	// kid.
	keyMissRefresh = 10 * time.Second
)

// keySet holds the signing keys read from the store. A key's CreatedAt is
// when it starts signing (a rotation publishes a key ahead of that) and its
// RetiredAt when it stops. The newest key that may sign now signs; every
// key whose tokens may be unexpired, and every key published ahead,
// verifies.
type keySet struct {
	st     store.OAuthStore
	now    func() time.Time
	grace  time.Duration // how long a retired key keeps verifying
	logger *slog.Logger

	loadMu   sync.Mutex // one re-read at a time
	mu       sync.Mutex // guards the fields below
	signer   jose.Signer
	kid      string
	verify   []verifyKey
	loadedAt time.Time
	missAt   time.Time
}

type verifyKey struct {
	VerificationKey
	retiredAt time.Time
}

// load reads the keys, creating a signing key when none may sign now.
// k.loadMu is held.
func (k *keySet) load(ctx context.Context) error {
	now := k.now()
	signs := func(p parsedKey) bool {
		return !p.CreatedAt.After(now) && (p.RetiredAt.IsZero() || now.Before(p.RetiredAt))
	}
	stored, err := k.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("oauth: signing keys: %w", err)
	}
	parsed := k.parse(stored)
	if !slices.ContainsFunc(parsed, signs) {
		nk, err := newSigningKey(now)
		if err != nil {
			return err
		}
		if err := k.st.CreateSigningKey(ctx, nk); err != nil {
			return fmt.Errorf("oauth: store signing key: %w", err)
		}
		// Read again: another replica may have created one at the same
		// time; the newest signs everywhere once each has re-read.
		if stored, err = k.st.ListSigningKeys(ctx); err != nil {
			return fmt.Errorf("oauth: signing keys: %w", err)
		}
		parsed = k.parse(stored)
	}
	slices.SortFunc(parsed, func(a, b parsedKey) int { // newest first
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	var signer jose.Signer
	var kid string
	var verify []verifyKey
	for _, p := range parsed {
		if signer == nil && signs(p) {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.priv},
				(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", p.ID))
			if err != nil {
				return fmt.Errorf("oauth: signing key %s: %w", p.ID, err)
			}
			signer, kid = s, p.ID
		}
		if p.RetiredAt.IsZero() || now.Before(p.RetiredAt.Add(k.grace)) {
			verify = append(verify, verifyKey{VerificationKey{ID: p.ID, Algorithm: "ES256", Key: &p.priv.PublicKey}, p.RetiredAt})
		}
	}
	if signer == nil {
		return errors.New("oauth: no usable signing key")
	}
	k.mu.Lock()
	k.signer, k.kid, k.verify, k.loadedAt = signer, kid, verify, now
	k.mu.Unlock()
	return nil
}

type parsedKey struct {
	*store.SigningKey
	priv *ecdsa.PrivateKey
}

// parse decodes the ES256 keys; others, and any that do not decode, are
// skipped (and logged).
func (k *keySet) parse(stored []*store.SigningKey) []parsedKey {
	var out []parsedKey
	for _, sk := range stored {
		if sk.Algorithm != "ES256" {
			continue
		}
		priv, err := parseKey(sk.PrivateKeyPEM)
		if err != nil {
			k.logger.Error("oauth: unusable signing key skipped", "kid", sk.ID, "err", err)
			continue
		}
		out = append(out, parsedKey{sk, priv})
	}
	return out
}

func parseKey(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PKCS #8 PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, errors.New("not a P-256 ECDSA key")
	}
	return priv, nil
}

// newSigningKey makes an ES256 key, with a random 16-hex-digit kid, that
// signs from activeFrom.
func newSigningKey(activeFrom time.Time) (*store.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("oauth: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("oauth: encode signing key: %w", err)
	}
	return &store.SigningKey{ID: randomHex(8), Algorithm: "ES256", PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), CreatedAt: activeFrom}, nil
}

// refresh re-reads the store when the keys are older than keyRefresh, or
// (miss) when a token named an unknown kid and no such re-read happened in
// the last keyMissRefresh. A failed re-read keeps the keys in hand.
func (k *keySet) refresh(ctx context.Context, miss bool) error {
	k.loadMu.Lock()
	defer k.loadMu.Unlock()
	now := k.now()
	k.mu.Lock()
	stale := now.Sub(k.loadedAt) >= keyRefresh || now.Before(k.loadedAt)
	if miss && now.Sub(k.missAt) >= keyMissRefresh {
		k.missAt, stale = now, true
	}
	have := k.signer != nil
	k.mu.Unlock()
	if !stale {
		return nil
	}
	if err := k.load(ctx); err != nil {
		if have {
			k.logger.Error("oauth: re-reading signing keys failed; keeping the current ones", "err", err)
			return nil
		}
		return err
	}
	return nil
}

// current returns the signer and its kid.
func (k *keySet) current(ctx context.Context) (jose.Signer, string) {
	k.refresh(ctx, false)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.signer, k.kid
}

// public returns the verification keys still valid now.
func (k *keySet) public() []VerificationKey {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []VerificationKey
	for _, v := range k.verify {
		if v.retiredAt.IsZero() || now.Before(v.retiredAt.Add(k.grace)) {
			out = append(out, v.VerificationKey)
		}
	}
	return out
}

// lookup returns the verification key named kid, re-reading the store
// (rate-limited) when it is unknown.
func (k *keySet) lookup(ctx context.Context, kid string) (VerificationKey, bool) {
	find := func() (VerificationKey, bool) {
		for _, v := range k.public() {
			if v.ID == kid {
				return v, true
			}
		}
		return VerificationKey{}, false
	}
	if v, ok := find(); ok {
		return v, true
	}
	k.refresh(ctx, true)
	return find()
}

// serveJWKS serves the public keys (RFC 7517), briefly cacheable.
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	keys, err := s.VerificationKeys(r.Context())
	if err != nil {
		s.logger.Error("oauth: signing keys", "err", err)
		http.Error(w, "keys unavailable", http.StatusServiceUnavailable)
		return
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Key, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeDocument(w, set)
}
