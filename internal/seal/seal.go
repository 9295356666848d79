// Package seal encrypts and authenticates small values, such as cookie
// contents, as URL-safe text: AES-256-GCM with a random nonce, under a key
// derived with HKDF-SHA256 from a longer-lived secret and a purpose label,
// so that one secret can serve several uses without their keys meeting.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// DeriveKey derives a 32-byte key for the use named info from secret.
func DeriveKey(secret []byte, info string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	return k, nil
}

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	aead   cipher.AEAD
	maxLen int
}

// New returns a Box keyed by DeriveKey(secret, info) whose sealed values are
// at most maxLen characters.
func New(secret []byte, info string, maxLen int) (*Box, error) {
	key, err := DeriveKey(secret, info)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: cipher: %w", err)
	}
	return &Box{aead: aead, maxLen: maxLen}, nil
}

// Seal encrypts plain, authenticating aad with it.
func (b *Box) Seal(plain, aad []byte) (string, error) {
	ns := b.aead.NonceSize()
	nonce := make([]byte, ns, ns+len(plain)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	out := base64.RawURLEncoding.EncodeToString(b.aead.Seal(nonce, nonce, plain, aad))
	if len(out) > b.maxLen {
		return "", fmt.Errorf("seal: sealed value of %d bytes exceeds %d", len(out), b.maxLen)
	}
	return out, nil
}

// Open decrypts a value sealed with the same aad. Any failure (too long,
// not base64, altered, another key or aad) is reported as ok=false.
func (b *Box) Open(value string, aad []byte) (plain []byte, ok bool) {
	if value == "" || len(value) > b.maxLen {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	ns := b.aead.NonceSize()
	if err != nil || len(raw) < ns+b.aead.Overhead() {
		return nil, false
	}
	plain, err = b.aead.Open(nil, raw[:ns], raw[ns:], aad)
	return plain, err == nil
}
