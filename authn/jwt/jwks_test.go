package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/clocktest"
)

// jwksServer serves a replaceable JWK Set and counts the fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32

	mu     sync.Mutex
	body   []byte
	status int
	delay  chan struct{} // when not nil, requests wait for it to close
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status, delay := s.body, s.status, s.delay
		s.mu.Unlock()
		if delay != nil {
			select {
			case <-delay:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status = body, status
}

func newJWKSAuthenticator(t *testing.T, clock *clocktest.Clock, url string, mutate func(*Config)) *Authenticator {
	t.Helper()
	cfg := Config{
		Issuer:    testIssuer,
		Audiences: []string{testAudience},
		JWKSURL:   url,
		Now:       clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	srv := newJWKSServer(t, jwksJSON(t, jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}))
	a := newJWKSAuthenticator(t, clock, srv.URL, nil)
	ctx := context.Background()

	auth := func(kid string, key any) error {
		t.Helper()
		_, err := a.Authenticate(ctx, bearer(sign(t, jose.RS256, key, kid, claimsAt(clock.Now()))))
		return err
	}
	steps := []struct {
		name        string
		do          func()
		kid         string
		key         any
		wantErr     string // empty: accepted
		wantFetches int32
	}{
		{name: "first use fetches", kid: "k1", key: k.rsa, wantFetches: 1},
		{name: "cached", kid: "k1", key: k.rsa, wantFetches: 1},
		{
			name: "rotated key refused within min refresh interval",
			do: func() {
				srv.set(jwksJSON(t, jose.JSONWebKey{Key: &k.rsaOther.PublicKey, KeyID: "k2", Algorithm: "RS256"}), http.StatusOK)
				clock.Advance(5 * time.Second)
			},
			kid: "k2", key: k.rsaOther, wantErr: "jwt: unknown key id", wantFetches: 1,
		},
		{
			name: "unknown kid refreshes after the interval",
			do:   func() { clock.Advance(30 * time.Second) },
			kid:  "k2", key: k.rsaOther, wantFetches: 2,
		},
		{name: "old key gone", kid: "k1", key: k.rsa, wantErr: "jwt: unknown key id", wantFetches: 2},
		{
			name: "ttl expiry refetches",
			do: func() {
				srv.set(jwksJSON(t,
					jose.JSONWebKey{Key: &k.rsaOther.PublicKey, KeyID: "k2", Algorithm: "RS256"},
					jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "k1", Algorithm: "RS256"}), http.StatusOK)
				clock.Advance(11 * time.Minute)
			},
			kid: "k1", key: k.rsa, wantFetches: 3,
		},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		err := auth(st.kid, st.key)
		switch {
		case st.wantErr == "" && err != nil:
			t.Errorf("%s: %v", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.HasSuffix(err.Error(), st.wantErr)):
			t.Errorf("%s: err = %v, want %q", st.name, err, st.wantErr)
		}
		if got := srv.fetches.Load(); got != st.wantFetches {
			t.Errorf("%s: %d fetches, want %d", st.name, got, st.wantFetches)
		}
	}
}

func TestJWKSUnknownKIDFlood(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	srv := newJWKSServer(t, jwksJSON(t, jose.JSONWebKey{Key: k.ed.Public(), KeyID: "ed1"}))
	a := newJWKSAuthenticator(t, clock, srv.URL, nil)
	ctx := context.Background()

	flood := func() {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				tok := sign(t, jose.EdDSA, k.ed, "forged-"+string(rune('a'+i%26)), claimsAt(clock.Now()))
				_, err := a.Authenticate(ctx, bearer(tok))
				if !errors.Is(err, guard.ErrInvalidCredentials) || !strings.HasSuffix(err.Error(), "jwt: unknown key id") {
					t.Errorf("err = %v, want unknown key id", err)
				}
			})
		}
		wg.Wait()
	}
	flood()
	if got := srv.fetches.Load(); got != 1 {
		t.Fatalf("after first flood: %d fetches, want 1", got)
	}
	clock.Advance(10 * time.Second)
	flood()
	if got := srv.fetches.Load(); got != 1 {
		t.Fatalf("within the interval: %d fetches, want 1", got)
	}
	clock.Advance(25 * time.Second)
	flood()
	if got := srv.fetches.Load(); got != 2 {
		t.Fatalf("after the interval: %d fetches, want 2", got)
	}
	// The genuine key still works throughout, without further fetches.
	if _, err := a.Authenticate(ctx, bearer(sign(t, jose.EdDSA, k.ed, "ed1", claimsAt(clock.Now())))); err != nil {
		t.Fatalf("genuine token: %v", err)
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Fatalf("genuine token: %d fetches, want 2", got)
	}
}

func TestJWKSConcurrentCallersShareOneFetch(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	srv := newJWKSServer(t, jwksJSON(t, jose.JSONWebKey{Key: &k.ec.PublicKey, KeyID: "ec1"}))
	release := make(chan struct{})
	srv.mu.Lock()
	srv.delay = release
	srv.mu.Unlock()
	a := newJWKSAuthenticator(t, clock, srv.URL, nil)
	tok := sign(t, jose.ES256, k.ec, "ec1", claimsAt(clock.Now()))

	const callers = 20
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := a.Authenticate(context.Background(), bearer(tok))
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the callers pile up on the fetch
	close(release)
	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("Authenticate: %v", err)
		}
	}
	if got := srv.fetches.Load(); got != 1 {
		t.Errorf("%d fetches, want 1", got)
	}
}

func TestJWKSIgnoresSymmetricAndUnusableKeys(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	secret := []byte(strings.Repeat("s", 32))
	srv := newJWKSServer(t, jwksJSON(t,
		jose.JSONWebKey{Key: secret, KeyID: "sym", Algorithm: "HS256"},
		jose.JSONWebKey{Key: &k.rsaOther.PublicKey, KeyID: "enc", Algorithm: "RS256", Use: "enc"},
		jose.JSONWebKey{Key: k.ec, KeyID: "private"}, // private key published by mistake
		jose.JSONWebKey{Key: &k.ec.PublicKey, KeyID: "mislabelled", Algorithm: "RS256"},
		jose.JSONWebKey{Key: &k.ec384.PublicKey, KeyID: "p384"}, // alg inferred: ES384
		jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "good", Algorithm: "PS256"},
	))
	// A static HS key makes HS256 an allowed algorithm, so the refusal of
	// "sym" below is the JWKS refusing the oct key, not the algorithm list.
	a := newJWKSAuthenticator(t, clock, srv.URL, func(c *Config) {
		c.Keys = []Key{{ID: "static-hs", Algorithm: "HS256", Key: k.hmac}}
	})
	now := clock.Now()
	tests := []struct {
		name    string
		tok     string
		wantErr string
	}{
		{"oct key ignored", sign(t, jose.HS256, secret, "sym", claimsAt(now)), "jwt: unknown key id"},
		{"enc key ignored", sign(t, jose.RS256, k.rsaOther, "enc", claimsAt(now)), "jwt: unknown key id"},
		{"private key ignored", sign(t, jose.ES256, k.ec, "private", claimsAt(now)), "jwt: unknown key id"},
		{"alg not fitting key ignored", sign(t, jose.ES256, k.ec, "mislabelled", claimsAt(now)), "jwt: unknown key id"},
		{"inferred ES384", sign(t, jose.ES384, k.ec384, "p384", claimsAt(now)), ""},
		{"JWK alg pins the key", sign(t, jose.RS256, k.rsa, "good", claimsAt(now)), "jwt: algorithm not allowed"},
		{"PS256 key", sign(t, jose.PS256, k.rsa, "good", claimsAt(now)), ""},
		{"static key still works", sign(t, jose.HS256, k.hmac, "static-hs", claimsAt(now)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Authenticate(context.Background(), bearer(tt.tok))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Authenticate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasSuffix(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestJWKSFetchFailures(t *testing.T) {
	t.Parallel()
	k := testKeys()
	good := jwksJSON(t, jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "k1"})
	tooMany := func() []byte {
		keys := make([]jose.JSONWebKey, maxJWKSKeys+1)
		for i := range keys {
			keys[i] = jose.JSONWebKey{Key: k.ed.Public(), KeyID: string(rune('A' + i))}
		}
		return jwksJSON(t, keys...)
	}()
	tests := []struct {
		name    string
		body    []byte
		status  int
		wantErr string
	}{
		{"server error", good, http.StatusInternalServerError, "unexpected HTTP status 500"},
		{"not found", good, http.StatusNotFound, "unexpected HTTP status 404"},
		{"not json", []byte("<html>"), http.StatusOK, "decoding JWKS"},
		{"no keys member", []byte(`{"kids":[]}`), http.StatusOK, `no "keys" member`},
		{"too large", append(append([]byte(`{"keys":[],"pad":"`), strings.Repeat("x", maxJWKSSize)...), `"}`...), http.StatusOK, "JWKS larger than"},
		{"too many keys", tooMany, http.StatusOK, "more than the 100 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			srv := newJWKSServer(t, tt.body)
			srv.set(tt.body, tt.status)
			a := newJWKSAuthenticator(t, clock, srv.URL+"/jwks?tenant=private", nil)
			tok := sign(t, jose.RS256, k.rsa, "k1", claimsAt(clock.Now()))
			for i := range 3 {
				_, err := a.Authenticate(context.Background(), bearer(tok))
				if err == nil {
					t.Fatal("Authenticate succeeded without keys")
				}
				if errors.Is(err, guard.ErrInvalidCredentials) {
					t.Errorf("attempt %d: fetch failure %q counted as invalid credentials", i, err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %q, want it to mention %q", err, tt.wantErr)
				}
				for _, secret := range []string{tok, "tenant=private"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("err %q leaks %q", err, secret)
					}
				}
			}
			if got := srv.fetches.Load(); got != 1 {
				t.Errorf("%d fetches, want 1 (failures are rate limited too)", got)
			}
			// Once the endpoint recovers and the interval has passed, the
			// keys load.
			srv.set(good, http.StatusOK)
			clock.Advance(time.Minute)
			if _, err := a.Authenticate(context.Background(), bearer(sign(t, jose.RS256, k.rsa, "k1", claimsAt(clock.Now())))); err != nil {
				t.Errorf("after recovery: %v", err)
			}
		})
	}
}

func TestJWKSStaleKeysOnFailure(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	srv := newJWKSServer(t, jwksJSON(t, jose.JSONWebKey{Key: &k.ec.PublicKey, KeyID: "k1"}))
	a := newJWKSAuthenticator(t, clock, srv.URL, func(c *Config) { c.JWKSCacheTTL = time.Minute })
	auth := func() error {
		_, err := a.Authenticate(context.Background(), bearer(sign(t, jose.ES256, k.ec, "k1", claimsAt(clock.Now()))))
		return err
	}
	if err := auth(); err != nil {
		t.Fatal(err)
	}
	srv.set(nil, http.StatusBadGateway)
	clock.Advance(90 * time.Second) // stale, but within 2×TTL
	if err := auth(); err != nil {
		t.Errorf("stale keys within grace: %v", err)
	}
	clock.Advance(time.Minute) // beyond 2×TTL
	err := auth()
	if err == nil || errors.Is(err, guard.ErrInvalidCredentials) {
		t.Errorf("keys beyond grace: err = %v, want an internal error", err)
	}
	if got := srv.fetches.Load(); got != 3 {
		t.Errorf("%d fetches, want 3", got)
	}
}

func TestJWKSWaitHonoursContext(t *testing.T) {
	t.Parallel()
	k := testKeys()
	clock := newFakeClock()
	srv := newJWKSServer(t, jwksJSON(t, jose.JSONWebKey{Key: &k.ec.PublicKey, KeyID: "k1"}))
	release := make(chan struct{})
	defer close(release)
	srv.mu.Lock()
	srv.delay = release
	srv.mu.Unlock()
	a := newJWKSAuthenticator(t, clock, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := a.Authenticate(ctx, bearer(sign(t, jose.ES256, k.ec, "k1", claimsAt(clock.Now()))))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
}

func TestParseJWKSInference(t *testing.T) {
	t.Parallel()
	k := testKeys()
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := parseJWKS(jwksJSON(t,
		jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "rsa"},
		jose.JSONWebKey{Key: &k.ec.PublicKey, KeyID: "p256"},
		jose.JSONWebKey{Key: &k.ec384.PublicKey, KeyID: "p384"},
		jose.JSONWebKey{Key: &p521.PublicKey, KeyID: "p521"},
		jose.JSONWebKey{Key: k.ed.Public(), KeyID: "ed"},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]jose.SignatureAlgorithm{
		"rsa": jose.RS256, "p256": jose.ES256, "p384": jose.ES384, "p521": jose.ES512, "ed": jose.EdDSA,
	}
	for kid, alg := range want {
		ks := ring.byID[kid]
		if len(ks) != 1 || ks[0].alg != alg {
			t.Errorf("kid %s: keys %v, want one %s key", kid, ks, alg)
		}
	}
	// Unknown key types are skipped, not fatal.
	var doc map[string][]json.RawMessage
	if err := json.Unmarshal(jwksJSON(t, jose.JSONWebKey{Key: k.ed.Public(), KeyID: "ed"}), &doc); err != nil {
		t.Fatal(err)
	}
	doc["keys"] = append(doc["keys"], json.RawMessage(`{"kty":"XYZ","kid":"odd"}`), json.RawMessage(`"junk"`),
		json.RawMessage(`{"kty":"RSA","kid":"broken","n":"AQ"}`))
	body, _ := json.Marshal(doc)
	ring, err = parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(ring.all) != 1 || ring.all[0].id != "ed" {
		t.Errorf("parsed %d keys, want only ed", len(ring.all))
	}
}

func TestJWKSTransport(t *testing.T) {
	t.Parallel()
	k := testKeys()
	good := jwksJSON(t, jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "k1"})
	target := newJWKSServer(t, good)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	redirect := func(to string) string {
		srv := httptest.NewServer(http.RedirectHandler(to, http.StatusFound))
		t.Cleanup(srv.Close)
		return srv.URL + "/jwks?secret=s3"
	}
	tests := []struct {
		name    string
		url     string
		wantErr string // empty: keys load
	}{
		{"connection refused", closed.URL + "/jwks?secret=s3", "jwt: fetching JWKS"},
		{"redirect to loopback", redirect(target.URL + "/moved"), ""},
		{"redirect downgrading to http", redirect("http://idp.example.com/jwks"), "must use https"},
		{"redirect to another scheme", redirect("ftp://idp.example.com/jwks"), "must use https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			a := newJWKSAuthenticator(t, clock, tt.url, nil)
			_, err := a.Authenticate(context.Background(), bearer(sign(t, jose.RS256, k.rsa, "k1", claimsAt(clock.Now()))))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				return
			}
			if err == nil || errors.Is(err, guard.ErrInvalidCredentials) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want an internal error mentioning %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3") {
				t.Errorf("err %q leaks the URL query", err)
			}
		})
	}
}
