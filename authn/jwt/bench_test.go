package jwt

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// benchmarkVerify measures Authenticate on one token, with the token cache
// of the given size (negative: disabled, so every call verifies in full).
// A cached run also checks revocation on every 1,000th call or so: the
// clock is real and RevocationRecheck is its default.
func benchmarkVerify(b *testing.B, alg jose.SignatureAlgorithm, key any, kid string, cacheSize int) {
	k := testKeys()
	now := time.Now()
	clock := func() time.Time { return now }
	if cacheSize >= 0 {
		clock = time.Now
	}
	a, err := New(Config{
		Issuer:      testIssuer,
		Audiences:   []string{testAudience},
		Keys:        staticKeys(k),
		Now:         clock,
		CacheSize:   cacheSize,
		Revocations: revokedSet{},
	})
	if err != nil {
		b.Fatal(err)
	}
	c := claimsAt(now)
	c["roles"] = []string{"admin", "dev"}
	c["scope"] = "tools:read tools:call"
	cred := bearer(sign(b, alg, key, kid, c))
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, cred); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRS256(b *testing.B) {
	benchmarkVerify(b, jose.RS256, testKeys().rsa, "rs", -1)
}

func BenchmarkVerifyES256(b *testing.B) {
	benchmarkVerify(b, jose.ES256, testKeys().ec, "es", -1)
}

func BenchmarkVerifyHS256(b *testing.B) {
	benchmarkVerify(b, jose.HS256, testKeys().hmac, "hs", -1)
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	benchmarkVerify(b, jose.EdDSA, testKeys().ed, "ed", -1)
}

func BenchmarkVerifyCachedRS256(b *testing.B) {
	benchmarkVerify(b, jose.RS256, testKeys().rsa, "rs", 0)
}

func BenchmarkVerifyCachedES256(b *testing.B) {
	benchmarkVerify(b, jose.ES256, testKeys().ec, "es", 0)
}

// revokedSet is a RevocationChecker over a fixed set of token ids.
type revokedSet map[string]bool

func (r revokedSet) TokenRevoked(_ context.Context, jti string) (bool, error) {
	return r[jti], nil
}
