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
// A verified token is remembered, by its SHA-256 digest, in a bounded
// least-recently-used cache until it expires or [Config.CacheTTL] passes,
// so that a token presented again costs no signature verification. A token
// revoked while cached is refused within [Config.RevocationRecheck] (one
// second by default) rather than at once.
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
	"github.com/mcpguard/mcpguard/authn/internal/claims"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/mcpguard/mcpguard/authn/internal/credcache"
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
	defaultCacheSize       = 10_000
	defaultCacheTTL        = 5 * time.Minute
	defaultRecheck         = time.Second
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

	// RoleMap, when not nil, translates the roles claim: each value the
	// identity provider puts there (a group, say) grants the roles it maps
	// to, and values it does not map grant nothing. Nil takes the claim's
	// values as role names.
	RoleMap map[string][]string
	// Method is the AuthMethod of the principals this Authenticator
	// returns. Empty means guard.MethodJWT; mcpguard's own authorization
	// server's tokens use guard.MethodOAuth.
	Method guard.AuthMethod
	// RequiredType, when set, is the "typ" header every token must carry
	// (compared without case and without an "application/" prefix), such
	// as "at+jwt" for RFC 9068 access tokens, so that another kind of JWT
	// from the same issuer (an ID token, say) is not taken for one.
	RequiredType string
	// ScopeLimited marks the principals as scope-limited (see
	// guard.Principal.ScopeLimited): set it for an issuer that narrows the
	// roles claim by the granted scopes, as mcpguard's own authorization
	// server does. Such tokens' permissions claim is ignored.
	ScopeLimited bool

	// Revocations, if set, is asked about every token that carries a "jti"
	// (for a cached token, at most once per RevocationRecheck).
	Revocations RevocationChecker

	// CacheSize bounds the number of verified tokens remembered, so that a
	// token presented again is accepted without verifying its signature and
	// claims again. Tokens are remembered by their SHA-256 digest, never in
	// clear, and only once verified: a refused token is never cached. Zero
	// means 10,000; a negative value disables the cache.
	CacheSize int
	// CacheTTL bounds how long a verified token is remembered; it is never
	// remembered past its expiry either. It is also how long a cached token
	// stays accepted after its signing key is withdrawn from the JWKS (a key
	// withdrawn by SetKeys ends its cached tokens at once). Zero means 5
	// minutes; negative values are refused.
	CacheTTL time.Duration
	// RevocationRecheck is how long a cached token carrying a "jti" is
	// accepted before Revocations is asked about it again. A token revoked
	// while cached is therefore refused at most this long after the
	// revocation (at once without a cache). Zero means 1 second; a negative
	// value asks on every request, the cache then saving only the
	// signature and claim checks.
	RevocationRecheck time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Authenticator verifies JWT bearer tokens. It is safe for concurrent use.
type Authenticator struct {
	issuer      string
	audiences   josejwt.Audience
	leeway      time.Duration
	algs        []jose.SignatureAlgorithm // allowed in token headers
	static      atomic.Pointer[staticSet]
	jwks        *jwksCache // nil without JWKSURL
	rolesClaim  string
	scopeClaims []string
	permClaim   string
	clientIDs   []string
	revocations RevocationChecker
	roleMap     map[string][]string
	method      guard.AuthMethod
	limited     bool
	typ         string
	now         func() time.Time

	cache    *credcache.Cache[*cachedToken] // nil when disabled
	cacheTTL time.Duration
	recheck  time.Duration
}

// cachedToken is what the cache remembers of a verified token. Only checked
// changes once it is stored.
type cachedToken struct {
	p *guard.Principal // shared by every hit; never modified
	validity
	// until is when the entry stops being used: its insertion time plus
	// Config.CacheTTL.
	until time.Time
	// keys are the static keys the token was verified under.
	keys *staticSet
	// checked is when the revocation list was last consulted (Unix
	// nanoseconds, the time the query started).
	checked atomic.Int64
}

// validity holds a verified token's time claims, so that a cache hit
// applies the same time checks as a full verification.
type validity struct {
	exp, nbf, iat time.Time // nbf and iat are zero when absent
}

// check validates the time claims at now, allowing leeway, exactly as
// [josejwt.Claims.ValidateWithLeeway] does.
func (v *validity) check(now time.Time, leeway time.Duration) error {
	switch {
	case !v.nbf.IsZero() && now.Add(leeway).Before(v.nbf):
		return errNotYetValid
	case now.Add(-leeway).After(v.exp):
		return errExpired
	case !v.iat.IsZero() && now.Add(leeway).Before(v.iat):
		return errIssuedFuture
	}
	return nil
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
	if cfg.CacheTTL < 0 {
		return nil, errors.New("jwt: negative CacheTTL")
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
		roleMap:     maps.Clone(cfg.RoleMap),
		method:      cmp.Or(cfg.Method, guard.MethodJWT),
		limited:     cfg.ScopeLimited,
		typ:         strings.ToLower(cfg.RequiredType),
		now:         cfg.Now,
		cache:       credcache.New[*cachedToken](cmp.Or(cfg.CacheSize, defaultCacheSize)),
		cacheTTL:    cmp.Or(cfg.CacheTTL, defaultCacheTTL),
		recheck:     cmp.Or(cfg.RevocationRecheck, defaultRecheck),
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

	sk, err := buildStatic(cfg.Keys)
	if err != nil {
		return nil, err
	}
	for _, vk := range sk.all {
		if !slices.Contains(a.algs, vk.alg) {
			a.algs = append(a.algs, vk.alg)
		}
	}
	a.static.Store(sk)

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
	errType         = refusal("jwt: wrong token type (typ header)")
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
//
// A verified token is cached (see Config.CacheSize): presented again, it
// is accepted after the time checks above (with the same leeway) and, at
// most once per Config.RevocationRecheck, a revocation check. The
// Principal returned for a cached token is shared by every request
// presenting that token: callers must treat it as read-only (as every
// guard stage does), and must not modify its fields or the elements of its
// slices.
func (a *Authenticator) Authenticate(ctx context.Context, cred guard.Credential) (*guard.Principal, error) {
	if cred.Kind != guard.Bearer {
		return nil, errNotBearer
	}
	token := cred.Secret
	if len(token) > maxTokenSize {
		return nil, errTooLarge
	}
	if a.cache == nil {
		p, _, err := a.authenticate(ctx, token)
		return p, err
	}
	sum := a.cache.Sum(token)
	if e, ok := a.cache.Get(sum); ok {
		p, hit, err := a.cached(ctx, sum, e)
		if hit {
			return p, err
		}
	}
	keys := a.static.Load()
	p, v, err := a.authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	e := &cachedToken{p: p, validity: v.validity, until: v.at.Add(a.cacheTTL), keys: keys}
	e.checked.Store(v.at.UnixNano())
	a.cache.Add(sum, e)
	return p, nil
}

// cached answers for a token found in the cache as e under sum. hit is
// false when the entry is too old to use and the token must be verified
// afresh.
func (a *Authenticator) cached(ctx context.Context, sum credcache.Key, e *cachedToken) (p *guard.Principal, hit bool, err error) {
	now := a.now()
	if !now.Before(e.until) || e.keys != a.static.Load() {
		// Too old, or verified under keys SetKeys has since replaced: a
		// token of a withdrawn key must not live on in the cache.
		a.cache.Remove(sum)
		return nil, false, nil
	}
	if err := e.check(now, a.leeway); err != nil {
		if errors.Is(err, errExpired) {
			a.cache.Remove(sum)
		}
		return nil, true, err
	}
	if jti := e.p.TokenID; jti != "" && a.revocations != nil && credcache.Due(e.checked.Load(), now, a.recheck) {
		revoked, err := a.revocations.TokenRevoked(ctx, jti)
		if err != nil {
			return nil, true, fmt.Errorf("jwt: checking revocation: %w", err)
		}
		if revoked {
			a.cache.Remove(sum)
			return nil, true, errRevoked
		}
		// Record the check as of when it started; concurrent checks keep
		// the latest.
		for at := now.UnixNano(); ; {
			old := e.checked.Load()
			if old >= at || e.checked.CompareAndSwap(old, at) {
				break
			}
		}
	}
	return e.p, true, nil
}

// verified describes a token that passed a full verification.
type verified struct {
	validity
	at time.Time // when its claims and revocation were checked
}

// authenticate verifies token from scratch.
func (a *Authenticator) authenticate(ctx context.Context, token string) (*guard.Principal, verified, error) {
	if token == "" || strings.Count(token, ".") != 2 {
		return nil, verified{}, errMalformed
	}
	jws, err := jose.ParseSignedCompact(token, a.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, verified{}, errAlgorithm
		}
		return nil, verified{}, errMalformed
	}
	if len(jws.Signatures) != 1 {
		return nil, verified{}, errMalformed
	}
	header := jws.Signatures[0].Header
	if a.typ != "" {
		typ, _ := header.ExtraHeaders[jose.HeaderType].(string)
		if !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), a.typ) {
			return nil, verified{}, errType
		}
	}
	payload, err := a.verify(ctx, jws, header.KeyID, jose.SignatureAlgorithm(header.Algorithm))
	if err != nil {
		return nil, verified{}, err
	}
	return a.principal(ctx, payload)
}

// verify finds the keys for a token and returns its payload once one of
// them verifies its signature.
func (a *Authenticator) verify(ctx context.Context, jws *jose.JSONWebSignature, kid string, alg jose.SignatureAlgorithm) ([]byte, error) {
	var buf [maxNoKIDCandidates]*verifyKey
	static := a.static.Load()
	cands, known := static.ring.lookup(buf[:0], kid, alg, maxNoKIDCandidates)
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
	if !known && len(cands) == 0 && static.fallback != nil && static.fallback.alg == alg {
		cands = append(cands, static.fallback)
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
// Principal. It also returns the time claims and the time of the checks.
func (a *Authenticator) principal(ctx context.Context, payload []byte) (*guard.Principal, verified, error) {
	var tv verified
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, tv, errMalformed
	}
	var c josejwt.Claims
	if err := decodeClaims(raw, &c); err != nil {
		return nil, tv, err
	}
	switch {
	case c.Issuer == "":
		return nil, tv, errMissingIss
	case c.Subject == "":
		return nil, tv, errMissingSub
	case len(c.Audience) == 0:
		return nil, tv, errMissingAud
	case c.Expiry == nil:
		return nil, tv, errMissingExp
	}
	tv.at = a.now()
	tv.exp = c.Expiry.Time()
	if c.NotBefore != nil {
		tv.nbf = c.NotBefore.Time()
	}
	if c.IssuedAt != nil {
		tv.iat = c.IssuedAt.Time()
	}
	err := c.ValidateWithLeeway(josejwt.Expected{
		Issuer:      a.issuer,
		AnyAudience: a.audiences,
		Time:        tv.at,
	}, a.leeway)
	switch {
	case err == nil:
	case errors.Is(err, josejwt.ErrInvalidIssuer):
		return nil, tv, errIssuer
	case errors.Is(err, josejwt.ErrInvalidAudience):
		return nil, tv, errAudience
	case errors.Is(err, josejwt.ErrExpired):
		return nil, tv, errExpired
	case errors.Is(err, josejwt.ErrNotValidYet):
		return nil, tv, errNotYetValid
	case errors.Is(err, josejwt.ErrIssuedInTheFuture):
		return nil, tv, errIssuedFuture
	default:
		return nil, tv, errInvalid
	}

	if c.ID != "" && a.revocations != nil {
		revoked, err := a.revocations.TokenRevoked(ctx, c.ID)
		if err != nil {
			return nil, tv, fmt.Errorf("jwt: checking revocation: %w", err)
		}
		if revoked {
			return nil, tv, errRevoked
		}
	}

	p := &guard.Principal{
		Subject:      c.Subject,
		Issuer:       c.Issuer,
		Method:       a.method,
		TokenID:      c.ID,
		Roles:        a.mapRoles(stringList(raw[a.rolesClaim])),
		ExpiresAt:    tv.exp,
		ScopeLimited: a.limited,
	}
	if !a.limited {
		p.Permissions = stringList(raw[a.permClaim])
	}
	p.Groups = stringList(raw["groups"])
	if a.roleMap != nil {
		// The claim the role map reads holds the provider's groups.
		for _, g := range stringList(raw[a.rolesClaim]) {
			if !slices.Contains(p.Groups, g) {
				p.Groups = append(p.Groups, g)
			}
		}
	}
	// Authentication times from the future (beyond the leeway) are
	// ignored: they would read as a second factor passed just now for as
	// long as the token lives.
	latest := tv.at.Add(a.leeway)
	past := func(t time.Time) time.Time {
		if t.After(latest) {
			return time.Time{}
		}
		return t
	}
	p.AuthTime = past(unixClaim(raw["auth_time"]))
	if a.method == guard.MethodOAuth {
		// mfa_time is the private claim of mcpguard's own authorization
		// server, the only issuer trusted to set it.
		p.MFATime = past(unixClaim(raw["mfa_time"]))
	}
	if p.MFATime.IsZero() && slices.ContainsFunc(stringList(raw["amr"]), isSecondFactor) {
		p.MFATime = p.AuthTime
	}
	for _, name := range a.scopeClaims {
		if v, ok := raw[name]; ok {
			p.Scopes = stringList(v)
			break
		}
	}
	if v, ok := raw["cnf"]; ok {
		// RFC 8705 §3.1: a certificate-bound token; guard.HTTPMiddleware
		// refuses it without that certificate.
		var cnf struct {
			X5tS256 string `json:"x5t#S256"`
		}
		if err := json.Unmarshal(v, &cnf); err != nil {
			return nil, tv, refusal("jwt: malformed cnf claim")
		}
		if cnf.X5tS256 == "" {
			// A key this server cannot check the proof of (DPoP "jkt"):
			// accepting the token unbound would defeat the binding.
			return nil, tv, refusal("jwt: token bound by an unsupported confirmation method")
		}
		p.BoundCertificate = cnf.X5tS256
	}
	for _, name := range a.clientIDs {
		var s string
		if v, ok := raw[name]; ok && json.Unmarshal(v, &s) == nil && s != "" {
			p.ClientID = s
			break
		}
	}
	return p, tv, nil
}

// unixClaim reads a NumericDate claim; zero when absent or malformed.
func unixClaim(v json.RawMessage) time.Time {
	var n json.Number
	if len(v) == 0 || json.Unmarshal(v, &n) != nil {
		return time.Time{}
	}
	secs, err := n.Int64()
	if err != nil || secs <= 0 {
		return time.Time{}
	}
	return time.Unix(secs, 0)
}

// isSecondFactor reports whether an "amr" value (RFC 8176) names a second
// factor or a multi-factor sign-in.
func isSecondFactor(amr string) bool {
	switch amr {
	case "mfa", "otp", "hwk", "swk", "sms", "sc", "fido":
		return true
	}
	return false
}

// mapRoles applies the RoleMap, if any, to the roles claim's values.
func (a *Authenticator) mapRoles(claimed []string) []string {
	if a.roleMap == nil {
		return claimed
	}
	var roles []string
	for _, v := range claimed {
		for _, r := range a.roleMap[v] {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	return roles
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

// stringList reads a claim holding a space-separated string or an array
// of strings; see claims.StringList.
func stringList(v json.RawMessage) []string { return claims.StringList(v, maxClaimEntries) }

// staticSet are the configured keys, replaced as a whole by SetKeys.
type staticSet struct {
	ring     *keyring
	fallback *verifyKey // the single key without an id, if any
	all      []*verifyKey
}

func buildStatic(keys []Key) (*staticSet, error) {
	sk := &staticSet{all: make([]*verifyKey, 0, len(keys))}
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		if k.ID == "" && len(keys) > 1 {
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
			sk.fallback = vk
		}
		sk.all = append(sk.all, vk)
	}
	sk.ring = newKeyring(sk.all)
	return sk, nil
}

// SetKeys replaces the static verification keys, for an issuer that rotates
// its keys while mcpguard runs (mcpguard's own authorization server). The
// keys' algorithms must be among those the Authenticator was created with,
// so that replacing keys can never widen the algorithms a token may use.
// Cached tokens are verified again under the new keys on their next use.
func (a *Authenticator) SetKeys(keys []Key) error {
	sk, err := buildStatic(keys)
	if err != nil {
		return err
	}
	for _, vk := range sk.all {
		if !slices.Contains(a.algs, vk.alg) {
			return fmt.Errorf("jwt: key %q uses %s, which this Authenticator does not accept", vk.id, vk.alg)
		}
	}
	a.static.Store(sk)
	return nil
}

// Invalidate forgets every remembered token, so that each is checked
// against the revocation list again on its next use: called when another
// process revoked a token, it makes the revocation effective at once rather
// than within RevocationRecheck.
func (a *Authenticator) Invalidate() { a.cache.Clear() }
