// Package password hashes and verifies the passwords of people who sign in
// to mcpguard's authorization server, with argon2id (RFC 9106) and OWASP's
// recommended parameters (19 MiB of memory, 2 passes, 1 lane).
//
// Hashes are PHC strings, so that parameters can change later without
// invalidating stored hashes:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// Verification parses the stored string strictly and bounds its
// parameters, so that a tampered row cannot make a login allocate
// gigabytes, and compares in constant time.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// The parameters of new hashes.
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// Bounds on what Verify accepts from a stored hash.
const (
	maxMemoryKiB = 256 * 1024
	maxPasses    = 10
	maxLanes     = 16
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	maxEncoded   = 512
)

// MaxLength bounds a password in bytes: argon2 would hash anything, but a
// megabyte "password" is a denial-of-service lever, not a secret.
const MaxLength = 1024

// ErrMalformed marks a stored hash that is not an argon2id PHC string
// within the accepted bounds.
var ErrMalformed = errors.New("password: malformed argon2id hash")

func checkLength(password string) error {
	switch {
	case password == "":
		return errors.New("password: empty password")
	case len(password) > MaxLength:
		return fmt.Errorf("password: longer than %d bytes", MaxLength)
	}
	return nil
}

// Hash returns the argon2id hash of password as a PHC string, with a fresh
// random salt.
func Hash(password string) (string, error) {
	if err := checkLength(password); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, passes, memoryKiB, lanes, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, memoryKiB, passes, lanes, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// params are a parsed PHC string.
type params struct {
	memory uint32
	passes uint32
	lanes  uint8
	salt   []byte
	key    []byte
}

func parse(encoded string) (*params, error) {
	if len(encoded) > maxEncoded {
		return nil, ErrMalformed
	}
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, ErrMalformed
	}
	var p params
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return nil, ErrMalformed
	}
	for i, want := range []string{"m", "t", "p"} {
		name, val, ok := strings.Cut(fields[i], "=")
		if !ok || name != want {
			return nil, ErrMalformed
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || n == 0 {
			return nil, ErrMalformed
		}
		switch want {
		case "m":
			if n > maxMemoryKiB {
				return nil, ErrMalformed
			}
			p.memory = uint32(n)
		case "t":
			if n > maxPasses {
				return nil, ErrMalformed
			}
			p.passes = uint32(n)
		case "p":
			if n > maxLanes {
				return nil, ErrMalformed
			}
			p.lanes = uint8(n)
		}
	}
	if p.memory < 8*uint32(p.lanes) {
		return nil, ErrMalformed
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(p.salt) < 8 || len(p.salt) > maxSaltLen {
		return nil, ErrMalformed
	}
	if p.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
		return nil, ErrMalformed
	}
	return &p, nil
}

// Verify reports whether password matches the stored hash encoded. A wrong
// password is (false, nil); a hash that cannot be parsed is an error
// wrapping ErrMalformed.
func Verify(encoded, password string) (bool, error) {
	p, err := parse(encoded)
	if err != nil {
		return false, err
	}
	if checkLength(password) != nil {
		return false, nil
	}
	got := argon2.IDKey([]byte(password), p.salt, p.passes, p.memory, p.lanes, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(got, p.key) == 1, nil
}

// NeedsRehash reports whether encoded was made with other parameters than
// Hash uses now, so that a caller can store a new hash after a successful
// login.
func NeedsRehash(encoded string) bool {
	p, err := parse(encoded)
	return err != nil || p.memory != memoryKiB || p.passes != passes || p.lanes != lanes || len(p.key) != keyLen
}

// Hasher verifies passwords and also answers for unknown users in the same
// time as for known ones. Its zero value is not usable: use NewHasher.
type Hasher struct {
	dummy func() string
}

// NewHasher returns a Hasher. The hash VerifyDummy checks against is made
// on first use.
func NewHasher() *Hasher {
	return &Hasher{dummy: sync.OnceValue(func() string {
		h, err := Hash("mcpguard dummy password for unknown users")
		if err != nil {
			panic(err) // crypto/rand failed: nothing can be hashed
		}
		return h
	})}
}

// Hash is the package-level Hash.
func (h *Hasher) Hash(password string) (string, error) { return Hash(password) }

// Verify is the package-level Verify.
func (h *Hasher) Verify(encoded, password string) (bool, error) { return Verify(encoded, password) }

// VerifyDummy spends the time of a Verify against a real hash and returns
// nothing: call it when the user does not exist, so that the response time
// does not tell an attacker which user names are real.
func (h *Hasher) VerifyDummy(password string) {
	if len(password) > MaxLength {
		password = password[:MaxLength]
	}
	_, _ = Verify(h.dummy(), password)
}
