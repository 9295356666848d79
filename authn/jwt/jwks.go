package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Bounds on what a JWKS endpoint may send.
const (
	maxJWKSSize = 1 << 20 // bytes in one response body
	maxJWKSKeys = 100     // entries in "keys"
)

// jwksFetchTimeout caps one JWKS fetch even when Config.HTTPClient has no
// timeout of its own.
const jwksFetchTimeout = 30 * time.Second

// jwksCache holds the keys of one JWKS endpoint.
//
// The keys are fetched lazily, kept for ttl, and refetched when they are
// stale or when a token names a key id they lack. Fetches start at most
// once per minRefresh, so a flood of tokens with made-up key ids costs the
// identity provider at most one request per interval, and concurrent
// callers that need a fetch wait for the same one.
//
// When a refetch fails, the previous keys stay usable until they are 2×ttl
// old; after that, tokens that need JWKS keys fail closed with an internal
// error until a fetch succeeds.
type jwksCache struct {
	url        string
	client     *http.Client
	ttl        time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu          sync.Mutex
	ring        *keyring   // nil until the first successful fetch
	fetchedAt   time.Time  // when ring was fetched
	lastAttempt time.Time  // when the last fetch started
	inflight    *jwksFetch // the fetch under way, if any
	lastErr     error      // why the last fetch failed, nil if it succeeded
}

// jwksFetch is one fetch that any number of callers may wait for.
type jwksFetch struct {
	done chan struct{}
	err  error // written before done is closed
}

// keys returns the current key set. It starts a fetch when the set is
// missing or stale, or when refresh is true (a token named an unknown key
// id), unless a fetch started less than minRefresh ago; and it waits for
// a fetch under way in those cases.
func (c *jwksCache) keys(ctx context.Context, refresh bool) (*keyring, error) {
	c.mu.Lock()
	now := c.now()
	need := refresh || c.ring == nil || !now.Before(c.fetchedAt.Add(c.ttl))
	call := c.inflight
	if need && call == nil && c.mayFetchLocked(now) {
		call = c.startFetchLocked(ctx, now)
	}
	c.mu.Unlock()

	var fetchErr error
	if need && call != nil {
		select {
		case <-call.done:
			fetchErr = call.err
		case <-ctx.Done():
			return nil, fmt.Errorf("jwt: waiting for JWKS: %w", ctx.Err())
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil || !c.now().Before(c.fetchedAt.Add(2*c.ttl)) {
		if fetchErr == nil {
			fetchErr = c.lastErr
		}
		if fetchErr != nil {
			return nil, fetchErr
		}
		return nil, errors.New("jwt: JWKS unavailable")
	}
	return c.ring, nil
}

// mayFetchLocked reports whether a fetch may start at now under the
// minRefresh rate limit. A clock that went backwards does not block fetches.
func (c *jwksCache) mayFetchLocked(now time.Time) bool {
	return c.lastAttempt.IsZero() || now.Before(c.lastAttempt) || now.Sub(c.lastAttempt) >= c.minRefresh
}

// startFetchLocked starts a fetch in its own goroutine, detached from the
// cancellation of ctx so that the callers sharing it are not failed by the
// first one going away. The fetch is bounded by jwksFetchTimeout.
func (c *jwksCache) startFetchLocked(ctx context.Context, now time.Time) *jwksFetch {
	call := &jwksFetch{done: make(chan struct{})}
	c.inflight = call
	c.lastAttempt = now
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
		defer cancel()
		ring, err := c.fetch(fctx)
		c.mu.Lock()
		if err == nil {
			c.ring = ring
			c.fetchedAt = c.now()
		}
		c.inflight = nil
		c.lastErr = err
		call.err = err
		c.mu.Unlock()
		close(call.done)
	}()
	return call
}

// fetch downloads and parses the key set.
func (c *jwksCache) fetch(ctx context.Context) (*keyring, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwt: fetching JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		// Drop the URL from the message: a JWKS URL may carry a query
		// parameter its operator considers private.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("jwt: fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwt: fetching JWKS: unexpected HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("jwt: reading JWKS: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("jwt: JWKS larger than %d bytes", maxJWKSSize)
	}
	return parseJWKS(body)
}

// parseJWKS turns a JWK Set document into verification keys.
//
// Following RFC 7517 section 5, entries that cannot be used are skipped:
// symmetric ("oct") keys, which would let anyone who can read the JWKS mint
// tokens; keys whose "use" is not "sig"; private keys; keys of unknown type
// or with an algorithm that does not fit the key; and RSA keys under 2048
// or over 4096 bits.
func parseJWKS(body []byte) (*keyring, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("jwt: decoding JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`jwt: decoding JWKS: no "keys" member`)
	}
	if len(doc.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("jwt: JWKS has %d keys, more than the %d allowed", len(doc.Keys), maxJWKSKeys)
	}
	keys := make([]*verifyKey, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		if k := parseJWK(raw); k != nil {
			keys = append(keys, k)
		}
	}
	return newKeyring(keys), nil
}

// parseJWK returns the verification key in one JWKS entry, or nil when the
// entry must be skipped.
func parseJWK(raw json.RawMessage) *verifyKey {
	var hdr struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil
	}
	switch hdr.Kty {
	case "RSA", "EC", "OKP":
	default: // "oct" above all: JWKS never yields symmetric keys.
		return nil
	}
	if hdr.Use != "" && hdr.Use != "sig" {
		return nil
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil
	}
	alg := jose.SignatureAlgorithm(hdr.Alg)
	if alg == "" {
		var ok bool
		if alg, ok = inferAlgorithm(jwk.Key); !ok {
			return nil
		}
	}
	if !slices.Contains(asymmetricAlgs, alg) {
		return nil
	}
	// newVerifyKey refuses private keys (their types differ) and keys that
	// do not fit alg.
	k, err := newVerifyKey(jwk.KeyID, string(alg), jwk.Key)
	if err != nil {
		return nil
	}
	return k
}

// checkJWKSURL accepts https URLs, and http URLs whose host is a loopback
// address (for tests and local identity providers).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("jwt: JWKSURL is not a valid URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !netx.IsLoopbackHost(u.Hostname()) {
			return errors.New("jwt: JWKSURL must use https (http is allowed only for loopback hosts)")
		}
	default:
		return errors.New("jwt: JWKSURL must use https")
	}
	if u.Hostname() == "" {
		return errors.New("jwt: JWKSURL has no host")
	}
	return nil
}

// defaultHTTPClient is used when Config.HTTPClient is nil. It times out
// after 10 seconds and follows redirects only to URLs checkJWKSURL accepts,
// so a redirect cannot downgrade the fetch to plain http.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return checkJWKSURL(req.URL.String())
		},
	}
}
