package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

func hmacSHA256(key []byte, input string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
