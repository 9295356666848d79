package oauth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxCookie bounds a sealed cookie value, produced or accepted: with the
// cookie's name and attributes it stays under the 4096 bytes every browser
// keeps.
const maxCookie = 3800

var errBadSeal = errors.New("oauth: invalid or expired sealed value")

// Purposes of sealed values. Each is authenticated with the value, so that
// a login-session cookie can never be replayed as a transaction cookie or
// the reverse.
const (
	purposeTxn     = "sign-in transaction"
	purposeSession = "login session"
)

// sealer encrypts and authenticates the sign-in cookies with AES-256-GCM
// under a key derived (HKDF-SHA256) from Config.SessionKey, and derives the
// jti of code-exchange access tokens with HMAC-SHA256 under another.
type sealer struct {
	aead   cipher.AEAD
	jtiKey []byte
}

func newSealer(key []byte) (*sealer, error) {
	encKey, err := hkdf.Key(sha256.New, key, nil, "mcpguard oauth cookies v1", 32)
	if err != nil {
		return nil, fmt.Errorf("oauth: derive cookie key: %w", err)
	}
	jtiKey, err := hkdf.Key(sha256.New, key, nil, "mcpguard oauth code jti v1", 32)
	if err != nil {
		return nil, fmt.Errorf("oauth: derive jti key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("oauth: cookie cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("oauth: cookie cipher: %w", err)
	}
	return &sealer{aead: aead, jtiKey: jtiKey}, nil
}

// envelope is the plaintext of every sealed value.
type envelope struct {
	Exp  int64           `json:"exp"`
	Data json.RawMessage `json:"d"`
}

func aad(purpose string) []byte { return []byte("mcpguard oauth: " + purpose) }

// seal encrypts v for purpose, valid until exp.
func (k *sealer) seal(purpose string, v any, exp time.Time) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("oauth: seal: %w", err)
	}
	plain, err := json.Marshal(envelope{Exp: exp.Unix(), Data: data})
	if err != nil {
		return "", fmt.Errorf("oauth: seal: %w", err)
	}
	ns := k.aead.NonceSize()
	nonce := make([]byte, ns, ns+len(plain)+k.aead.Overhead())
	rand.Read(nonce) // crypto/rand.Read never fails (Go ≥ 1.24)
	out := base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, aad(purpose)))
	if len(out) > maxCookie {
		return "", fmt.Errorf("oauth: sealed value of %d bytes is too large for a cookie", len(out))
	}
	return out, nil
}

// open decrypts a value sealed for purpose into v, refusing it at or after
// its expiry. Every failure is errBadSeal.
func (k *sealer) open(purpose, value string, now time.Time, v any) error {
	if value == "" || len(value) > maxCookie {
		return errBadSeal
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	ns := k.aead.NonceSize()
	if err != nil || len(raw) < ns+k.aead.Overhead() {
		return errBadSeal
	}
	plain, err := k.aead.Open(nil, raw[:ns], raw[ns:], aad(purpose))
	if err != nil {
		return errBadSeal
	}
	var env envelope
	if json.Unmarshal(plain, &env) != nil || now.Unix() >= env.Exp || json.Unmarshal(env.Data, v) != nil {
		return errBadSeal
	}
	return nil
}

// codeJTI is the jti of the access token a code's exchange issues: derived
// from the code's (secret, random) family id, so that a replay of the code
// can revoke that token without the server storing it.
func (k *sealer) codeJTI(familyID string) string {
	m := hmac.New(sha256.New, k.jtiKey)
	m.Write([]byte(familyID))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

// digest is how secrets (codes, refresh tokens, client secrets) are stored
// and looked up.
func digest(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
