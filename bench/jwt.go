package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// JWT settings shared by the bench's tokens and mcpguard's configuration.
const (
	jwtIssuer   = "https://idp.bench.invalid"
	jwtAudience = "mcpguard-bench"
	jwtKeyID    = "bench"
	// jwtRole is the role every bench token carries; it may call list_tables.
	jwtRole = "viewer"
)

// tokenSigner signs bench JWTs with a key generated for this run.
type tokenSigner struct {
	alg    jose.SignatureAlgorithm
	signer jose.Signer
	// PublicPEM is the PKIX public key, for mcpguard's auth.jwt.keys.
	PublicPEM []byte
}

// newTokenSigner generates a key for alg (RS256: RSA 2048, ES256: P-256).
func newTokenSigner(alg string) (*tokenSigner, error) {
	var priv, pub any
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		priv, pub = k, &k.PublicKey
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate P-256 key: %w", err)
		}
		priv, pub = k, &k.PublicKey
	default:
		return nil, fmt.Errorf("unsupported JWT algorithm %q", alg)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal %s public key: %w", alg, err)
	}
	ja := jose.SignatureAlgorithm(alg)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: ja, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", jwtKeyID))
	if err != nil {
		return nil, fmt.Errorf("new %s signer: %w", alg, err)
	}
	return &tokenSigner{
		alg:       ja,
		signer:    s,
		PublicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	}, nil
}

// benchClaims are a bench token's claims.
type benchClaims struct {
	josejwt.Claims
	Roles []string `json:"roles"`
}

// token signs a token for subject sub, valid from now for ttl.
func (t *tokenSigner) token(sub string, now time.Time, ttl time.Duration) (string, error) {
	c := benchClaims{
		Claims: josejwt.Claims{
			Issuer:   jwtIssuer,
			Subject:  sub,
			Audience: josejwt.Audience{jwtAudience},
			IssuedAt: josejwt.NewNumericDate(now),
			Expiry:   josejwt.NewNumericDate(now.Add(ttl)),
			ID:       sub + "-" + strconv.FormatInt(now.UnixNano(), 36),
		},
		Roles: []string{jwtRole},
	}
	tok, err := josejwt.Signed(t.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", t.alg, err)
	}
	return tok, nil
}
