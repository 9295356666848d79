package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpguard/mcpguard/internal/seal"
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
	box    *seal.Box
	macKey []byte
	aad    []byte
}

func newSealer(key []byte, cookieName string) (*sealer, error) {
	box, err := seal.New(key, "mcpguard admin session v1", maxCookieValue)
	if err != nil {
		return nil, fmt.Errorf("admin: session key: %w", err)
	}
	macKey, err := seal.DeriveKey(key, "mcpguard admin login csrf v1")
	if err != nil {
		return nil, fmt.Errorf("admin: csrf key: %w", err)
	}
	// The cookie name is authenticated, so that a sealed value cannot be
	// replayed under another cookie.
	return &sealer{box: box, macKey: macKey, aad: []byte("cookie:" + cookieName)}, nil
}

// seal returns s encrypted and encoded for a cookie value.
func (k *sealer) seal(s *session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("admin: encode session: %w", err)
	}
	v, err := k.box.Seal(plain, k.aad)
	if err != nil {
		return "", fmt.Errorf("admin: session does not fit a cookie: %w", err)
	}
	return v, nil
}

// open decrypts a cookie value and checks that the session has not expired
// at now. Any failure is errBadSession.
func (k *sealer) open(v string, now time.Time) (*session, error) {
	plain, ok := k.box.Open(v, k.aad)
	if !ok {
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
