package oauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/internal/seal"
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
	box    *seal.Box
	jtiKey []byte
}

func newSealer(key []byte) (*sealer, error) {
	box, err := seal.New(key, "mcpguard oauth cookies v1", maxCookie)
	if err != nil {
		return nil, fmt.Errorf("oauth: cookie key: %w", err)
	}
	jtiKey, err := seal.DeriveKey(key, "mcpguard oauth code jti v1")
	if err != nil {
		return nil, fmt.Errorf("oauth: jti key: %w", err)
	}
	return &sealer{box: box, jtiKey: jtiKey}, nil
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
	out, err := k.box.Seal(plain, aad(purpose))
	if err != nil {
		return "", fmt.Errorf("oauth: %w", err)
	}
	return out, nil
}

// open decrypts a value sealed for purpose into v, refusing it at or after
// its expiry. Every failure is errBadSeal.
func (k *sealer) open(purpose, value string, now time.Time, v any) error {
	plain, ok := k.box.Open(value, aad(purpose))
	if !ok {
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
