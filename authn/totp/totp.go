// Package totp is mcpguard's second factor for people who sign in: time-
// based one-time passwords (RFC 6238; SHA-1, 6 digits, 30-second steps, as
// every authenticator app expects), computed by github.com/pquerna/otp, and
// single-use backup codes.
//
// Validate returns the time step a code matched so that the caller can
// store it and refuse the same code (or an older one) a second time: a
// TOTP code observed over someone's shoulder is then worthless.
package totp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
)

// The TOTP parameters authenticator apps assume.
const (
	period     = 30
	secretSize = 20
	// skew is how many steps before and after the current one are
	// accepted, for clocks that disagree by up to 30 seconds.
	skew = 1
)

// maxURI bounds what QR encodes.
const maxURI = 2048

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

var opts = ptotp.ValidateOpts{Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Enrollment is a new TOTP secret and the otpauth:// URI that carries it to
// an authenticator app.
type Enrollment struct {
	Secret []byte
	URI    string
}

// Enroll makes a new random secret for account at issuer.
func Enroll(issuer, account string) (*Enrollment, error) {
	key, err := ptotp.Generate(ptotp.GenerateOpts{Issuer: issuer, AccountName: account, Period: period, SecretSize: secretSize, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, fmt.Errorf("totp: enroll: %w", err)
	}
	secret, err := b32.DecodeString(strings.TrimRight(key.Secret(), "="))
	if err != nil {
		return nil, fmt.Errorf("totp: enroll: %w", err)
	}
	return &Enrollment{Secret: secret, URI: key.URL()}, nil
}

// GenerateCode returns the code for secret at time t.
func GenerateCode(secret []byte, t time.Time) (string, error) {
	code, err := ptotp.GenerateCodeCustom(b32.EncodeToString(secret), t, opts)
	if err != nil {
		return "", fmt.Errorf("totp: %w", err)
	}
	return code, nil
}

// Validate reports whether code is the code for secret at now, or one step
// before or after, and returns the time step (Unix time / 30) it matched.
// The caller must refuse a step not greater than the last one it accepted.
func Validate(secret []byte, code string, now time.Time) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" || len(secret) == 0 {
		return 0, false
	}
	current := now.Unix() / period
	matched := int64(-1)
	// Every candidate is computed and compared, so that the time taken does
	// not depend on which one matched.
	for s := current - skew; s <= current+skew; s++ {
		want, err := GenerateCode(secret, time.Unix(s*period, 0))
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched = s
		}
	}
	if matched < 0 {
		return 0, false
	}
	return matched, true
}

// backupAlphabet has no characters that are easily confused (0/o, 1/l/i).
const backupAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

// NewBackupCodes returns n codes to show the user once, grouped as
// "abcde-fghij", and the digests to store.
func NewBackupCodes(n int) (codes []string, hashes [][]byte, err error) {
	if n <= 0 || n > 100 {
		return nil, nil, errors.New("totp: between 1 and 100 backup codes")
	}
	for range n {
		b := make([]byte, 10)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("totp: backup code: %w", err)
		}
		var sb strings.Builder
		for i, v := range b {
			if i == 5 {
				sb.WriteByte('-')
			}
			// 31 symbols: the modulo bias of a byte is negligible for a
			// 50-bit single-use code guarded by a lockout.
			sb.WriteByte(backupAlphabet[int(v)%len(backupAlphabet)])
		}
		codes = append(codes, sb.String())
		hashes = append(hashes, HashBackupCode(sb.String()))
	}
	return codes, hashes, nil
}

// HashBackupCode returns the digest a backup code is stored and looked up
// by: SHA-256 of the code lower-cased, without spaces and dashes, so that
// "ABCDE FGHIJ" and "abcde-fghij" match.
func HashBackupCode(code string) []byte {
	norm := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(code)))
	sum := sha256.Sum256([]byte(norm))
	return sum[:]
}

// QR renders uri as a QR code for a terminal: two modules per character
// with Unicode half blocks, dark modules as spaces on a light quiet zone so
// that it scans on dark and light terminals alike.
func QR(uri string) (string, error) {
	if len(uri) > maxURI {
		return "", fmt.Errorf("totp: URI longer than %d bytes", maxURI)
	}
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("totp: QR: %w", err)
	}
	size := code.Bounds().Dx()
	const quiet = 2
	// light reports whether the module at (x, y) is light; outside the
	// code (the quiet zone) everything is.
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= size || y >= size {
			return true
		}
		r, _, _, _ := code.At(x, y).RGBA()
		return r > 0x7fff
	}
	var sb strings.Builder
	for y := -quiet; y < size+quiet; y += 2 {
		for x := -quiet; x < size+quiet; x++ {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				sb.WriteRune('█')
			case top:
				sb.WriteRune('▀')
			case bottom:
				sb.WriteRune('▄')
			default:
				sb.WriteByte(' ')
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}
