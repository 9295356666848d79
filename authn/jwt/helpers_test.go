package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/internal/clocktest"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

const (
	testIssuer   = "https://idp.example.com/"
	testAudience = "https://mcp.example.com"
)

// testKeyPairs holds the private keys the tests sign with. Generating RSA
// keys is slow, so they are made once per test binary and never modified.
type testKeyPairs struct {
	rsa      *rsa.PrivateKey
	rsaOther *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	ec384    *ecdsa.PrivateKey
	ed       ed25519.PrivateKey
	hmac     []byte
}

var testKeys = sync.OnceValue(func() *testKeyPairs {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeyPairs
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.hmac = make([]byte, 32)
	_, err = rand.Read(k.hmac)
	must(err)
	return &k
})

// staticKeys is a key set with one key per algorithm family.
func staticKeys(k *testKeyPairs) []Key {
	return []Key{
		{ID: "rs", Algorithm: "RS256", Key: &k.rsa.PublicKey},
		{ID: "es", Algorithm: "ES256", Key: &k.ec.PublicKey},
		{ID: "ed", Algorithm: "EdDSA", Key: k.ed.Public()},
		{ID: "hs", Algorithm: "HS256", Key: k.hmac},
	}
}

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// claimsAt returns valid claims for a token issued at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"sub": "alice",
		"aud": []string{testAudience},
		"exp": josejwt.NewNumericDate(now.Add(time.Hour)),
		"iat": josejwt.NewNumericDate(now),
		"jti": "token-1",
	}
}

// sign makes a compact JWS of claims with key under alg, naming kid in the
// header when it is not empty.
func sign(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		tb.Fatalf("NewSigner: %v", err)
	}
	tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatalf("Serialize: %v", err)
	}
	return tok
}

// unsigned makes a token with the given header and claims and an empty
// signature, as an attacker would for alg "none".
func unsigned(tb testing.TB, header, claims map[string]any) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "."
}

// publicPEM encodes pub as a PKIX PEM block.
func publicPEM(tb testing.TB, pub any) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwksJSON serializes keys as a JWK Set.
func jwksJSON(tb testing.TB, keys ...jose.JSONWebKey) []byte {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
