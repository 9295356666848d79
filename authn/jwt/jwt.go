// Package jwt authenticates callers that present a signed JSON Web Token
// (RFC 7519) as a bearer credential. It implements [guard.Authenticator].
//
// An [Authenticator] accepts only compact JWS tokens signed by a key it
// knows, each key pinned to one algorithm, and only when the token's claims
// name the configured issuer and one of the configured audiences, carry a
// subject and an expiry, and are valid now. Keys come from [Config.Keys],
// from a JWKS endpoint ([Config.JWKSURL]) or both:
//
//	pub, err := jwt.ParsePublicKeyPEM(pemBytes)
//	if err != nil { ... }
//	authn, err := jwt.New(jwt.Config{
//		Issuer:    "https://idp.example.com/",
//		Audiences: []string{"https://mcp.example.com"},
//		Keys:      []jwt.Key{{ID: "2024-01", Algorithm: "RS256", Key: pub}},
//		JWKSURL:   "https://idp.example.com/.well-known/jwks.json",
//	})
//	if err != nil { ... }
//	g := &guard.Guard{Authenticator: authn, ...}
//
// The token's "roles", "scope"/"scp", "permissions" and "client_id"/"azp"
// claims (names configurable) become the [guard.Principal]'s Roles, Scopes,
// Permissions and ClientID.
//
// Every refusal wraps [guard.ErrInvalidCredentials] and says why in words
// safe to audit, such as "jwt: token expired"; no error ever contains the
// token. Failures that are not the caller's fault (an unreachable JWKS
// endpoint or revocation store) are returned without that mark, so the
// request fails closed without counting as a failed authentication.
package jwt

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/mcpguard/mcpguard/guard"
)

// Limits applied to every token and claim.
const (
	// maxTokenSize bounds a token's length; longer tokens are refused
	// before any parsing.
	maxTokenSize = 16 << 10
	// maxClaimEntries bounds the entries taken from one roles, scopes or
	// permissions claim; the rest are ignored.
	maxClaimEntries = 100
	// maxNoKIDCandidates bounds the keys tried for a token without "kid".
	maxNoKIDCandidates = 4
)

// Defaults for zero Config fields.
const (
	defaultLeeway          = 30 * time.Second
	defaultJWKSCacheTTL    = 10 * time.Minute
	defaultJWKSMinRefresh  = 30 * time.Second
	defaultRolesClaim      = "roles"
	defaultPermissionClaim = "permissions"
)

// RevocationChecker reports whether a token has been revoked before its
// expiry, by its "jti" claim. An error means the answer is unknown; the
// Authenticator then fails the request closed.
type RevocationChecker interface {
	TokenRevoked(ctx context.Context, jti string) (bool, error)
}

// Config configures an [Authenticator]. Issuer, Audiences and at least one
// of Keys or JWKSURL are required; every other field has a safe default.
type Config struct {
	// Issuer is the expected "iss" claim; tokens from any other issuer are
	// refused. Required.
	Issuer string
	// Audiences lists the accepted "aud" values; a token must name at least
	// one of them. Required: a token minted for another service must not
	// be accepted here.
	Audiences []string
	// Leeway is the clock skew tolerated when checking "exp", "nbf" and
	// "iat". Zero means 30 seconds; a negative value means none.
	Leeway time.Duration

	// Keys are statically configured verification keys.
	Keys []Key
	// JWKSURL is the identity provider's JWK Set endpoint. It must use
	// https; http is accepted only for loopback hosts. Only asymmetric
	// signing keys are taken from it.
	JWKSURL string
	// JWKSCacheTTL is how long fetched JWKS keys are used before being
	// refetched. Zero means 10 minutes.
	JWKSCacheTTL time.Duration
	// JWKSMinRefreshInterval is the least time between two JWKS fetches.
	// A token naming an unknown key id triggers a refetch (to pick up a
	// rotated key) only if the last fetch started at least this long ago.
	// Zero means 30 seconds.
	JWKSMinRefreshInterval time.Duration
	// HTTPClient fetches the JWKS. Nil means a client with a 10 second
	// timeout that refuses redirects to plain http.
	HTTPClient *http.Client

	// RolesClaim names the claim holding roles, as an array of strings or a
	// space-separated string. Empty means "roles".
	RolesClaim string
	// ScopeClaims names the claims holding OAuth scopes, in order of
	// preference; the first present is used. Each may be a space-separated
	// string or an array of strings. Nil means {"scope", "scp"}.
	ScopeClaims []string
	// PermissionsClaim names the claim holding permission patterns. Empty
	// means "permissions".
	PermissionsClaim string
	// ClientIDClaims names the claims holding the OAuth client id, in order
	// of preference. Nil means {"client_id", "azp"}.
	ClientIDClaims []string

	// Revocations, if set, is asked about every token that carries a "jti".
	Revocations RevocationChecker
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Authenticator verifies JWT bearer tokens. It is safe for concurrent use.
type Authenticator struct {
	issuer      string
	audiences   josejwt.Audience
	leeway      time.Duration
	algs        []jose.SignatureAlgorithm // allowed in token headers
	static      *keyring
	fallback    *verifyKey // the single static key without an id, if any
	jwks        *jwksCache // nil without JWKSURL
	rolesClaim  string
	scopeClaims []string
	permClaim   string
	clientIDs   []string
	revocations RevocationChecker
	now         func() time.Time
}

var _ guard.Authenticator = (*Authenticator)(nil)

// New checks cfg and returns an Authenticator. It refuses a configuration
// that could accept forged or foreign tokens: a missing issuer or
// audience, no keys, an unknown or "none" algorithm, a key whose type or
// size does not fit its algorithm (HMAC secrets shorter than the hash, RSA
// keys under 2048 bits), duplicate key ids, or a JWKS URL without https.
// New does not contact the JWKS endpoint; the keys are fetched on first use.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("jwt: Issuer is required")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("jwt: at least one audience is required")
	}
	if slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("jwt: empty audience")
	}
	if len(cfg.Keys) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("jwt: no keys: set Keys or JWKSURL")
	}
	a := &Authenticator{
		issuer:      cfg.Issuer,
		audiences:   slices.Clone(josejwt.Audience(cfg.Audiences)),
		leeway:      cfg.Leeway,
		rolesClaim:  cmp.Or(cfg.RolesClaim, defaultRolesClaim),
		scopeClaims: slices.Clone(cfg.ScopeClaims),
		permClaim:   cmp.Or(cfg.PermissionsClaim, defaultPermissionClaim),
		clientIDs:   slices.Clone(cfg.ClientIDClaims),
		revocations: cfg.Revocations,
		now:         cfg.Now,
	}
	switch {
	case a.leeway == 0:
		a.leeway = defaultLeeway
	case a.leeway < 0:
		a.leeway = 0
	}
	if a.scopeClaims == nil {
		a.scopeClaims = []string{"scope", "scp"}
	}
	if a.clientIDs == nil {
		a.clientIDs = []string{"client_id", "azp"}
	}
	if a.now == nil {
		a.now = time.Now
	}

	keys := make([]*verifyKey, 0, len(cfg.Keys))
	seen := make(map[string]bool, len(cfg.Keys))
	for i, k := range cfg.Keys {
		if k.ID == "" && len(cfg.Keys) > 1 {
			return nil, fmt.Errorf("jwt: key %d: an ID is required when more than one key is configured", i)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("jwt: key %d: duplicate ID %q", i, k.ID)
		}
		seen[k.ID] = true
		vk, err := newVerifyKey(k.ID, k.Algorithm, k.Key)
		if err != nil {
			return nil, fmt.Errorf("jwt: key %d (%q): %w", i, k.ID, err)
		}
		if vk.id == "" {
			a.fallback = vk
		}
		keys = append(keys, vk)
		if !slices.Contains(a.algs, vk.alg) {
			a.algs = append(a.algs, vk.alg)
		}
	}
	a.static = newKeyring(keys)

	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			return nil, err
		}
		ttl := cmp.Or(cfg.JWKSCacheTTL, defaultJWKSCacheTTL)
		minRefresh := cmp.Or(cfg.JWKSMinRefreshInterval, defaultJWKSMinRefresh)
		if ttl < 0 || minRefresh < 0 {
			return nil, errors.New("jwt: negative JWKS cache TTL or refresh interval")
		}
		client := cfg.HTTPClient
		if client == nil {
			client = defaultHTTPClient()
		}
		a.jwks = &jwksCache{url: cfg.JWKSURL, client: client, ttl: ttl, minRefresh: minRefresh, now: a.now}
		for _, alg := range asymmetricAlgs {
			if !slices.Contains(a.algs, alg) {
				a.algs = append(a.algs, alg)
			}
		}
	}
	return a, nil
}

// Refusals. Each wraps guard.ErrInvalidCredentials and reads as a reason
// safe to audit.
var (
	errNotBearer    = refusal("jwt: not a bearer token")
	errTooLarge     = refusal("jwt: token too large")
	errMalformed    = refusal("jwt: malformed token")
	errAlgorithm    = refusal("jwt: algorithm not allowed")
	errUnknownKID   = refusal("jwt: unknown key id")
	errNoKey        = refusal("jwt: no key for token")
	errSignature    = refusal("jwt: bad signature")
	errMissingIss   = refusal("jwt: missing iss claim")
	errMissingSub   = refusal("jwt: missing sub claim")
	errMissingAud   = refusal("jwt: missing aud claim")
	errMissingExp   = refusal("jwt: missing exp claim")
	errIssuer       = refusal("jwt: wrong issuer")
	errAudience     = refusal("jwt: wrong audience")
	errExpired      = refusal("jwt: token expired")
	errNotYetValid  = refusal("jwt: token not yet valid")
	errIssuedFuture = refusal("jwt: token issued in the future")
	errInvalid      = refusal("jwt: invalid claims")
	errRevoked      = refusal("jwt: token revoked")
)

func refusal(reason string) error {
	return fmt.Errorf("%w: %s", guard.ErrInvalidCredentials, reason)
}

// Authenticate verifies the JWT in cred and returns the Principal it
// describes. cred must be a [guard.Bearer] credential.
//
// The token's signature is checked with the key its "kid" header names
// (or, without a "kid", with the keys pinned to its "alg"), then its
// claims: "iss" must equal Config.Issuer, "aud" must name one of
// Config.Audiences, "sub" and "exp" must be present, and "exp", "nbf" and
// "iat" must hold at the current time give or take the leeway. A token
// naming an unknown key id makes the Authenticator refetch the JWKS, at
// most once per Config.JWKSMinRefreshInterval.
func (a *Authenticator) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	if cred.Kind != guard.Bearer {
		return nil, errNotBearer
	}
	token := cred.Secret
	if len(token) > maxTokenSize {
		return nil, errTooLarge
	}
	if token == "" || strings.Count(token, ".") != 2 {
		return nil, errMalformed
	}
	jws, err := jose.ParseSignedCompact(token, a.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, errAlgorithm
		}
		return nil, errMalformed
	}
	if len(jws.Signatures) != 1 {
		return nil, errMalformed
	}
	header := jws.Signatures[0].Header
	payload, err := a.verify(ctx, jws, header.KeyID, jose.SignatureAlgorithm(header.Algorithm))
	if err != nil {
		return nil, err
	}
	return a.principal(ctx, payload)
}

// verify finds the keys for a token and returns its payload once one of
// them verifies its signature.
func (a *Authenticator) verify(ctx context.Context, jws *jose.JSONWebSignature, kid string, alg jose.SignatureAlgorithm) ([]byte, error) {
	var buf [maxNoKIDCandidates]*verifyKey
	cands, known := a.static.lookup(buf[:0], kid, alg, maxNoKIDCandidates)
	var jwksErr error
	if !known && len(cands) == 0 && a.jwks != nil {
		// Not a static key: ask the JWKS, refetching it once if it does
		// not know the key (the provider may have rotated its keys).
		for _, refresh := range [...]bool{false, true} {
			ring, err := a.jwks.keys(ctx, refresh)
			if err != nil {
				jwksErr = err
				break
			}
			cands, known = ring.lookup(cands[:0], kid, alg, maxNoKIDCandidates)
			if known || len(cands) > 0 {
				break
			}
		}
	}
	if !known && len(cands) == 0 && a.fallback != nil && a.fallback.alg == alg {
		cands = append(cands, a.fallback)
	}
	if len(cands) == 0 {
		switch {
		case jwksErr != nil:
			return nil, jwksErr // internal: the keys could not be fetched
		case known:
			return nil, errAlgorithm // the named key is pinned to another algorithm
		case kid != "":
			return nil, errUnknownKID
		default:
			return nil, errNoKey
		}
	}
	for _, k := range cands {
		if payload, err := jws.Verify(k.key); err == nil {
			return payload, nil
		}
	}
	return nil, errSignature
}

// principal checks the claims in a verified payload and maps them to a
// Principal.
func (a *Authenticator) principal(ctx context.Context, payload []byte) (*guard.Principal, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, errMalformed
	}
	var c josejwt.Claims
	if err := decodeClaims(raw, &c); err != nil {
		return nil, err
	}
	switch {
	case c.Issuer == "":
		return nil, errMissingIss
	case c.Subject == "":
		return nil, errMissingSub
	case len(c.Audience) == 0:
		return nil, errMissingAud
	case c.Expiry == nil:
		return nil, errMissingExp
	}
	err := c.ValidateWithLeeway(josejwt.Expected{
		Issuer:      a.issuer,
		AnyAudience: a.audiences,
		Time:        a.now(),
	}, a.leeway)
	switch {
	case err == nil:
	case errors.Is(err, josejwt.ErrInvalidIssuer):
		return nil, errIssuer
	case errors.Is(err, josejwt.ErrInvalidAudience):
		return nil, errAudience
	case errors.Is(err, josejwt.ErrExpired):
		return nil, errExpired
	case errors.Is(err, josejwt.ErrNotValidYet):
		return nil, errNotYetValid
	case errors.Is(err, josejwt.ErrIssuedInTheFuture):
		return nil, errIssuedFuture
	default:
		return nil, errInvalid
	}

	if c.ID != "" && a.revocations != nil {
		revoked, err := a.revocations.TokenRevoked(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("jwt: checking revocation: %w", err)
		}
		if revoked {
			return nil, errRevoked
		}
	}

	p := &guard.Principal{
		Subject:     c.Subject,
		Issuer:      c.Issuer,
		Method:      guard.MethodJWT,
		TokenID:     c.ID,
		Roles:       stringList(raw[a.rolesClaim]),
		Permissions: stringList(raw[a.permClaim]),
		ExpiresAt:   c.Expiry.Time(),
	}
	for _, name := range a.scopeClaims {
		if v, ok := raw[name]; ok {
			p.Scopes = stringList(v)
			break
		}
	}
	for _, name := range a.clientIDs {
		var s string
		if v, ok := raw[name]; ok && json.Unmarshal(v, &s) == nil && s != "" {
			p.ClientID = s
			break
		}
	}
	return p, nil
}

// decodeClaims fills the registered claims in c from raw. A registered
// claim of the wrong JSON type makes the token malformed.
func decodeClaims(raw map[string]json.RawMessage, c *josejwt.Claims) error {
	fields := []struct {
		name string
		dst  any
	}{
		{"iss", &c.Issuer},
		{"sub", &c.Subject},
		{"aud", &c.Audience},
		{"exp", &c.Expiry},
		{"nbf", &c.NotBefore},
		{"iat", &c.IssuedAt},
		{"jti", &c.ID},
	}
	for _, f := range fields {
		v, ok := raw[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return errMalformed
		}
	}
	return nil
}

// stringList reads a claim holding either a space-separated string or an
// array of strings. Non-string array entries and empty strings are skipped,
// and at most maxClaimEntries entries are kept.
func stringList(v json.RawMessage) []string {
	if len(v) == 0 {
		return nil
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		out := strings.Fields(s)
		if len(out) > maxClaimEntries {
			out = out[:maxClaimEntries:maxClaimEntries]
		}
		return out
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return nil
		}
		out := make([]string, 0, min(len(items), maxClaimEntries))
		for _, item := range items {
			if len(out) == maxClaimEntries {
				break
			}
			var s string
			if len(item) == 0 || item[0] != '"' || json.Unmarshal(item, &s) != nil || s == "" {
				continue
			}
			out = append(out, s)
		}
		return out
	}
	return nil
}
