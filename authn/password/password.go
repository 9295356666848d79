// Package password hashes and verifies the passwords of people who sign in
// to mcpguard's authorization server, with argon2id (RFC 9106) and the
// parameters OWASP recommends: 19 MiB of memory, 2 passes, 1 lane.
//
// A hash is stored as a PHC string, which names the algorithm and its
// parameters next to the salt and the derived key:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// so that the parameters of new hashes can be raised later without
// invalidating the stored ones: [Verify] uses the parameters a hash was made
// with, and [NeedsRehash] says when a user's hash should be replaced after a
// successful sign-in.
//
// Stored hashes are not trusted blindly: [Verify] parses them strictly and
// bounds every parameter, so that a tampered row cannot make a sign-in
// allocate gigabytes or run for minutes, and compares keys in constant time.
//
// A sign-in handler should use a [Hasher], whose [Hasher.VerifyDummy] makes
// a sign-in for an unknown user take as long as one for a known user:
//
//	h := password.NewHasher()
//	u, err := users.Get(name)
//	if errors.Is(err, ErrNotFound) {
//		h.VerifyDummy(pw) // same time as a real verification
//		return errBadLogin
//	}
//	ok, err := h.Verify(u.PasswordHash, pw)
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MaxLength bounds a password, in bytes. argon2 would hash anything, but a
// megabyte "password" is a denial-of-service lever rather than a secret.
const MaxLength = 1024

// The parameters of new hashes (OWASP Password Storage Cheat Sheet).
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// Bounds on the parameters Verify accepts from a stored hash. They admit
// every sensible configuration and refuse the ones that would let a
// tampered hash exhaust memory or time.
const (
	maxMemoryKiB = 256 * 1024 // 256 MiB
	maxPasses    = 10
	maxLanes     = 16
	minSaltLen   = 8 // the least RFC 9106 and the PHC format allow
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
	// maxEncoded bounds a PHC string before it is parsed; the longest
	// acceptable one is well under 256 bytes.
	maxEncoded = 512
)

// b64 is the encoding of salts and keys in PHC strings: standard base64
// without padding. Strict refuses non-zero trailing bits; [decode] refuses
// the rest of what is not the one encoding of its bytes.
var b64 = base64.RawStdEncoding.Strict()

// ErrMalformed marks a stored hash that is not an argon2id PHC string
// within the accepted bounds. Verify's errors wrap it, with details that
// never include the password.
var ErrMalformed = errors.New("password: malformed argon2id hash")

// checkLength refuses a password that is empty or longer than MaxLength.
// Its errors state the rule broken, never the password.
func checkLength(password string) error {
	switch {
	case password == "":
		return errors.New("password: empty password")
	case len(password) > MaxLength:
		return fmt.Errorf("password: password longer than %d bytes", MaxLength)
	}
	return nil
}

// params are the fields of an argon2id PHC string.
type params struct {
	memory uint32 // KiB
	passes uint32
	lanes  uint8
	salt   []byte
	key    []byte
}

// String formats p as a PHC string.
func (p *params) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.passes, p.lanes, b64.EncodeToString(p.salt), b64.EncodeToString(p.key))
}

// derive computes the argon2id key of password with p's parameters and
// salt, as long as p's key.
func (p *params) derive(password string) []byte {
	return argon2.IDKey([]byte(password), p.salt, p.passes, p.memory, p.lanes, uint32(len(p.key)))
}

// Hash returns the argon2id hash of password as a PHC string, with a fresh
// 16-byte random salt and the current parameters. It refuses an empty
// password and one longer than MaxLength.
func Hash(password string) (string, error) {
	if err := checkLength(password); err != nil {
		return "", err
	}
	p := params{memory: memoryKiB, passes: passes, lanes: lanes, salt: make([]byte, saltLen)}
	rand.Read(p.salt) // never fails: it crashes the program instead
	p.key = argon2.IDKey([]byte(password), p.salt, p.passes, p.memory, p.lanes, keyLen)
	return p.String(), nil
}

// Verify reports whether password matches encoded, a PHC string made by
// Hash (with these or other parameters within the accepted bounds).
//
// A wrong password is (false, nil), and so is an empty or over-long one,
// which no hash can match. An encoded string that is not a well-formed
// argon2id hash, or whose parameters exceed the bounds (256 MiB of memory,
// 10 passes, 16 lanes), is an error wrapping ErrMalformed. The key is
// compared in constant time.
func Verify(encoded, password string) (bool, error) {
	p, err := parse(encoded)
	if err != nil {
		return false, err
	}
	if checkLength(password) != nil {
		return false, nil
	}
	return subtle.ConstantTimeCompare(p.derive(password), p.key) == 1, nil
}

// NeedsRehash reports whether encoded was made with other parameters (or
// salt or key lengths) than Hash uses now, or cannot be parsed at all. A
// sign-in handler that has just verified a password should then store a
// fresh Hash of it.
func NeedsRehash(encoded string) bool {
	p, err := parse(encoded)
	return err != nil || p.memory != memoryKiB || p.passes != passes || p.lanes != lanes ||
		len(p.salt) != saltLen || len(p.key) != keyLen
}

// malformed returns an error wrapping ErrMalformed that says what is wrong.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parse reads an argon2id PHC string strictly: the fields in their one
// canonical order and form, every parameter within bounds.
func parse(encoded string) (*params, error) {
	if len(encoded) > maxEncoded {
		return nil, malformed("longer than %d bytes", maxEncoded)
	}
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return nil, malformed("not a PHC string of 5 fields")
	}
	if fields[1] != "argon2id" {
		return nil, malformed("algorithm is not argon2id")
	}
	if fields[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, malformed("version is not %d", argon2.Version)
	}
	list := strings.Split(fields[3], ",")
	if len(list) != 3 {
		return nil, malformed("parameters are not exactly m, t and p")
	}
	var vals [3]uint32
	for i, want := range [...]struct {
		name string
		max  uint32
	}{{"m", maxMemoryKiB}, {"t", maxPasses}, {"p", maxLanes}} {
		v, err := param(list[i], want.name, want.max)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	p := params{memory: vals[0], passes: vals[1], lanes: uint8(vals[2])}
	if p.memory < 8*uint32(p.lanes) {
		return nil, malformed("memory is less than 8 KiB per lane")
	}
	var ok bool
	if p.salt, ok = decode(fields[4]); !ok {
		return nil, malformed("salt is not unpadded base64")
	}
	if len(p.salt) < minSaltLen || len(p.salt) > maxSaltLen {
		return nil, malformed("salt of %d bytes, not %d to %d", len(p.salt), minSaltLen, maxSaltLen)
	}
	if p.key, ok = decode(fields[5]); !ok {
		return nil, malformed("key is not unpadded base64")
	}
	if len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
		return nil, malformed("key of %d bytes, not %d to %d", len(p.key), minKeyLen, maxKeyLen)
	}
	return &p, nil
}

// decode decodes s, which must be the one encoding of its bytes in
// unpadded standard base64. (The decoder alone would skip line breaks.)
func decode(s string) ([]byte, bool) {
	b, err := b64.DecodeString(s)
	return b, err == nil && b64.EncodeToString(b) == s
}

// param reads one parameter of a PHC string, "name=value", whose value
// must be a canonical decimal number from 1 to maxVal.
func param(field, name string, maxVal uint32) (uint32, error) {
	val, ok := strings.CutPrefix(field, name+"=")
	if !ok {
		return 0, malformed("parameters are not exactly m, t and p")
	}
	n, err := strconv.ParseUint(val, 10, 32)
	// The canonical form alone: no sign, no leading zeros.
	if err != nil || strconv.FormatUint(n, 10) != val {
		return 0, malformed("parameter %s is not a decimal number", name)
	}
	if n == 0 || n > uint64(maxVal) {
		return 0, malformed("parameter %s is not between 1 and %d", name, maxVal)
	}
	return uint32(n), nil
}

// dummyHash is what VerifyDummy verifies against: a hash with the current
// parameters of a random key that no known password derives. It needs no
// secrecy, as VerifyDummy ignores the answer: it only has to cost what
// verifying a real user's hash costs, and that depends on the parameters
// alone.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$9idKZV7s//qUJLEp8YCk2Q$8dvN+AKE3GtLF/tP3bR7CPAQB7Fxjopsd9wYybrflt4"

// Hasher hashes and verifies passwords, like the package-level functions,
// and also answers for unknown users in the time it takes for known ones
// ([Hasher.VerifyDummy]). A Hasher made by [NewHasher] computes at most as
// many hashes at once as there are CPUs, the others waiting their turn:
// each hash takes 19 MiB of memory or more, and computing more at once
// than there are CPUs would finish none sooner, so the bound caps the
// memory a burst of sign-ins takes without slowing them. The zero Hasher
// works, without that bound. A Hasher is safe for concurrent use.
type Hasher struct {
	// slots holds a token for every hash being computed; nil means no
	// bound.
	slots chan struct{}
}

// NewHasher returns a Hasher that computes at most runtime.GOMAXPROCS
// hashes at once.
func NewHasher() *Hasher {
	return &Hasher{slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// acquire waits for a free slot and returns the function that frees it.
func (h *Hasher) acquire() (release func()) {
	if h.slots == nil {
		return func() {}
	}
	h.slots <- struct{}{}
	return func() { <-h.slots }
}

// Hash is the package-level [Hash], once a slot is free.
func (h *Hasher) Hash(password string) (string, error) {
	defer h.acquire()()
	return Hash(password)
}

// Verify is the package-level [Verify], once a slot is free.
func (h *Hasher) Verify(encoded, password string) (bool, error) {
	defer h.acquire()()
	return Verify(encoded, password)
}

// VerifyDummy verifies password against a hash that no password is known
// to match, made with the current parameters, and ignores the answer. Call
// it when the user signing in does not exist (or must be refused for a
// reason the response must not reveal), so that the response takes as
// long as a [Hasher.Verify] of a real user's password would and does not
// tell an attacker which user names exist. It takes Verify's code path,
// down to answering at once for an empty or over-long password, as Verify
// does for every user.
func (h *Hasher) VerifyDummy(password string) {
	_, _ = h.Verify(dummyHash, password)
}
