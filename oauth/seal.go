package oauth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxCookie bounds a sealed cookie value, produced or accepted.
const maxCookie = 3800

var errBadSeal = errors.New("oauth: invalid or expired sealed value")

// sealer encrypts and authenticates the sign-in cookies with AES-256-GCM
// under a key derived from Config.SessionKey. Each value's purpose is
// authenticated too, so that a login-session cookie can never be replayed
// as a transaction cookie or the reverse.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	k, err := hkdf.Key(sha256.New, key, nil, "mcpguard oauth cookies v1", 32)
	if err != nil {
		return nil, fmt.Errorf("oauth: derive cookie key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("oauth: cookie cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("oauth: cookie cipher: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// sealed is the envelope of every sealed value.
type sealed struct {
	Exp  int64           `json:"exp"`
	Data json.RawMessage `json:"d"`
}

// seal encrypts v for purpose, valid until exp.
func (k *sealer) seal(purpose string, v any, exp time.Time) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("oauth: seal: %w", err)
	}
	plain, err := json.Marshal(sealed{Exp: exp.Unix(), Data: data})
	if err != nil {
		return "", fmt.Errorf("oauth: seal: %w", err)
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("oauth: seal: %w", err)
	}
	out := base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, []byte(purpose)))
	if len(out) > maxCookie {
		return "", fmt.Errorf("oauth: sealed value of %d bytes is too large for a cookie", len(out))
	}
	return out, nil
}

// open decrypts a value sealed for purpose into v, refusing it at or after
// its expiry.
func (k *sealer) open(purpose, value string, now time.Time, v any) error {
	if value == "" || len(value) > maxCookie {
		return errBadSeal
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	ns := k.aead.NonceSize()
	if err != nil || len(raw) < ns+k.aead.Overhead() {
		return errBadSeal
	}
	plain, err := k.aead.Open(nil, raw[:ns], raw[ns:], []byte(purpose))
	if err != nil {
		return errBadSeal
	}
	var env sealed
	if json.Unmarshal(plain, &env) != nil || now.Unix() >= env.Exp || json.Unmarshal(env.Data, v) != nil {
		return errBadSeal
	}
	return nil
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// digest is how single-use secrets (codes, refresh tokens, client secrets)
// are stored and looked up.
func digest(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
