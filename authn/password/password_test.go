package password_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/mcpguard/mcpguard/authn/password"
)

const pw = "correct horse battery staple"

// phc matches a hash with the current parameters: a 16-byte salt and a
// 32-byte key in unpadded base64.
var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestRoundTrip(t *testing.T) {
	h, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	if !phc.MatchString(h) {
		t.Fatalf("hash %q is not an argon2id PHC string with OWASP's parameters", h)
	}
	if ok, err := password.Verify(h, pw); !ok || err != nil {
		t.Fatalf("Verify(right password) = %v, %v", ok, err)
	}
	h2, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	if h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if ok, err := password.Verify(h2, pw); !ok || err != nil {
		t.Fatalf("Verify(second hash) = %v, %v", ok, err)
	}
}

func TestWrongPassword(t *testing.T) {
	h, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []string{
		pw[:len(pw)-1], pw + " ", "Correct horse battery staple", "",
		strings.Repeat("x", password.MaxLength+1),
	} {
		if ok, err := password.Verify(h, wrong); ok || err != nil {
			t.Errorf("Verify(%.20q) = %v, %v; want false, nil", wrong, ok, err)
		}
	}
}

func TestLengthLimits(t *testing.T) {
	if _, err := password.Hash(""); err == nil {
		t.Error("empty password hashed")
	}
	longest := strings.Repeat("p", password.MaxLength)
	h, err := password.Hash(longest)
	if err != nil {
		t.Fatalf("a password of MaxLength bytes: %v", err)
	}
	if ok, err := password.Verify(h, longest); !ok || err != nil {
		t.Fatalf("Verify(MaxLength bytes) = %v, %v", ok, err)
	}
	secret := "s3cr3t-" + strings.Repeat("q", password.MaxLength)
	_, err = password.Hash(secret)
	if err == nil {
		t.Fatal("a password over MaxLength hashed")
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("error %q should state the limit and not echo the password", err)
	}
}

// argon2idPHC formats a hash the way Hash does, with any parameters.
func argon2idPHC(pass string, salt []byte, m, tm uint32, p uint8, keyLen uint32) string {
	key := argon2.IDKey([]byte(pass), salt, tm, m, p, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, tm, p, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// Hashes made with other parameters within the bounds still verify, and
// need rehashing.
func TestOtherParameters(t *testing.T) {
	for _, h := range []string{
		argon2idPHC(pw, []byte("12345678"), 8192, 1, 1, 16),
		argon2idPHC(pw, []byte("0123456789abcdef0123"), 12288, 3, 2, 64),
		argon2idPHC(pw, []byte("0123456789abcdef"), 19456, 2, 1, 24),     // shorter key only
		argon2idPHC(pw, []byte("0123456789abcdef0123"), 19456, 2, 1, 32), // longer salt only
	} {
		if ok, err := password.Verify(h, pw); !ok || err != nil {
			t.Errorf("Verify(%s) = %v, %v", h, ok, err)
		}
		if ok, err := password.Verify(h, "not "+pw); ok || err != nil {
			t.Errorf("Verify(%s, wrong) = %v, %v", h, ok, err)
		}
		if !password.NeedsRehash(h) {
			t.Errorf("NeedsRehash(%s) = false", h)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	h, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	if password.NeedsRehash(h) {
		t.Error("a fresh hash needs rehashing")
	}
	if !password.NeedsRehash("not a hash") {
		t.Error("an unparsable hash does not need rehashing")
	}
}

// Stored hashes are input: a tampered or corrupt one must be refused
// quickly, with an error and never a panic, and must not cost the memory
// or time it asks for.
func TestHostileHashes(t *testing.T) {
	good, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(good, "$")
	salt, key := f[4], f[5]
	with := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	for name, h := range map[string]string{
		"empty":               "",
		"no leading $":        strings.TrimPrefix(good, "$"),
		"extra field":         good + "$x",
		"missing key":         strings.Join(f[:5], "$"),
		"argon2i":             "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"argon2d":             "$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"bcrypt":              "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"version 16":          "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"no version":          "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key + "$",
		"huge memory":         with("m=4194304,t=2,p=1"),
		"memory just over":    with("m=262145,t=2,p=1"),
		"memory overflow":     with("m=99999999999999999999,t=2,p=1"),
		"huge passes":         with("m=19456,t=1000,p=1"),
		"passes just over":    with("m=19456,t=11,p=1"),
		"huge lanes":          with("m=19456,t=2,p=255"),
		"lanes just over":     with("m=19456,t=2,p=17"),
		"zero passes":         with("m=19456,t=0,p=1"),
		"zero lanes":          with("m=19456,t=2,p=0"),
		"zero memory":         with("m=0,t=2,p=1"),
		"memory under 8p":     with("m=15,t=2,p=2"),
		"negative":            with("m=-1,t=2,p=1"),
		"plus sign":           with("m=+19456,t=2,p=1"),
		"leading zero":        with("m=019456,t=2,p=1"),
		"hex":                 with("m=0x4c00,t=2,p=1"),
		"params out of order": with("t=2,m=19456,p=1"),
		"missing param":       with("m=19456,t=2"),
		"extra param":         with("m=19456,t=2,p=1,k=1"),
		"keyid param":         with("m=19456,t=2,p=1,keyid=x"),
		"space":               with("m=19456, t=2,p=1"),
		"bad salt base64":     "$argon2id$v=19$m=19456,t=2,p=1$!!!!$" + key,
		"padded salt":         "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key,
		"url-safe key":        "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("_", 43),
		"trailing bits":       "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:42] + "B",
		"line break in key":   "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:20] + "\r\n" + key[20:],
		"short salt":          "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAA$" + key,
		"long salt":           "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 88) + "$" + key,
		"empty salt":          "$argon2id$v=19$m=19456,t=2,p=1$$" + key,
		"short key":           "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$AAAAAAAAAAAAAAAAAAAA",
		"long key":            "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("A", 88),
		"overlong input":      "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 600) + "$" + key,
	} {
		start := time.Now()
		ok, err := password.Verify(h, pw)
		if ok || !errors.Is(err, password.ErrMalformed) {
			t.Errorf("%s: Verify = %v, %v; want an ErrMalformed", name, ok, err)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("%s: error %q contains the password", name, err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s: refused only after %v: it was computed", name, d)
		}
		if !password.NeedsRehash(h) {
			t.Errorf("%s: NeedsRehash = false", name)
		}
	}
}

// VerifyDummy is there so that an unknown user's sign-in takes as long as
// a known user's.
func TestVerifyDummyTakesAsLong(t *testing.T) {
	h := password.NewHasher()
	real, err := h.Hash("a real password")
	if err != nil {
		t.Fatal(err)
	}
	// The fastest of several interleaved runs of each, so that load on the
	// machine (other tests, other processes) hits both alike; the bound is
	// loose because only a gross difference (no hashing at all) matters.
	known, unknown := time.Hour, time.Hour
	for range 7 {
		start := time.Now()
		h.Verify(real, "a wrong password")
		known = min(known, time.Since(start))
		start = time.Now()
		h.VerifyDummy("a wrong password")
		unknown = min(unknown, time.Since(start))
	}
	if unknown < known/3 || unknown > known*3 {
		t.Fatalf("VerifyDummy took %v, a real Verify %v: unknown users could be told apart", unknown, known)
	}
}

// The Hasher's methods agree with the package-level functions, its zero
// value works, and it can be used from many goroutines at once.
func TestHasher(t *testing.T) {
	for name, h := range map[string]*password.Hasher{"NewHasher": password.NewHasher(), "zero": {}} {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range cap(errs) {
			wg.Go(func() {
				p := fmt.Sprintf("password %d", i)
				enc, err := h.Hash(p)
				if err != nil {
					errs <- err
					return
				}
				if ok, err := password.Verify(enc, p); !ok || err != nil {
					errs <- fmt.Errorf("package Verify of a Hasher's hash: %v, %v", ok, err)
				}
				if ok, err := h.Verify(enc, p+"!"); ok || err != nil {
					errs <- fmt.Errorf("Hasher.Verify(wrong) = %v, %v", ok, err)
				}
				h.VerifyDummy(p)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := password.Hash("benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h, err := password.Hash("benchmark password")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := password.Verify(h, "benchmark password"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
