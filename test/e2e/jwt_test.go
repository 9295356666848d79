package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

const (
	issuer   = "https://idp.e2e.test"
	audience = "mcpguard-e2e"
	hsSecret = "e2e-hmac-secret-0123456789abcdef0123456789"
)

// jwksServer serves a JWKS that the test can rotate, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	paths   []string // every request's path and query, in order
	fetches atomic.Int32
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.paths = append(j.paths, r.URL.RequestURI())
	json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: j.keys})
}

func (j *jwksServer) add(k jose.JSONWebKey) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.keys = append(j.keys, k)
}

type claims struct {
	josejwt.Claims
	Roles []string `json:"roles,omitempty"`
	Scope string   `json:"scope,omitempty"`
}

func sign(t *testing.T, alg jose.SignatureAlgorithm, kid string, key any, c claims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawToken builds a token with an arbitrary header and an HMAC (or no)
// signature, as an attacker would.
func rawToken(header, payload map[string]any, hmacKey []byte) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signingInput := enc(header) + "." + enc(payload)
	if hmacKey == nil {
		return signingInput + "."
	}
	return signingInput + "." + hmacSHA256(hmacKey, signingInput)
}

func TestJWT(t *testing.T) {
	dir := t.TempDir()
	rsKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	esKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	esKey2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsKey.PublicKey)
	rsPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pemPath := filepath.Join(dir, "rs.pem")
	if err := os.WriteFile(pemPath, rsPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	jwks := &jwksServer{}
	jwks.add(jose.JSONWebKey{Key: &esKey.PublicKey, KeyID: "es1", Algorithm: "ES256", Use: "sig"})
	// A symmetric key in a JWKS must never be used.
	jwks.add(jose.JSONWebKey{Key: []byte(hsSecret), KeyID: "oct1", Algorithm: "HS256", Use: "sig"})
	js := httptest.NewServer(jwks)
	defer js.Close()

	cfg := fmt.Sprintf(`auth:
  api_keys: {enabled: true}
  jwt:
    enabled: true
    issuer: %s
    audiences: [%s]
    leeway: 30s
    jwks_url: %s/jwks.json
    jwks_min_refresh_interval: 1s
    keys:
      - {kid: hs1, alg: HS256, secret: env:E2E_JWT_SECRET}
      - {kid: rs1, alg: RS256, public_key: file:%s}
users:
  ops@example.com: [admin]
rate_limit:
  lockout: {max_failures: 0}   # this test fails on purpose, many times
`, issuer, audience, js.URL, pemPath)
	cfgPath := filepath.Join(dir, "mcpguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"E2E_JWT_SECRET=" + hsSecret}
	s := start(t, dir, env, "--config", cfgPath, "--demo")

	now := time.Now()
	good := func(sub string, roles ...string) claims {
		return claims{Claims: josejwt.Claims{Issuer: issuer, Subject: sub, Audience: josejwt.Audience{audience},
			Expiry: josejwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: josejwt.NewNumericDate(now), ID: "jti-" + sub}, Roles: roles}
	}
	ctx := context.Background()

	t.Run("accepted", func(t *testing.T) {
		for name, tok := range map[string]string{
			"HS256":        sign(t, jose.HS256, "hs1", []byte(hsSecret), good("hs-user", "viewer")),
			"RS256":        sign(t, jose.RS256, "rs1", rsKey, good("rs-user", "viewer")),
			"ES256 (JWKS)": sign(t, jose.ES256, "es1", esKey, good("es-user", "viewer")),
		} {
			cs, err := connect(t, s.url, bearer(tok))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			lt, err := cs.ListTools(ctx, nil)
			if err != nil || len(lt.Tools) != 3 {
				t.Fatalf("%s viewer: %v, %d tools", name, err, len(lt.Tools))
			}
		}
		// Roles from the users map apply to JWT subjects.
		cs := mustConnect(t, s.url, bearer(sign(t, jose.RS256, "rs1", rsKey, good("ops@example.com"))))
		lt, err := cs.ListTools(ctx, nil)
		if err != nil || len(lt.Tools) != 6 {
			t.Fatalf("users-map admin: %v %d", err, len(lt.Tools))
		}
	})

	t.Run("refused", func(t *testing.T) {
		expired := good("x", "admin")
		expired.Expiry = josejwt.NewNumericDate(now.Add(-2 * time.Minute))
		future := good("x", "admin")
		future.NotBefore = josejwt.NewNumericDate(now.Add(10 * time.Minute))
		wrongAud := good("x", "admin")
		wrongAud.Audience = josejwt.Audience{"someone-else"}
		wrongIss := good("x", "admin")
		wrongIss.Issuer = "https://evil.example"
		otherRS, _ := rsa.GenerateKey(rand.Reader, 2048)
		payload := map[string]any{"iss": issuer, "sub": "mallory", "aud": audience, "exp": now.Add(time.Hour).Unix(), "roles": []string{"admin"}}
		for name, tok := range map[string]string{
			"bad signature":                sign(t, jose.RS256, "rs1", otherRS, good("x", "admin")),
			"alg none":                     rawToken(map[string]any{"alg": "none", "kid": "rs1"}, payload, nil),
			"alg confusion (HS w/ RS pub)": rawToken(map[string]any{"alg": "HS256", "kid": "rs1"}, payload, rsPEM),
			"JWKS oct key":                 rawToken(map[string]any{"alg": "HS256", "kid": "oct1"}, payload, []byte(hsSecret)),
			"wrong audience":               sign(t, jose.RS256, "rs1", rsKey, wrongAud),
			"wrong issuer":                 sign(t, jose.RS256, "rs1", rsKey, wrongIss),
			"expired":                      sign(t, jose.RS256, "rs1", rsKey, expired),
			"not yet valid":                sign(t, jose.RS256, "rs1", rsKey, future),
			"unknown kid":                  sign(t, jose.ES256, "nope", esKey, good("x", "admin")),
		} {
			resp := post(t, s.url, bearer(tok), initBody)
			if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s: status %d %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("revoked jti", func(t *testing.T) {
		c := good("rev-user", "viewer")
		c.ID = "revoke-me"
		tok := sign(t, jose.RS256, "rs1", rsKey, c)
		if resp := post(t, s.url, bearer(tok), initBody); resp.StatusCode != 200 {
			t.Fatalf("before revocation: %d", resp.StatusCode)
		}
		if out, err := run(t, dir, nil, "--config", cfgPath, "tokens", "revoke", "revoke-me", "--keep-for", "1h"); err != nil {
			t.Fatalf("tokens revoke: %v %s", err, out)
		}
		deadline := time.Now().Add(3 * time.Second) // revocations are rechecked every second
		for post(t, s.url, bearer(tok), initBody).StatusCode != 401 {
			if time.Now().After(deadline) {
				t.Fatal("revoked token still accepted after 3 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["decision"] == "AUTH_FAILED" && strings.Contains(reason, "revoked")
		})
	})

	t.Run("unknown kid refreshes JWKS", func(t *testing.T) {
		tok := sign(t, jose.ES256, "es2", esKey2, good("rotated", "viewer"))
		time.Sleep(1100 * time.Millisecond) // past the min refresh interval
		if resp := post(t, s.url, bearer(tok), initBody); resp.StatusCode != 401 {
			t.Fatalf("es2 before rotation: %d", resp.StatusCode)
		}
		before := jwks.fetches.Load()
		jwks.add(jose.JSONWebKey{Key: &esKey2.PublicKey, KeyID: "es2", Algorithm: "ES256", Use: "sig"})
		time.Sleep(1100 * time.Millisecond)
		if resp := post(t, s.url, bearer(tok), initBody); resp.StatusCode != 200 {
			t.Fatalf("es2 after rotation: %d", resp.StatusCode)
		}
		if got := jwks.fetches.Load() - before; got != 1 {
			t.Fatalf("JWKS fetched %d times for the rotation, want 1", got)
		}
		// A flood of unknown kids does not turn into a flood of fetches.
		before = jwks.fetches.Load()
		for i := range 20 {
			post(t, s.url, bearer(sign(t, jose.ES256, fmt.Sprint("flood-", i), esKey, good("f", "viewer"))), initBody)
		}
		if got := jwks.fetches.Load() - before; got > 2 {
			t.Fatalf("20 unknown kids caused %d JWKS fetches", got)
		}
	})

	t.Run("kid path traversal and URLs", func(t *testing.T) {
		// A kid is only ever a key in the configured set: never a path,
		// a file or a URL to fetch.
		time.Sleep(1100 * time.Millisecond) // past the min refresh interval
		before := jwks.fetches.Load()
		for _, kid := range []string{"../../../../etc/passwd", "/jwks.json?kid=x", "file:///etc/passwd",
			"http://169.254.169.254/latest/meta-data/", "es1/../rs1", "es1\x00", "%2e%2e%2fjwks.json"} {
			if resp := post(t, s.url, bearer(sign(t, jose.ES256, kid, esKey, good("kid", "viewer"))), initBody); resp.StatusCode != 401 {
				t.Errorf("kid %q: %d, want 401", kid, resp.StatusCode)
			}
		}
		jwks.mu.Lock()
		paths := slices.Clone(jwks.paths)
		jwks.mu.Unlock()
		for _, p := range paths {
			if p != "/jwks.json" {
				t.Errorf("the JWKS server was asked for %q", p)
			}
		}
		if got := jwks.fetches.Load() - before; got > 2 {
			t.Errorf("7 crafted kids caused %d JWKS fetches", got)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["decision"] == "AUTH_FAILED" && strings.Contains(reason, "unknown key id")
		})
	})

	// No token reached the audit log.
	data, err := os.ReadFile(s.auditLg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "eyJ") || strings.Contains(string(data), hsSecret) {
		t.Fatal("a token or secret reached the audit log")
	}
}
