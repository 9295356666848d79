package password_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/password"
)

func TestRoundTrip(t *testing.T) {
	h, err := password.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if ok, err := password.Verify(h, "correct horse battery staple"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	for _, wrong := range []string{"correct horse battery stapl", "", "Correct horse battery staple", strings.Repeat("x", password.MaxLength+1)} {
		if ok, err := password.Verify(h, wrong); ok || err != nil {
			t.Fatalf("wrong password %q: %v %v", wrong, ok, err)
		}
	}
	h2, _ := password.Hash("correct horse battery staple")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if password.NeedsRehash(h) {
		t.Fatal("a fresh hash needs rehashing")
	}
	if !password.NeedsRehash("$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43)) {
		t.Fatal("weaker parameters do not need rehashing")
	}
}

func TestLengthLimits(t *testing.T) {
	if _, err := password.Hash(""); err == nil {
		t.Fatal("empty password hashed")
	}
	long := strings.Repeat("p", password.MaxLength+1)
	_, err := password.Hash(long)
	if err == nil || strings.Contains(err.Error(), long[:20]) {
		t.Fatalf("over-long password: %v", err)
	}
}

func TestHostileHashes(t *testing.T) {
	good, _ := password.Hash("pw-for-hostile-tests")
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	for name, h := range map[string]string{
		"empty":          "",
		"argon2i":        "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"wrong version":  "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"huge memory":    "$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key,
		"huge passes":    "$argon2id$v=19$m=19456,t=1000,p=1$" + salt + "$" + key,
		"zero lanes":     "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"params order":   "$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key,
		"bad salt":       "$argon2id$v=19$m=19456,t=2,p=1$!!!$" + key,
		"short key":      "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$AAAA",
		"extra field":    good + "$x",
		"negative":       "$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + key,
		"overlong input": "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 600) + "$" + key,
	} {
		start := time.Now()
		ok, err := password.Verify(h, "pw-for-hostile-tests")
		if ok || !errors.Is(err, password.ErrMalformed) {
			t.Errorf("%s: ok=%v err=%v", name, ok, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s: took %v", name, time.Since(start))
		}
	}
}

func TestVerifyDummyTakesAsLong(t *testing.T) {
	h := password.NewHasher()
	real, _ := h.Hash("a real password")
	h.VerifyDummy("warm-up") // the dummy hash is made on first use
	measure := func(f func()) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			f()
			best = min(best, time.Since(start))
		}
		return best
	}
	known := measure(func() { h.Verify(real, "wrong") })
	unknown := measure(func() { h.VerifyDummy("wrong") })
	if unknown < known/2 {
		t.Fatalf("VerifyDummy took %v, a real Verify %v: unknown users would be told apart", unknown, known)
	}
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		password.Hash("benchmark password")
	}
}

func BenchmarkVerify(b *testing.B) {
	h, _ := password.Hash("benchmark password")
	for b.Loop() {
		password.Verify(h, "benchmark password")
	}
}
