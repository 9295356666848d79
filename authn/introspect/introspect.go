// Package introspect authenticates opaque bearer tokens issued by an
// external identity provider, by asking the provider's OAuth 2.0 Token
// Introspection endpoint (RFC 7662) about each token.
//
// An active answer is remembered briefly (30 seconds by default, never past
// the token's expiry), keyed by the token's SHA-256 digest, so that a busy
// client does not cost one round trip per request; a revocation at the
// provider therefore takes effect within that time. Inactive answers and
// failures are never remembered. The token must name this server as its
// audience (RFC 8707): a token minted for another service is refused.
package introspect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/authn/internal/credcache"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/netx"
)

// Method is the guard.AuthMethod of principals authenticated by
// introspection.
const Method = guard.AuthMethod("introspection")

// Defaults and bounds.
const (
	defaultCacheTTL    = 30 * time.Second
	defaultCacheSize   = 10_000
	defaultMaxResponse = 64 << 10
	defaultTimeout     = 10 * time.Second
	maxTokenSize       = 16 << 10
	maxClaimEntries    = 100
	defaultRolesClaim  = "roles"
	defaultScopeClaim  = "scope"
)

// Config configures an [Authenticator]. URL, ClientID, Issuer and
// Audiences are required.
type Config struct {
	// URL is the provider's introspection endpoint: https, or http on a
	// loopback host.
	URL string
	// ClientID and ClientSecret authenticate mcpguard to the endpoint
	// (HTTP Basic, RFC 6749 §2.3.1).
	ClientID     string
	ClientSecret []byte
	// Issuer is the principals' Issuer; when an answer carries "iss", it
	// must equal Issuer.
	Issuer string
	// Audiences lists the accepted "aud" values; an answer must carry
	// "aud" naming at least one.
	Audiences []string
	// RolesClaim and ScopeClaim name the claims holding roles and scopes
	// (an array of strings or a space-separated string). Defaults "roles"
	// and "scope".
	RolesClaim string
	ScopeClaim string
	// CacheTTL bounds how long an active answer is reused. Zero means 30
	// seconds; negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the answers remembered. Zero means 10,000.
	CacheSize int
	// HTTPClient calls the endpoint. Nil means a client with a 10-second
	// timeout.
	HTTPClient *http.Client
	// MaxResponseBytes bounds an answer. Zero means 64 KiB.
	MaxResponseBytes int64
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Authenticator is a guard.Authenticator for opaque tokens. It is safe for
// concurrent use.
type Authenticator struct {
	cfg    Config
	client *http.Client
	cache  *credcache.Cache[*cached] // nil when disabled
	now    func() time.Time
}

type cached struct {
	p     *guard.Principal
	until time.Time
}

var _ guard.Authenticator = (*Authenticator)(nil)

// New checks cfg and returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && netx.IsLoopbackHost(u.Host))):
		return nil, errors.New("introspect: URL must be an absolute https URL (http only on a loopback host)")
	case cfg.ClientID == "":
		return nil, errors.New("introspect: ClientID is required")
	case cfg.Issuer == "":
		return nil, errors.New("introspect: Issuer is required")
	case len(cfg.Audiences) == 0 || slices.Contains(cfg.Audiences, ""):
		return nil, errors.New("introspect: at least one non-empty audience is required")
	}
	cfg.RolesClaim = cmp.Or(cfg.RolesClaim, defaultRolesClaim)
	cfg.ScopeClaim = cmp.Or(cfg.ScopeClaim, defaultScopeClaim)
	cfg.CacheTTL = cmp.Or(cfg.CacheTTL, defaultCacheTTL)
	cfg.MaxResponseBytes = cmp.Or(cfg.MaxResponseBytes, defaultMaxResponse)
	a := &Authenticator{cfg: cfg, client: cfg.HTTPClient, now: cfg.Now}
	if a.client == nil {
		a.client = &http.Client{Timeout: defaultTimeout}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.CacheTTL > 0 {
		a.cache = credcache.New[*cached](cmp.Or(cfg.CacheSize, defaultCacheSize))
	}
	return a, nil
}

func refused(reason string) error {
	return fmt.Errorf("%w: %s", guard.ErrInvalidCredentials, reason)
}

// Authenticate implements guard.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	token := cred.Secret
	if token == "" || len(token) > maxTokenSize {
		return nil, refused("token is empty or too large")
	}
	now := a.now()
	var key credcache.Key
	if a.cache != nil {
		key = a.cache.Sum(token)
		if e, ok := a.cache.Get(key); ok {
			if now.Before(e.until) {
				return e.p, nil
			}
			a.cache.Remove(key)
		}
	}
	p, err := a.introspect(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if a.cache != nil {
		until := now.Add(a.cfg.CacheTTL)
		if p.ExpiresAt.Before(until) {
			until = p.ExpiresAt
		}
		a.cache.Add(key, &cached{p: p, until: until})
	}
	return p, nil
}

// response is the part of an RFC 7662 answer mcpguard reads.
type response struct {
	Active   bool            `json:"active"`
	Sub      string          `json:"sub"`
	Exp      *int64          `json:"exp"`
	Nbf      *int64          `json:"nbf"`
	Iss      string          `json:"iss"`
	Aud      json.RawMessage `json:"aud"`
	ClientID string          `json:"client_id"`
}

func (a *Authenticator) introspect(ctx context.Context, token string, now time.Time) (*guard.Principal, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspect: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(a.cfg.ClientID), url.QueryEscape(string(a.cfg.ClientSecret)))
	resp, err := a.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, never the body: no token in it.
		return nil, fmt.Errorf("introspect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("introspect: the endpoint answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, a.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("introspect: read answer: %w", err)
	}
	if int64(len(body)) > a.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("introspect: answer larger than %d bytes", a.cfg.MaxResponseBytes)
	}
	var raw map[string]json.RawMessage
	var r response
	if json.Unmarshal(body, &raw) != nil || json.Unmarshal(body, &r) != nil {
		return nil, errors.New("introspect: the answer is not a JSON object of the expected form")
	}
	switch {
	case !r.Active:
		return nil, refused("token is not active")
	case r.Sub == "":
		return nil, refused("introspection answer has no sub")
	case r.Exp == nil:
		return nil, refused("introspection answer has no exp")
	case !now.Before(time.Unix(*r.Exp, 0)):
		return nil, refused("token is expired")
	case r.Nbf != nil && now.Before(time.Unix(*r.Nbf, 0)):
		return nil, refused("token is not valid yet")
	case r.Iss != "" && r.Iss != a.cfg.Issuer:
		return nil, refused("token was issued by another issuer")
	}
	if !slices.ContainsFunc(stringList(r.Aud), func(aud string) bool { return slices.Contains(a.cfg.Audiences, aud) }) {
		return nil, refused("token was not issued for this server (audience)")
	}
	return &guard.Principal{
		Subject:   r.Sub,
		Issuer:    a.cfg.Issuer,
		Method:    Method,
		ClientID:  r.ClientID,
		Roles:     stringList(raw[a.cfg.RolesClaim]),
		Scopes:    stringList(raw[a.cfg.ScopeClaim]),
		ExpiresAt: time.Unix(*r.Exp, 0),
	}, nil
}

// stringList reads a claim that is an array of strings or a
// space-separated string; anything else is empty.
func stringList(v json.RawMessage) []string {
	if len(v) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		f := strings.Fields(s)
		return f[:min(len(f), maxClaimEntries)]
	}
	var list []any
	if json.Unmarshal(v, &list) != nil {
		return nil
	}
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok && s != "" && len(out) < maxClaimEntries {
			out = append(out, s)
		}
	}
	return out
}
