package admin

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Cookie and token bounds.
const (
	// maxCookieValue bounds a cookie value accepted or produced.
	maxCookieValue = 4000
	// maxSubjectBytes bounds the subject kept in a session (display only).
	maxSubjectBytes = 256
	// tokenBytes is the size of random CSRF values.
	tokenBytes = 32
)

var errBadSession = errors.New("admin: invalid session")

// session is the sealed content of the session cookie. It never holds the
// credential the person signed in with.
type session struct {
	// Subject, Issuer and Method identify the principal (display and
	// audit).
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
	Method  string `json:"m,omitempty"`
	// Roles are the held roles that grant access to the page.
	Roles []string `json:"roles"`
	// KeyID and TokenID let each request re-check that the credential was
	// not revoked since sign-in.
	KeyID   string `json:"kid,omitempty"`
	TokenID string `json:"jti,omitempty"`
	// Expires is the session's end, in Unix seconds.
	Expires int64 `json:"exp"`
	// CSRF is the token the session's forms carry.
	CSRF string `json:"csrf"`
}

// sealer encrypts and authenticates sessions (AES-256-GCM) and signs login
// CSRF tokens (HMAC-SHA256), with keys derived from one session key.
type sealer struct {
	aead   cipher.AEAD
	macKey []byte
	aad    []byte
}

func newSealer(key []byte, cookieName string) (*sealer, error) {
	encKey, err := hkdf.Key(sha256.New, key, nil, "mcpguard admin session v1", 32)
	if err != nil {
		return nil, fmt.Errorf("admin: derive session key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, "mcpguard admin login csrf v1", 32)
	if err != nil {
		return nil, fmt.Errorf("admin: derive csrf key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("admin: session cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("admin: session cipher: %w", err)
	}
	// The cookie name is authenticated, so that a sealed value cannot be
	// replayed under another cookie.
	return &sealer{aead: aead, macKey: macKey, aad: []byte("cookie:" + cookieName)}, nil
}

// seal returns s encrypted and encoded for a cookie value.
func (k *sealer) seal(s *session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("admin: encode session: %w", err)
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("admin: session nonce: %w", err)
	}
	v := base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, k.aad))
	if len(v) > maxCookieValue {
		return "", fmt.Errorf("admin: session of %d bytes does not fit a cookie", len(v))
	}
	return v, nil
}

// open decrypts a cookie value and checks that the session has not expired
// at now. Any failure is errBadSession.
func (k *sealer) open(v string, now time.Time) (*session, error) {
	if v == "" || len(v) > maxCookieValue {
		return nil, errBadSession
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, errBadSession
	}
	ns := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:ns], raw[ns:], k.aad)
	if err != nil {
		return nil, errBadSession
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil || s.Subject == "" || s.CSRF == "" {
		return nil, errBadSession
	}
	if now.Unix() >= s.Expires {
		return nil, errBadSession
	}
	return &s, nil
}

// loginToken returns the form token that goes with a login CSRF cookie
// value: an HMAC of it, so that whoever can plant a cookie still cannot
// forge the matching form field.
func (k *sealer) loginToken(cookieValue string) string {
	m := hmac.New(sha256.New, k.macKey)
	m.Write([]byte("login:"))
	m.Write([]byte(cookieValue))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validNonce reports whether v has the form of a randomToken.
func validNonce(v string) bool {
	if len(v) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// checkLoginToken reports whether token matches cookieValue.
func (k *sealer) checkLoginToken(cookieValue, token string) bool {
	if !validNonce(cookieValue) || len(token) > 100 {
		return false
	}
	return hmac.Equal([]byte(k.loginToken(cookieValue)), []byte(token))
}

// randomToken returns tokenBytes random bytes, base64url-encoded.
func randomToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin: random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
