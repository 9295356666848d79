package jwt

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	k := testKeys()
	rsaKey := Key{ID: "rs", Algorithm: "RS256", Key: &k.rsa.PublicKey}
	base := func(edit func(*Config)) Config {
		c := Config{Issuer: testIssuer, Audiences: []string{testAudience}, Keys: []Key{rsaKey}}
		edit(&c)
		return c
	}
	withKey := func(key Key) Config { return base(func(c *Config) { c.Keys = []Key{key} }) }
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"missing issuer", base(func(c *Config) { c.Issuer = "" }), "Issuer is required"},
		{"missing audience", base(func(c *Config) { c.Audiences = nil }), "at least one audience"},
		{"empty audience", base(func(c *Config) { c.Audiences = []string{""} }), "empty audience"},
		{"no keys", base(func(c *Config) { c.Keys = nil }), "no keys"},
		{"alg none", withKey(Key{Algorithm: "none", Key: k.hmac}), `"none" is never allowed`},
		{"alg missing", withKey(Key{Key: k.hmac}), "missing algorithm"},
		{"alg unknown", withKey(Key{Algorithm: "HS1", Key: k.hmac}), `unsupported algorithm "HS1"`},
		{"HS256 key too short", withKey(Key{Algorithm: "HS256", Key: []byte("short")}), "at least 32 bytes"},
		{"HS512 key too short", withKey(Key{Algorithm: "HS512", Key: k.hmac}), "at least 64 bytes"},
		{"HS256 with RSA key", withKey(Key{Algorithm: "HS256", Key: &k.rsa.PublicKey}), "needs a []byte secret"},
		{"RS256 with secret", withKey(Key{Algorithm: "RS256", Key: k.hmac}), "needs an *rsa.PublicKey"},
		{"RS256 with private key", withKey(Key{Algorithm: "RS256", Key: k.rsa}), "needs an *rsa.PublicKey"},
		{"RS256 small key", withKey(Key{Algorithm: "RS256", Key: &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}}), "1024 bits"},
		{"RS256 bad exponent", withKey(Key{Algorithm: "RS256", Key: &rsa.PublicKey{N: k.rsa.N, E: 1}}), "public exponent"},
		{"ES384 with P-256 key", withKey(Key{Algorithm: "ES384", Key: &k.ec.PublicKey}), "needs curve P-384"},
		{"ES256 with Ed25519 key", withKey(Key{Algorithm: "ES256", Key: k.ed.Public()}), "needs an *ecdsa.PublicKey"},
		{"EdDSA with private key", withKey(Key{Algorithm: "EdDSA", Key: k.ed}), "needs an ed25519.PublicKey"},
		{"EdDSA short key", withKey(Key{Algorithm: "EdDSA", Key: ed25519.PublicKey{1, 2, 3}}), "has 3 bytes"},
		{"two keys, one without ID", base(func(c *Config) {
			c.Keys = []Key{rsaKey, {Algorithm: "ES256", Key: &k.ec.PublicKey}}
		}), "an ID is required"},
		{"duplicate IDs", base(func(c *Config) {
			c.Keys = []Key{rsaKey, {ID: "rs", Algorithm: "ES256", Key: &k.ec.PublicKey}}
		}), `duplicate ID "rs"`},
		{"JWKS over http", base(func(c *Config) { c.JWKSURL = "http://idp.example.com/jwks" }), "must use https"},
		{"JWKS other scheme", base(func(c *Config) { c.JWKSURL = "file:///etc/jwks.json" }), "must use https"},
		{"JWKS no host", base(func(c *Config) { c.JWKSURL = "https:///jwks" }), "no host"},
		{"JWKS bad URL", base(func(c *Config) { c.JWKSURL = "https://[::1" }), "not a valid URL"},
		{"negative TTL", base(func(c *Config) { c.JWKSURL = "https://idp.example.com/jwks"; c.JWKSCacheTTL = -time.Second }), "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New accepted the config: %+v", a)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewAcceptsConfig(t *testing.T) {
	t.Parallel()
	k := testKeys()
	tests := []struct {
		name     string
		cfg      Config
		wantAlgs []jose.SignatureAlgorithm
	}{
		{
			name:     "static keys only allow their algorithms",
			cfg:      Config{Keys: staticKeys(k)},
			wantAlgs: []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA, jose.HS256},
		},
		{
			name:     "JWKS allows asymmetric algorithms only",
			cfg:      Config{JWKSURL: "https://idp.example.com/.well-known/jwks.json"},
			wantAlgs: asymmetricAlgs,
		},
		{
			name:     "http loopback JWKS",
			cfg:      Config{JWKSURL: "http://127.0.0.1:8080/jwks"},
			wantAlgs: asymmetricAlgs,
		},
		{
			name:     "http localhost JWKS",
			cfg:      Config{JWKSURL: "http://localhost/jwks"},
			wantAlgs: asymmetricAlgs,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Issuer, tt.cfg.Audiences = testIssuer, []string{testAudience}
			a, err := New(tt.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if !reflect.DeepEqual(a.algs, tt.wantAlgs) {
				t.Errorf("allowed algs = %v, want %v", a.algs, tt.wantAlgs)
			}
			if a.leeway != defaultLeeway {
				t.Errorf("leeway = %v, want %v", a.leeway, defaultLeeway)
			}
		})
	}
}

func TestNewCopiesSecrets(t *testing.T) {
	t.Parallel()
	k := testKeys()
	secret := append([]byte(nil), k.hmac...)
	clock := newFakeClock()
	a, err := New(Config{
		Issuer: testIssuer, Audiences: []string{testAudience}, Now: clock.Now,
		Keys: []Key{{ID: "hs", Algorithm: "HS256", Key: secret}},
	})
	if err != nil {
		t.Fatal(err)
	}
	clear(secret) // the caller reuses its buffer
	tok := sign(t, jose.HS256, k.hmac, "hs", claimsAt(clock.Now()))
	if _, err := a.Authenticate(context.Background(), bearer(tok)); err != nil {
		t.Errorf("Authenticate after the caller cleared its secret: %v", err)
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	t.Parallel()
	k := testKeys()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "idp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(-time.Minute), // expired: irrelevant for a key container
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec.PublicKey, k.ec)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	tests := []struct {
		name    string
		in      []byte
		want    any
		wantErr string
	}{
		{"PKIX RSA", publicPEM(t, &k.rsa.PublicKey), &k.rsa.PublicKey, ""},
		{"PKIX EC", publicPEM(t, &k.ec.PublicKey), &k.ec.PublicKey, ""},
		{"PKIX Ed25519", publicPEM(t, k.ed.Public()), k.ed.Public(), ""},
		{"PKCS1 RSA", block("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)), &k.rsa.PublicKey, ""},
		{"certificate", block("CERTIFICATE", certDER), &k.ec.PublicKey, ""},
		{"leading text", append([]byte("comment\n"), publicPEM(t, k.ed.Public())...), k.ed.Public(), ""},
		{"private key refused", block("PRIVATE KEY", pkcs8), nil, "holds a private key"},
		{"not PEM", []byte("hello"), nil, "no PEM block"},
		{"corrupt DER", block("PUBLIC KEY", []byte{1, 2, 3}), nil, "parsing PEM block"},
		{"unknown block", block("X509 CRL", []byte{1}), nil, "unsupported PEM block"},
		{"too large", make([]byte, maxPEMSize+1), nil, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePublicKeyPEM(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			pub, ok := got.(interface{ Equal(crypto.PublicKey) bool })
			ok = ok && pub.Equal(tt.want)
			if !ok {
				t.Errorf("got %T %v, want %v", got, got, tt.want)
			}
		})
	}
}
