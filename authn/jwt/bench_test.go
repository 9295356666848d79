package jwt

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func benchmarkVerify(b *testing.B, alg jose.SignatureAlgorithm, key any, kid string) {
	k := testKeys()
	now := time.Now()
	a, err := New(Config{
		Issuer:    testIssuer,
		Audiences: []string{testAudience},
		Keys:      staticKeys(k),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		b.Fatal(err)
	}
	c := claimsAt(now)
	c["roles"] = []string{"admin", "dev"}
	c["scope"] = "tools:read tools:call"
	cred := bearer(sign(b, alg, key, kid, c))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRS256(b *testing.B) {
	benchmarkVerify(b, jose.RS256, testKeys().rsa, "rs")
}

func BenchmarkVerifyES256(b *testing.B) {
	benchmarkVerify(b, jose.ES256, testKeys().ec, "es")
}

func BenchmarkVerifyHS256(b *testing.B) {
	benchmarkVerify(b, jose.HS256, testKeys().hmac, "hs")
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	benchmarkVerify(b, jose.EdDSA, testKeys().ed, "ed")
}
