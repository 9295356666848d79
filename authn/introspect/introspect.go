// Package introspect authenticates the opaque bearer tokens of an external
// identity provider by asking the provider about each one, through its
// OAuth 2.0 Token Introspection endpoint (RFC 7662). It implements
// [guard.Authenticator].
//
// An opaque token carries no claims mcpguard could verify itself, so for a
// token it has not seen lately the [Authenticator] POSTs it to the
// endpoint, authenticating as a client of the provider (HTTP Basic with
// [Config.ClientID] and [Config.ClientSecret]), and accepts it only if the
// answer says it is active, names a subject and an expiry that has not
// passed, comes from the configured issuer and names this server among the
// token's audiences (RFC 8707: a token minted for another service must not
// be accepted here):
//
//	authn, err := introspect.New(introspect.Config{
//		URL:          "https://sso.example.com/oauth2/introspect",
//		ClientID:     "mcpguard",
//		ClientSecret: secret,
//		Issuer:       "https://sso.example.com",
//		Audiences:    []string{"https://mcp.example.com/mcp"},
//	})
//	if err != nil { ... }
//	g := &guard.Guard{Authenticator: authn, ...}
//
// The answer's "sub", "client_id", roles claim (as [Config.RolesClaim]
// names it) and scope claim become the [guard.Principal]'s Subject,
// ClientID, Roles and Scopes; its Method is [Method].
//
// An active answer is remembered, keyed by the token's SHA-256 digest and
// never by the token, for [Config.CacheTTL] (30 seconds by default) and
// never past the token's expiry, so that a busy client does not cost a
// round trip per request. A token revoked at the provider is therefore
// refused within that time rather than at once. Inactive answers and
// failures are never remembered.
//
// A refused token yields an error wrapping [guard.ErrInvalidCredentials]
// that says why, such as "introspect: token is not active". A failure of
// the endpoint (unreachable, an HTTP error status, an oversized or
// malformed answer) yields an error without that mark: the request fails
// closed without counting as a failed authentication. No error ever
// contains the token.
package introspect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/authn/internal/claims"
	"github.com/mcpguard/mcpguard/secrets"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/authn/internal/credcache"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/netx"
)

// Method is the [guard.AuthMethod] of the principals an Authenticator
// returns.
const Method = guard.AuthMethod("introspection")

// Defaults for zero Config fields.
const (
	defaultCacheTTL    = 30 * time.Second
	defaultCacheSize   = 10_000
	defaultMaxResponse = 64 << 10
	defaultTimeout     = 10 * time.Second
	defaultRolesClaim  = "roles"
	defaultScopeClaim  = "scope"
)

// Limits applied to every token and answer.
const (
	// maxTokenSize bounds a token's length; a longer one is refused
	// without asking the endpoint.
	maxTokenSize = 16 << 10
	// maxClaimEntries bounds the entries taken from a roles, scope or
	// aud claim; the rest are ignored.
	maxClaimEntries = 100
	// maxNumericDate is the last second of the year 9999: an exp or nbf
	// beyond it is not a date.
	maxNumericDate = 253402300799
)

// Config configures an [Authenticator]. URL, ClientID, Issuer and
// Audiences are required; every other field has a default.
type Config struct {
	// URL is the provider's introspection endpoint. It must be an https
	// URL, or http on a loopback host (for tests and sidecars), without
	// credentials in it.
	URL string
	// ClientID and ClientSecret authenticate mcpguard to the endpoint with
	// HTTP Basic authentication, each form-urlencoded first as RFC 6749
	// §2.3.1 requires. ClientID is required. ClientSecret may be empty
	// only if HTTPClient authenticates otherwise (mutual TLS, say).
	ClientID     string
	ClientSecret secrets.Value
	// Issuer identifies the provider: it becomes the principals' Issuer
	// (and so part of their [guard.Principal.ID]), and an answer carrying
	// "iss" must carry exactly this value. Required.
	Issuer string
	// Audiences lists the resource identifiers of this server. An answer
	// must carry "aud" (a string or an array of strings) naming at least
	// one of them. Required.
	Audiences []string
	// RolesClaim names the member of the answer holding roles, as an
	// array of strings or a space-separated string. Empty means "roles".
	RolesClaim string
	// ScopeClaim names the member holding the OAuth scopes, as a
	// space-separated string (RFC 7662's "scope") or an array of strings.
	// Empty means "scope".
	ScopeClaim string
	// CacheTTL bounds how long an active answer is reused; it is never
	// reused past the token's expiry either. It is also how long a token
	// revoked at the provider may still be accepted. Zero means 30
	// seconds; negative values are refused.
	CacheTTL time.Duration
	// CacheSize bounds the number of answers remembered. Zero means
	// 10,000; a negative value disables the cache, so that every request
	// asks the endpoint.
	CacheSize int
	// HTTPClient calls the endpoint. Nil means a client with a 10-second
	// timeout. Whichever client is used, redirects are not followed: the
	// token and the client secret go to URL and nowhere else.
	HTTPClient *http.Client
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// MaxResponseBytes bounds the size of an answer; a larger one is an
	// error. Zero means 64 KiB; negative values are refused.
	MaxResponseBytes int64
}

// Authenticator authenticates opaque bearer tokens by introspection. It is
// safe for concurrent use.
type Authenticator struct {
	url          string
	clientID     string // form-urlencoded, ready for Basic authentication
	clientSecret string // likewise
	issuer       string
	audiences    []string
	rolesClaim   string
	scopeClaim   string
	client       *http.Client
	now          func() time.Time
	maxResponse  int64

	cache    *credcache.Cache[*cachedAnswer] // nil when disabled
	cacheTTL time.Duration
}

// cachedAnswer is what the cache remembers of an active token.
type cachedAnswer struct {
	p     *guard.Principal // shared by every hit; never modified
	until time.Time        // min(time cached + CacheTTL, token expiry)
}

var _ guard.Authenticator = (*Authenticator)(nil)

// New checks cfg and returns an Authenticator. It refuses a configuration
// that would send tokens over plain http to another machine, or that could
// accept tokens issued for another service: a URL that is not https (or
// http on a loopback host), a missing ClientID, Issuer or audience, or
// negative bounds. New does not contact the endpoint.
func New(cfg Config) (*Authenticator, error) {
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	switch {
	case cfg.ClientID == "":
		return nil, errors.New("introspect: ClientID is required")
	case cfg.Issuer == "":
		return nil, errors.New("introspect: Issuer is required")
	case len(cfg.Audiences) == 0:
		return nil, errors.New("introspect: at least one audience is required")
	case slices.Contains(cfg.Audiences, ""):
		return nil, errors.New("introspect: empty audience")
	case cfg.CacheTTL < 0:
		return nil, errors.New("introspect: negative CacheTTL")
	case cfg.MaxResponseBytes < 0:
		return nil, errors.New("introspect: negative MaxResponseBytes")
	}
	a := &Authenticator{
		url:          cfg.URL,
		clientID:     url.QueryEscape(cfg.ClientID),
		clientSecret: url.QueryEscape(string(cfg.ClientSecret)),
		issuer:       cfg.Issuer,
		audiences:    slices.Clone(cfg.Audiences),
		rolesClaim:   cmp.Or(cfg.RolesClaim, defaultRolesClaim),
		scopeClaim:   cmp.Or(cfg.ScopeClaim, defaultScopeClaim),
		now:          cfg.Now,
		maxResponse:  cmp.Or(cfg.MaxResponseBytes, defaultMaxResponse),
		cache:        credcache.New[*cachedAnswer](cmp.Or(cfg.CacheSize, defaultCacheSize)),
		cacheTTL:     cmp.Or(cfg.CacheTTL, defaultCacheTTL),
	}
	if a.now == nil {
		a.now = time.Now
	}
	// A copy, so that the caller's client keeps following redirects
	// elsewhere.
	client := http.Client{Timeout: defaultTimeout}
	if cfg.HTTPClient != nil {
		client = *cfg.HTTPClient
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a.client = &client
	return a, nil
}

// checkURL accepts an absolute https URL, or an http URL on a loopback
// host, without user information.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("introspect: URL: %w", err)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("introspect: URL must be absolute, with a host")
	case u.User != nil:
		return errors.New("introspect: URL must not carry credentials; set ClientID and ClientSecret")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && netx.IsLoopbackHost(u.Host):
		return nil
	}
	return errors.New("introspect: URL must use https (http only on a loopback host)")
}

// Refusals. Each wraps guard.ErrInvalidCredentials and reads as a reason
// safe to audit.
var (
	errNotBearer    = refusal("introspect: not a bearer token")
	errEmpty        = refusal("introspect: empty token")
	errTooLarge     = refusal("introspect: token too large")
	errInactive     = refusal("introspect: token is not active")
	errMissingSub   = refusal("introspect: answer has no sub")
	errMissingExp   = refusal("introspect: answer has no exp")
	errMissingAud   = refusal("introspect: answer has no aud")
	errExpired      = refusal("introspect: token expired")
	errNotYetValid  = refusal("introspect: token not yet valid")
	errIssuer       = refusal("introspect: wrong issuer")
	errAudience     = refusal("introspect: wrong audience")
	errRefreshToken = refusal("introspect: a refresh token is not an access token")
)

func refusal(reason string) error {
	return fmt.Errorf("%w: %s", guard.ErrInvalidCredentials, reason)
}

// errMalformed is the failure of an answer that is not a JSON object of
// the form RFC 7662 specifies.
var errMalformed = errors.New("introspect: malformed introspection answer")

// Authenticate asks the introspection endpoint about the bearer token in
// cred, unless an active answer about it is cached, and returns the
// Principal the answer describes. cred must be a [guard.Bearer] credential
// of at most 16 KiB.
//
// The token is accepted if the answer has "active": true, a "sub", an
// "exp" in the future, an "nbf" (if any) in the past, an "iss" (if any)
// equal to Config.Issuer, and an "aud" naming one of Config.Audiences.
//
// The Principal returned for a cached token is shared by every request
// presenting that token: callers must treat it as read-only (as every
// guard stage does), and must not modify its fields or the elements of its
// slices.
func (a *Authenticator) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	token := cred.Secret
	switch {
	case cred.Kind != guard.Bearer:
		// An API key sent in X-API-Key must never reach another party.
		return nil, errNotBearer
	case token == "":
		return nil, errEmpty
	case len(token) > maxTokenSize:
		return nil, errTooLarge
	}
	var sum credcache.Key
	if a.cache != nil {
		sum = a.cache.Sum(token)
		if e, ok := a.cache.Get(sum); ok {
			if a.now().Before(e.until) {
				return e.p, nil
			}
			a.cache.Remove(sum)
		}
	}
	p, err := a.introspect(ctx, token)
	if err != nil {
		return nil, err
	}
	if a.cache != nil {
		// Measured from after the answer arrived, which is never later than
		// the provider's view: exp bounds the entry anyway.
		until := a.now().Add(a.cacheTTL)
		if p.ExpiresAt.Before(until) {
			until = p.ExpiresAt
		}
		a.cache.Add(sum, &cachedAnswer{p: p, until: until})
	}
	return p, nil
}

// introspect asks the endpoint about token and checks the answer.
func (a *Authenticator) introspect(ctx context.Context, token string) (*guard.Principal, error) {
	body, err := a.post(ctx, token)
	if err != nil {
		return nil, err
	}
	return a.principal(body)
}

// post sends the introspection request for token and returns the body of a
// 200 answer. Its errors never contain the token.
func (a *Authenticator) post(ctx context.Context, token string) ([]byte, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspect: building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(a.clientID, a.clientSecret)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, withoutToken(fmt.Errorf("introspect: calling the endpoint: %w", err), token)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The body is not quoted: it might echo the token.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		return nil, fmt.Errorf("introspect: the endpoint answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, a.maxResponse+1))
	if err != nil {
		return nil, withoutToken(fmt.Errorf("introspect: reading the answer: %w", err), token)
	}
	if int64(len(body)) > a.maxResponse {
		return nil, fmt.Errorf("introspect: answer larger than %d bytes", a.maxResponse)
	}
	return body, nil
}

// withoutToken returns err, unless its text contains token (which a custom
// HTTPClient's transport might put there), in which case it returns a
// generic error instead.
func withoutToken(err error, token string) error {
	if strings.Contains(err.Error(), token) {
		return errors.New("introspect: calling the endpoint failed (details withheld: they contain the token)")
	}
	return err
}

// principal checks an introspection answer and maps it to a Principal.
func (a *Authenticator) principal(body []byte) (*guard.Principal, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, errMalformed
	}
	var active bool
	if err := decode(raw, "active", &active); err != nil {
		return nil, err
	}
	if !active {
		return nil, errInactive
	}
	var sub, iss, clientID string
	var exp, nbf numericDate
	for _, f := range [...]struct {
		name string
		dst  any
	}{{"sub", &sub}, {"iss", &iss}, {"client_id", &clientID}, {"exp", &exp}, {"nbf", &nbf}} {
		if _, ok := raw[f.name]; ok {
			if err := decode(raw, f.name, f.dst); err != nil {
				return nil, err
			}
		}
	}
	aud, err := audience(raw["aud"])
	if err != nil {
		return nil, err
	}
	now := a.now()
	switch {
	case sub == "":
		return nil, errMissingSub
	case exp.IsZero():
		return nil, errMissingExp
	case !now.Before(exp.Time):
		return nil, errExpired
	case !nbf.IsZero() && now.Before(nbf.Time):
		return nil, errNotYetValid
	case raw["iss"] != nil && iss != a.issuer:
		return nil, errIssuer
	case len(aud) == 0:
		return nil, errMissingAud
	case !slices.ContainsFunc(aud, func(s string) bool { return slices.Contains(a.audiences, s) }):
		return nil, errAudience
	case isRefreshToken(raw["token_type"]):
		// Providers name access token types variously (Bearer, DPoP,
		// access_token); a refresh token is never one.
		return nil, errRefreshToken
	}
	return &guard.Principal{
		Subject:   sub,
		Issuer:    a.issuer,
		Method:    Method,
		ClientID:  clientID,
		Roles:     stringList(raw[a.rolesClaim]),
		Scopes:    stringList(raw[a.scopeClaim]),
		ExpiresAt: exp.Time,
	}, nil
}

// isRefreshToken reports whether a token_type member says the token is a
// refresh token.
func isRefreshToken(v json.RawMessage) bool {
	var s string
	return v != nil && json.Unmarshal(v, &s) == nil && (strings.EqualFold(s, "refresh_token") || strings.EqualFold(s, "urn:ietf:params:oauth:token-type:refresh_token"))
}

// decode unmarshals the answer's member name into dst; a member missing or
// of the wrong JSON type makes the answer malformed.
func decode(raw map[string]json.RawMessage, name string, dst any) error {
	v, ok := raw[name]
	if !ok {
		return fmt.Errorf("%w: no %q member", errMalformed, name)
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%w: %q is not of the expected type", errMalformed, name)
	}
	return nil
}

// numericDate is a JSON NumericDate (RFC 7519): seconds since 1970,
// possibly fractional.
type numericDate struct{ time.Time }

// UnmarshalJSON reads a NumericDate, refusing negative values and values
// past the year 9999. null leaves d zero, as if the member were absent.
func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if f < 0 || f > maxNumericDate {
		return errors.New("NumericDate out of range")
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// audience reads an "aud" member: a string (one audience, spaces and all)
// or an array of strings. Absent is empty; anything else is malformed.
func audience(v json.RawMessage) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	var one string
	if json.Unmarshal(v, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%w: \"aud\" is neither a string nor an array of strings", errMalformed)
	}
	return list[:min(len(list), maxClaimEntries)], nil
}

// stringList reads a claim holding a space-separated string or an array
// of strings; see claims.StringList.
func stringList(v json.RawMessage) []string { return claims.StringList(v, maxClaimEntries) }
