// Package totp is the second factor of people who sign in to mcpguard's
// authorization server: time-based one-time passwords (RFC 6238) as every
// authenticator app computes them (HMAC-SHA-1, 6 digits, 30-second steps),
// and single-use backup codes for when the phone is lost.
//
// The codes themselves are computed by github.com/pquerna/otp; this
// package chooses the parameters, checks input strictly, compares in
// constant time and tells the caller which time step a code matched.
//
// Enrolment gives the user a secret, through the otpauth:// URI of an
// [Enrollment] (shown as a [QR] code), and backup codes from
// [NewBackupCodes], of which only the digests are stored. A sign-in then
// checks a code:
//
//	step, ok := totp.Validate(user.Secret, code, time.Now())
//	if !ok || step <= user.LastStep {
//		return errBadCode // wrong, or already used
//	}
//	user.LastStep = step // store before accepting
//
// Storing the step and refusing any step not after it makes every code
// single-use: a code seen over someone's shoulder, or replayed by a
// phishing proxy, is worthless once its owner has used it.
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
	// period is the length of a time step, in seconds.
	period = 30
	// digits is the length of a code.
	digits = 6
	// secretSize is the length of new secrets: 160 bits, as RFC 4226
	// recommends.
	secretSize = 20
	// minSecretSize is the least secret length accepted: 128 bits, the
	// least RFC 4226 allows.
	minSecretSize = 16
	// skew is how many steps before and after the current one are
	// accepted, for a phone whose clock is up to 30 seconds off, or a user
	// who types the code as it changes.
	skew = 1
)

// Bounds on input.
const (
	// maxURI bounds what QR encodes.
	maxURI = 2048
	// maxLabel bounds the issuer and the account name of an enrolment.
	maxLabel = 256
	// maxBackupCodes bounds one call of NewBackupCodes.
	maxBackupCodes = 100
)

// b32 encodes secrets for pquerna/otp and otpauth:// URIs.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// opts are the parameters of every code.
var opts = ptotp.ValidateOpts{Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Enrollment is a new TOTP secret for one account.
type Enrollment struct {
	// Secret is the shared secret (20 random bytes). Store it with the
	// account, as a secret: anyone who has it can compute the codes.
	Secret []byte
	// URI is the otpauth:// key URI that carries Secret, the issuer and
	// the account name to an authenticator app, usually as a [QR] code.
	// It contains the secret: show it to the user once, never log it.
	URI string
}

// Enroll returns a new random secret for account at issuer (the service
// name the authenticator app shows, "mcpguard" say), and the otpauth://
// URI to give it to the app. Both names are required; the issuer may not
// contain a colon, which separates it from the account in the URI.
func Enroll(issuer, account string) (*Enrollment, error) {
	switch {
	case issuer == "" || account == "":
		return nil, errors.New("totp: enroll: issuer and account name are required")
	case len(issuer) > maxLabel || len(account) > maxLabel:
		return nil, fmt.Errorf("totp: enroll: issuer or account name longer than %d bytes", maxLabel)
	case strings.Contains(issuer, ":"):
		return nil, errors.New("totp: enroll: the issuer contains a colon")
	}
	secret := make([]byte, secretSize)
	rand.Read(secret) // never fails: it crashes the program instead
	key, err := ptotp.Generate(ptotp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      period,
		Secret:      secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("totp: enroll: %w", err)
	}
	return &Enrollment{Secret: secret, URI: key.URL()}, nil
}

// GenerateCode returns the 6-digit code for secret at time t, as an
// authenticator app would show it then. Sign-ins use Validate; this is for
// tests, and for clients that hold the secret themselves.
func GenerateCode(secret []byte, t time.Time) (string, error) {
	if len(secret) < minSecretSize {
		return "", fmt.Errorf("totp: secret of %d bytes, less than %d", len(secret), minSecretSize)
	}
	code, err := ptotp.GenerateCodeCustom(b32.EncodeToString(secret), t, opts)
	if err != nil {
		return "", fmt.Errorf("totp: generate code: %w", err)
	}
	return code, nil
}

// Validate reports whether code is secret's code for the time step of now
// or for the step before or after it, and if so returns the step matched
// (Unix time / 30). The caller must also refuse the code unless step is
// greater than the last step it accepted for this secret, and then store
// step: that makes codes single-use.
//
// code must be exactly 6 ASCII digits once surrounding white space is
// trimmed; anything else is refused without computing a code. All three
// candidate codes are computed and each is compared in constant time, so
// the time taken tells neither how much of the code was right nor whether
// it matched.
func Validate(secret []byte, code string, now time.Time) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if len(code) != digits || strings.Trim(code, "0123456789") != "" {
		return 0, false
	}
	if now.Unix() < period*skew {
		return 0, false // a clock stuck near 1970: steps would go negative
	}
	current := now.Unix() / period
	matched := 0
	for s := current - skew; s <= current+skew; s++ {
		want, err := GenerateCode(secret, time.Unix(s*period, 0))
		if err != nil {
			return 0, false
		}
		// Should two steps' codes coincide, the later step is returned,
		// which refuses the most on reuse.
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		if eq == 1 {
			step = s
		}
		matched |= eq
	}
	if matched == 0 {
		return 0, false
	}
	return step, true
}

// backupAlphabet holds the 31 characters of backup codes: lower-case
// letters and digits without those easily confused (0 and o, 1, i and l).
const backupAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

// backupLen is the number of characters in a backup code: about 49 bits.
const backupLen = 10

// NewBackupCodes returns n new backup codes (1 ≤ n ≤ 100) to show the user
// once, and their digests, HashBackupCode(codes[i]), to store instead of
// the codes. Each code is 10 characters drawn uniformly from an alphabet
// without look-alike characters, shown in two groups as "abcde-fghij". The
// codes are distinct. A backup code stands in for a TOTP code once: the
// caller deletes its digest when it is used.
func NewBackupCodes(n int) (codes []string, hashes [][]byte, err error) {
	if n < 1 || n > maxBackupCodes {
		return nil, nil, fmt.Errorf("totp: %d backup codes asked for, not 1 to %d", n, maxBackupCodes)
	}
	codes = make([]string, 0, n)
	hashes = make([][]byte, 0, n)
	seen := make(map[string]bool, n)
	for len(codes) < n {
		c := newBackupCode()
		if seen[c] {
			continue // about one chance in 10^13 per pair
		}
		seen[c] = true
		codes = append(codes, c)
		hashes = append(hashes, HashBackupCode(c))
	}
	return codes, hashes, nil
}

// newBackupCode returns a random backup code, "abcde-fghij".
func newBackupCode() string {
	// Rejection sampling keeps every character equally likely: random
	// bytes at or above the largest multiple of the alphabet's size are
	// skipped rather than folded onto the first characters.
	const limit = 256 - 256%len(backupAlphabet)
	var c [backupLen]byte
	var buf [2 * backupLen]byte
	for n := 0; n < len(c); {
		rand.Read(buf[:]) // never fails: it crashes the program instead
		for _, b := range buf {
			if n < len(c) && int(b) < limit {
				c[n] = backupAlphabet[int(b)%len(backupAlphabet)]
				n++
			}
		}
	}
	return string(c[:backupLen/2]) + "-" + string(c[backupLen/2:])
}

// HashBackupCode returns the digest by which a backup code is stored and
// looked up: the SHA-256 of the code lower-cased (ASCII letters only), with
// spaces and dashes removed and surrounding white space trimmed. A code typed "ABCDE FGHIJ" therefore matches one issued as
// "abcde-fghij". Being a fast hash of a random 49-bit code, it is safe to
// store only alongside a limit on failed attempts.
func HashBackupCode(code string) []byte {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-':
			return -1
		case 'A' <= r && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, strings.TrimSpace(code))
	sum := sha256.Sum256([]byte(norm))
	return sum[:]
}

// quietZone is the light border around a QR code, in modules: the four
// ISO/IEC 18004 asks for, so that a scanner finds the code's edges.
const quietZone = 4

// QR renders uri as a QR code (error correction level M) for a terminal,
// one line per two rows of modules, with the Unicode half blocks ▀ ▄ █ and
// spaces, and a quiet zone of four light modules around it.
//
// Light modules are drawn as block characters and dark ones as spaces, as
// qrencode's UTF8 output does, so the code reads correctly on a terminal
// with light text on a dark background, the common case; on a light
// background it appears inverted, which most phone scanners also read.
// uri may be at most 2048 bytes.
func QR(uri string) (string, error) {
	switch {
	case uri == "":
		return "", errors.New("totp: QR: empty URI")
	case len(uri) > maxURI:
		return "", fmt.Errorf("totp: QR: URI of %d bytes, more than %d", len(uri), maxURI)
	}
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("totp: QR: %w", err)
	}
	size := code.Bounds().Dx()
	// light reports whether the module at (x, y) is light; the quiet zone
	// outside the code is.
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= size || y >= size {
			return true
		}
		r, _, _, _ := code.At(x, y).RGBA()
		return r > 0x7fff
	}
	var sb strings.Builder
	sb.Grow((size + 2*quietZone) * (size/2 + quietZone + 1) * len("█"))
	for y := -quietZone; y < size+quietZone; y += 2 {
		for x := -quietZone; x < size+quietZone; x++ {
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
