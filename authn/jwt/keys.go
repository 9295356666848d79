package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is one verification key, pinned to exactly one algorithm.
//
// A token is verified with a Key only when the token's "alg" header equals
// the Key's Algorithm, so a key configured for RS256 can never be used to
// check an HS256 or "none" token.
type Key struct {
	// ID is the key id a token names in its "kid" header. It may be empty
	// only when Config.Keys holds exactly one key; that key then verifies
	// tokens whose "kid" names no other key.
	ID string
	// Algorithm is the JWS algorithm the key verifies: "HS256", "HS384",
	// "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	// "ES256", "ES384", "ES512" or "EdDSA".
	Algorithm string
	// Key is the verification key: a []byte secret of at least the hash
	// size (32 bytes for HS256, 48 for HS384, 64 for HS512) for HS*, an
	// *rsa.PublicKey of 2048 to 8192 bits for RS* and PS*, an
	// *ecdsa.PublicKey on the matching curve for ES*, or an
	// ed25519.PublicKey for EdDSA. [ParsePublicKeyPEM] reads public keys
	// from PEM files.
	Key any
}

// Bounds on RSA moduli accepted for verification. Keys below 2048 bits are
// forgeable in practice; keys above 8192 bits make every verification a
// denial-of-service lever.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// maxPEMSize bounds the input of ParsePublicKeyPEM.
const maxPEMSize = 64 << 10

// asymmetricAlgs are the algorithms a JWKS key may carry, and the ones a
// JWKS-backed Authenticator allows in token headers.
var asymmetricAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// verifyKey is a Key checked and ready for use.
type verifyKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// newVerifyKey checks that key suits alg and returns a private copy of it.
func newVerifyKey(id, alg string, key any) (*verifyKey, error) {
	a := jose.SignatureAlgorithm(alg)
	switch a {
	case jose.HS256, jose.HS384, jose.HS512:
		secret, ok := key.([]byte)
		if !ok {
			return nil, fmt.Errorf("algorithm %s needs a []byte secret, got %T", alg, key)
		}
		if minLen := hmacKeySize(a); len(secret) < minLen {
			return nil, fmt.Errorf("algorithm %s needs a secret of at least %d bytes, got %d", alg, minLen, len(secret))
		}
		return &verifyKey{id: id, alg: a, key: slices.Clone(secret)}, nil
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		pub, ok := key.(*rsa.PublicKey)
		if !ok || pub == nil || pub.N == nil {
			return nil, fmt.Errorf("algorithm %s needs an *rsa.PublicKey, got %T", alg, key)
		}
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("algorithm %s: RSA key has %d bits, want %d to %d", alg, bits, minRSABits, maxRSABits)
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("algorithm %s: RSA key has an invalid public exponent", alg)
		}
		return &verifyKey{id: id, alg: a, key: pub}, nil
	case jose.ES256, jose.ES384, jose.ES512:
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub == nil || pub.Curve == nil {
			return nil, fmt.Errorf("algorithm %s needs an *ecdsa.PublicKey, got %T", alg, key)
		}
		if want := ecCurve(a); pub.Curve != want {
			return nil, fmt.Errorf("algorithm %s needs curve %s, got %s", alg, want.Params().Name, pub.Curve.Params().Name)
		}
		return &verifyKey{id: id, alg: a, key: pub}, nil
	case jose.EdDSA:
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("algorithm %s needs an ed25519.PublicKey, got %T", alg, key)
		}
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("algorithm %s: Ed25519 key has %d bytes, want %d", alg, len(pub), ed25519.PublicKeySize)
		}
		return &verifyKey{id: id, alg: a, key: slices.Clone(pub)}, nil
	case "":
		return nil, errors.New("missing algorithm")
	case "none":
		return nil, errors.New(`algorithm "none" is never allowed`)
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
}

// hmacKeySize is the minimum secret length for an HMAC algorithm: the hash
// output size, as RFC 7518 section 3.2 requires.
func hmacKeySize(alg jose.SignatureAlgorithm) int {
	switch alg {
	case jose.HS384:
		return 48
	case jose.HS512:
		return 64
	default:
		return 32
	}
}

// ecCurve is the curve an ECDSA algorithm is defined on.
func ecCurve(alg jose.SignatureAlgorithm) elliptic.Curve {
	switch alg {
	case jose.ES384:
		return elliptic.P384()
	case jose.ES512:
		return elliptic.P521()
	default:
		return elliptic.P256()
	}
}

// inferAlgorithm names the algorithm a JWK without "alg" is used with:
// RS256 for RSA, ES256/ES384/ES512 by curve for EC, EdDSA for Ed25519.
func inferAlgorithm(key any) (jose.SignatureAlgorithm, bool) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return jose.RS256, true
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, true
		case elliptic.P384():
			return jose.ES384, true
		case elliptic.P521():
			return jose.ES512, true
		}
	case ed25519.PublicKey:
		return jose.EdDSA, true
	}
	return "", false
}

// ParsePublicKeyPEM parses the first PEM block of pemBytes as a public key
// for a [Key]. It accepts PKIX "PUBLIC KEY" blocks (RSA, ECDSA and Ed25519),
// PKCS #1 "RSA PUBLIC KEY" blocks, and "CERTIFICATE" blocks, whose subject
// public key is returned (the certificate's validity and chain are not
// checked: the certificate is only a container for the key).
//
// The result is an *rsa.PublicKey, an *ecdsa.PublicKey or an
// ed25519.PublicKey. Private keys are refused, so that a misplaced secret
// is noticed rather than silently used.
//
//	pub, err := jwt.ParsePublicKeyPEM(pemBytes)
//	if err != nil { ... }
//	key := jwt.Key{ID: "2024-01", Algorithm: "RS256", Key: pub}
func ParsePublicKeyPEM(pemBytes []byte) (any, error) {
	if len(pemBytes) > maxPEMSize {
		return nil, fmt.Errorf("jwt: PEM input larger than %d bytes", maxPEMSize)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("jwt: no PEM block found")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("jwt: PEM block %q holds a private key; configure the public key instead", block.Type)
	default:
		return nil, fmt.Errorf("jwt: unsupported PEM block type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("jwt: parsing PEM block %q: %w", block.Type, err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub, nil
	default:
		return nil, fmt.Errorf("jwt: unsupported public key type %T", pub)
	}
}

// keyring indexes verification keys by key id and algorithm.
type keyring struct {
	byID map[string][]*verifyKey
	all  []*verifyKey
}

func newKeyring(keys []*verifyKey) *keyring {
	r := &keyring{byID: make(map[string][]*verifyKey, len(keys)), all: keys}
	for _, k := range keys {
		if k.id != "" {
			r.byID[k.id] = append(r.byID[k.id], k)
		}
	}
	return r
}

// lookup returns the keys that may verify a token with header kid and alg,
// appending them to dst. With a kid, only keys with that id qualify, and
// known reports whether any key has that id (whatever its algorithm).
// Without a kid, every key pinned to alg qualifies, until dst holds limit keys.
func (r *keyring) lookup(dst []*verifyKey, kid string, alg jose.SignatureAlgorithm, limit int) (cands []*verifyKey, known bool) {
	if r == nil {
		return dst, false
	}
	if kid != "" {
		ks, ok := r.byID[kid]
		for _, k := range ks {
			if k.alg == alg {
				dst = append(dst, k)
			}
		}
		return dst, ok
	}
	for _, k := range r.all {
		if len(dst) >= limit {
			break
		}
		if k.alg == alg {
			dst = append(dst, k)
		}
	}
	return dst, false
}
