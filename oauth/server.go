package oauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"github.com/mcpguard/mcpguard/secrets"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safehttp"
	"github.com/mcpguard/mcpguard/internal/safetext"
	"github.com/mcpguard/mcpguard/store"
	"golang.org/x/time/rate"
)

// Scope is one OAuth scope. It grants Role to a token, if the user (or, in
// the client_credentials grant, the client) holds the role.
type Scope struct {
	Name        string
	Description string
	Role        string
}

// ScopeMFA is the step-up scope: every server knows it, it grants no
// role, and asking for it makes the person pass their second factor again
// during the authorization, whatever their sign-in session remembers. The
// token then carries the time of that second factor ("mfa_time"), which
// policies read as principal.mfa_age. A person without a second factor is
// not granted it. See package policy's @step_up_mfa.
const ScopeMFA = "mfa"

// LoginPolicy bounds sign-in attempts.
type LoginPolicy struct {
	// MaxFailures locks a user out after this many failed password or MFA
	// attempts in a row. Zero means 5.
	MaxFailures int
	// LockFor is how long a lockout lasts. Zero means 15 minutes.
	LockFor time.Duration
	// MaxMFAAttempts ends a sign-in after this many wrong MFA codes; the
	// person must start over from the application. Zero means 5.
	MaxMFAAttempts int
}

// Config configures a [Server].
type Config struct {
	// Issuer is the server's issuer identifier and base URL, such as
	// "https://mcp.example.com" (no trailing slash, query or fragment). It
	// may have a path; the endpoints are then served under it.
	Issuer string
	// Resources are the accepted resource indicators (RFC 8707), such as
	// "https://mcp.example.com/mcp". At least one is required; the first is
	// the default of the client_credentials grant.
	Resources []string
	// Store holds users, clients, codes, refresh tokens, consents and
	// signing keys.
	Store store.OAuthStore
	// Scopes are the scopes offered (scopes_supported), in order.
	Scopes []Scope
	// DefaultScopes are requested when an authorization request names none.
	DefaultScopes []string
	// HasRole reports whether held roles, after inheritance, include role
	// (authz.RBAC.HeldRole). Required.
	HasRole func(held []string, role string) bool
	// AccessTokenTTL defaults to 15 minutes.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL defaults to 30 days. It is absolute per token: each
	// rotation issues a new token valid this long.
	RefreshTokenTTL time.Duration
	// CodeTTL defaults to, and may not exceed, 60 seconds.
	CodeTTL time.Duration
	// DynamicRegistration enables RFC 7591 registration at /oauth/register,
	// bounded by MaxDynamicClients (default 1000).
	DynamicRegistration bool
	// RegistrationsPerHour bounds dynamic registrations from one source
	// address (a burst of that many, refilled over an hour), so that one
	// source cannot use up MaxDynamicClients. Zero means 10.
	RegistrationsPerHour int
	MaxDynamicClients    int
	// ClientIDMetadataDocuments accepts https URLs as client ids, naming
	// Client ID Metadata Documents.
	ClientIDMetadataDocuments bool
	// CIMDClient fetches metadata documents. Nil means an internal/safehttp
	// client that refuses private, loopback and link-local destinations
	// (unless AllowPrivateCIMD) and follows no redirect.
	CIMDClient *http.Client
	// AllowPrivateCIMD lets the default CIMDClient fetch from loopback and
	// private addresses: for tests and labs only, never in production.
	// Document URLs must still be https.
	AllowPrivateCIMD bool
	// SessionKey (at least 32 bytes) seals the sign-in cookies. Replicas
	// must share it.
	SessionKey secrets.Value
	// SecureCookies marks the sign-in cookies Secure and gives their names
	// the "__Host-" prefix (which browsers accept only on Secure cookies
	// with Path=/ and no Domain). Set it whenever the issuer is https.
	// Leave it false only for plain-http development and tests: a browser
	// drops Secure cookies set over plain http to anything but localhost,
	// which would break every sign-in.
	SecureCookies bool
	// Login bounds sign-in attempts.
	Login LoginPolicy
	// Lockout, when set, also throttles failed sign-ins per source (client
	// IPv4 address, or IPv6 /64).
	Lockout guard.Lockout
	// Audit receives a record of every sign-in, MFA attempt, consent, code
	// and token issued or refused, revocation and registration. Required.
	Audit guard.AuditSink
	// RevokeAccessToken, when set, revokes an access token by its jti
	// until exp (RFC 7009 revocation, and the access token of a replayed
	// code); AccessTokenRevoked reports such revocations to introspection.
	RevokeAccessToken  func(ctx context.Context, jti string, exp time.Time) error
	AccessTokenRevoked func(ctx context.Context, jti string) (bool, error)
	// Logger receives operational messages (never a secret). Nil discards
	// them.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Server is the authorization server. It is safe for concurrent use.
type Server struct {
	cfg    Config
	origin string // scheme://host of the issuer
	prefix string // the issuer's path, "" or "/t1"
	scopes map[string]Scope
	sealer *sealer
	hasher *password.Hasher
	cimd   *cimdCache
	keys   *keySet
	logger *slog.Logger
	now    func() time.Time
	// mfa counts wrong MFA codes per sign-in transaction.
	mfa *attemptCounter
	// regMu serializes dynamic registrations, so that the client limit
	// holds on one replica.
	regMu sync.Mutex
	// regLimit bounds dynamic registrations per source address.
	regLimit *sourceLimiter
	handler  http.Handler
}

// sourceLimiter gives each source address a token bucket. Its map is
// bounded: when full it starts afresh, which can only ever allow more.
type sourceLimiter struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	every   rate.Limit
	burst   int
}

// maxSources bounds the addresses a sourceLimiter remembers.
const maxSources = 10_000

func newSourceLimiter(perHour int) *sourceLimiter {
	return &sourceLimiter{buckets: map[string]*rate.Limiter{}, every: rate.Limit(float64(perHour) / 3600), burst: perHour}
}

// allow reports whether source may act at now.
func (l *sourceLimiter) allow(source string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[source]
	if !ok {
		if len(l.buckets) >= maxSources {
			clear(l.buckets)
		}
		b = rate.NewLimiter(l.every, l.burst)
		l.buckets[source] = b
	}
	return b.AllowN(now, 1)
}

// New checks cfg, makes sure an active ES256 signing key exists (creating
// one in the store on first start) and returns the Server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("oauth: Store is required")
	case cfg.Audit == nil:
		return nil, errors.New("oauth: Audit is required")
	case cfg.HasRole == nil:
		return nil, errors.New("oauth: HasRole is required")
	case len(cfg.Resources) == 0:
		return nil, errors.New("oauth: at least one resource is required")
	case len(cfg.Scopes) == 0:
		return nil, errors.New("oauth: at least one scope is required")
	case len(cfg.SessionKey) < 32:
		return nil, errors.New("oauth: SessionKey must be at least 32 bytes")
	case cfg.AccessTokenTTL < 0 || cfg.RefreshTokenTTL < 0 || cfg.CodeTTL < 0:
		return nil, errors.New("oauth: token lifetimes may not be negative")
	case cfg.CodeTTL > time.Minute:
		return nil, errors.New("oauth: CodeTTL may not exceed 60 seconds")
	case cfg.MaxDynamicClients < 0 || cfg.Login.MaxFailures < 0 || cfg.Login.LockFor < 0 || cfg.Login.MaxMFAAttempts < 0:
		return nil, errors.New("oauth: limits may not be negative")
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" || iss.User != nil ||
		iss.RawQuery != "" || iss.Fragment != "" || strings.ContainsAny(cfg.Issuer, "?#") || strings.HasSuffix(cfg.Issuer, "/") {
		return nil, errors.New("oauth: Issuer must be an absolute http(s) URL without credentials, query, fragment or trailing slash")
	}
	for _, r := range cfg.Resources {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(r, "#") {
			return nil, fmt.Errorf("oauth: resource %q must be an absolute URL without a fragment", r)
		}
	}
	cfg.AccessTokenTTL = cmp.Or(cfg.AccessTokenTTL, 15*time.Minute)
	cfg.RefreshTokenTTL = cmp.Or(cfg.RefreshTokenTTL, 30*24*time.Hour)
	cfg.CodeTTL = cmp.Or(cfg.CodeTTL, time.Minute)
	cfg.MaxDynamicClients = cmp.Or(cfg.MaxDynamicClients, 1000)
	cfg.Login.MaxFailures = cmp.Or(cfg.Login.MaxFailures, 5)
	cfg.Login.LockFor = cmp.Or(cfg.Login.LockFor, 15*time.Minute)
	cfg.Login.MaxMFAAttempts = cmp.Or(cfg.Login.MaxMFAAttempts, 5)
	s := &Server{
		cfg: cfg, origin: iss.Scheme + "://" + iss.Host, prefix: iss.EscapedPath(),
		scopes: map[string]Scope{}, hasher: password.NewHasher(), logger: cfg.Logger, now: cfg.Now,
		regLimit: newSourceLimiter(cmp.Or(cfg.RegistrationsPerHour, 10)),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, sc := range cfg.Scopes {
		if !validScopeToken(sc.Name) {
			return nil, fmt.Errorf("oauth: scope name %q is not a valid scope token (RFC 6749 §3.3)", sc.Name)
		}
		if sc.Role == "" {
			return nil, fmt.Errorf("oauth: scope %q grants no role", sc.Name)
		}
		if sc.Name == ScopeMFA {
			return nil, fmt.Errorf("oauth: scope %q is reserved for the MFA step-up", sc.Name)
		}
		if _, dup := s.scopes[sc.Name]; dup {
			return nil, fmt.Errorf("oauth: scope %q is defined twice", sc.Name)
		}
		s.scopes[sc.Name] = sc
	}
	s.scopes[ScopeMFA] = Scope{Name: ScopeMFA, Description: "Confirm it is you with your second factor again, for a sensitive action"}
	for _, d := range cfg.DefaultScopes {
		if _, ok := s.scopes[d]; !ok {
			return nil, fmt.Errorf("oauth: default scope %q is not a scope", d)
		}
	}
	if s.sealer, err = newSealer(cfg.SessionKey); err != nil {
		return nil, err
	}
	client := cfg.CIMDClient
	if client == nil {
		client = safehttp.NewClient(safehttp.Options{AllowPrivate: cfg.AllowPrivateCIMD, Timeout: cimdTimeout, MaxBodyBytes: maxCIMDBytes})
	}
	s.cimd = newCIMDCache(client, cimdCacheSize, s.now)
	s.mfa = newAttemptCounter(maxTrackedSignIns, s.now)
	// A retired key verifies for its tokens' lifetime, plus a minute for
	// clock skew between replicas.
	s.keys = &keySet{st: cfg.Store, now: s.now, grace: cfg.AccessTokenTTL + time.Minute, logger: s.logger}
	if err := s.ReloadKeys(ctx); err != nil {
		return nil, err
	}
	if iss.Scheme == "http" && !netx.IsLoopbackHost(iss.Hostname()) {
		s.logger.Warn("oauth: the issuer is plain http on a non-loopback host; passwords and tokens cross the network unencrypted", "issuer", cfg.Issuer)
	}
	s.handler = s.routes()
	return s, nil
}

// Handler serves every endpoint of the authorization server; unknown paths
// are 404.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	p := s.prefix
	mux := http.NewServeMux()
	// RFC 8414 §3.1 inserts the well-known segment before the issuer's
	// path; OpenID Connect discovery appends it. Both are served.
	mux.HandleFunc("GET /.well-known/oauth-authorization-server"+p, s.serveMetadata)
	mux.HandleFunc("GET /.well-known/openid-configuration"+p, s.serveOpenIDConfiguration)
	if p != "" {
		mux.HandleFunc("GET "+p+"/.well-known/openid-configuration", s.serveOpenIDConfiguration)
		mux.HandleFunc("GET "+p+"/.well-known/oauth-authorization-server", s.serveMetadata)
	}
	mux.HandleFunc("GET "+p+"/.well-known/jwks.json", s.serveJWKS)
	mux.HandleFunc("GET "+p+"/oauth/authorize", s.authorize)
	mux.HandleFunc("POST "+p+"/oauth/login", s.login)
	mux.HandleFunc("POST "+p+"/oauth/mfa", s.mfaSubmit)
	mux.HandleFunc("POST "+p+"/oauth/consent", s.consent)
	mux.HandleFunc("GET "+p+"/oauth/static/style.css", serveCSS)
	mux.HandleFunc("POST "+p+"/oauth/token", s.token)
	mux.HandleFunc("POST "+p+"/oauth/revoke", s.revoke)
	mux.HandleFunc("POST "+p+"/oauth/introspect", s.introspect)
	// Browser-based clients call these from another origin; they use no
	// cookie, so any origin may (without credentials).
	for _, path := range []string{"/oauth/token", "/oauth/revoke"} {
		mux.HandleFunc("OPTIONS "+p+path, preflight)
	}
	if s.cfg.DynamicRegistration {
		mux.HandleFunc("POST "+p+"/oauth/register", s.register)
		mux.HandleFunc("OPTIONS "+p+"/oauth/register", preflight)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guard.SecurityHeaders(w.Header())
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		mux.ServeHTTP(w, r)
	})
}

// cors allows any origin to read a response that carries no cookie-based
// authority.
func cors(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate")
}

func preflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	cors(w)
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// Request bounds.
const (
	// maxBodyBytes bounds every request body the server reads.
	maxBodyBytes = 64 << 10
	// maxTrackedSignIns bounds the sign-in transactions whose MFA failures
	// are counted in memory.
	maxTrackedSignIns = 100_000
)

// audit writes one record. Reasons never contain a secret. A failure is
// logged and returned, so that a success that cannot be recorded is not
// granted.
func (s *Server) audit(r *http.Request, method, subject, clientID string, decision guard.Outcome, reason string) error {
	rec := &guard.Record{
		Time: s.now(), Method: method, Subject: safetext.Printable(subject, 256), Decision: decision,
		Reason: safetext.Printable(reason, 512), ClientAddr: netx.PeerIP(r), Transport: "http",
		Issuer: s.cfg.Issuer, Target: safetext.Printable(clientID, 512),
	}
	if err := s.cfg.Audit.Record(r.Context(), rec); err != nil {
		s.logger.Error("oauth: audit write failed", "method", method, "err", err)
		return err
	}
	return nil
}

// validScopeToken reports whether s is a scope-token of RFC 6749 §3.3.
func validScopeToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}
