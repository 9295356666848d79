// Package oauth is mcpguard's built-in OAuth 2.1 authorization server, the
// part of the MCP authorization specification that lets a client knowing
// only a server's URL obtain a token for it.
//
// # Endpoints
//
// Everything is served by [Server.Handler], under the issuer URL:
//
//	GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
//	GET  /.well-known/openid-configuration         the same, for OIDC-style discovery
//	GET  /.well-known/jwks.json                    public signing keys
//	GET  /oauth/authorize                          starts a sign-in (PKCE S256 and resource required)
//	POST /oauth/login, /oauth/mfa, /oauth/consent  the sign-in pages' forms
//	POST /oauth/token                              authorization_code, refresh_token, client_credentials
//	POST /oauth/register                           dynamic client registration (RFC 7591), when enabled
//	POST /oauth/revoke, /oauth/introspect          RFC 7009, RFC 7662
//
// # Flow
//
// A client redirects the person to /oauth/authorize. Once the client and
// redirect URI are known good, the validated request is sealed (AES-GCM)
// into a short-lived cookie; the person signs in with a password (argon2id),
// passes TOTP if enrolled, and consents, each form carrying a CSRF token
// bound to that cookie. The client then receives a single-use code (stored
// only as a digest, valid for at most 60 seconds) with state and iss (RFC
// 9207), and redeems it with the PKCE verifier for a short-lived ES256 JWT
// access token whose audience is the resource the request named (RFC 8707),
// and a refresh token that rotates on every use; replaying a rotated
// refresh token revokes its whole family.
//
// # Scopes and roles
//
// Each [Scope] grants one role, and only if the user holds it: a token can
// only narrow what the user's roles allow. Its "roles" claim carries the
// roles its granted scopes give; resource servers must not add others
// (guard.Principal.ScopeLimited). [StepUp] turns a refusal that a larger
// scope would lift into a step-up challenge.
//
// # Clients
//
// Clients are pre-registered (store.OAuthClient), registered dynamically, or
// identified by the https URL of a Client ID Metadata Document, fetched with
// a client that refuses private and loopback addresses (SSRF) unless
// Config.AllowPrivateCIMD is set for tests.
package oauth

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/safehttp"
	"github.com/mcpguard/mcpguard/store"
)

// Scope is one OAuth scope: it grants Role to a token, if the user holds
// the role.
type Scope struct {
	Name        string
	Description string
	Role        string
}

// LoginPolicy bounds sign-in attempts.
type LoginPolicy struct {
	// MaxFailures locks a user out after this many failed password or MFA
	// attempts in a row. Zero means 5.
	MaxFailures int
	// LockFor is how long a lockout lasts. Zero means 15 minutes.
	LockFor time.Duration
	// MaxMFAAttempts ends a sign-in after this many wrong MFA codes; the
	// person must start over. Zero means 5.
	MaxMFAAttempts int
}

// Config configures a [Server].
type Config struct {
	// Issuer is the server's issuer identifier and base URL, such as
	// "https://mcp.example.com" (no trailing slash).
	Issuer string
	// Resources are the accepted resource indicators (RFC 8707), such as
	// "https://mcp.example.com/mcp". Required.
	Resources []string
	// Store holds users, clients, codes, refresh tokens, consents and
	// signing keys.
	Store store.OAuthStore
	// Scopes are the scopes offered, in the order shown.
	Scopes []Scope
	// DefaultScopes are granted when a request names none.
	DefaultScopes []string
	// HasRole reports whether held roles, after inheritance, include role.
	HasRole func(held []string, role string) bool
	// AccessTokenTTL defaults to 15 minutes; RefreshTokenTTL to 30 days;
	// CodeTTL to (and at most) 60 seconds.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	CodeTTL         time.Duration
	// DynamicRegistration enables RFC 7591 registration, bounded by
	// MaxDynamicClients (default 1000).
	DynamicRegistration bool
	MaxDynamicClients   int
	// ClientIDMetadataDocuments accepts https URLs as client ids.
	ClientIDMetadataDocuments bool
	// CIMDClient fetches metadata documents. Nil means a client that
	// refuses private, loopback and link-local addresses, unless
	// AllowPrivateCIMD (for tests) is set.
	CIMDClient       *http.Client
	AllowPrivateCIMD bool
	// SessionKey (at least 32 bytes) seals the sign-in cookies.
	SessionKey []byte
	// SecureCookies marks cookies Secure and gives them the __Host-
	// prefix. Set it whenever the issuer is https; browsers refuse Secure
	// cookies over plain http to anything but localhost.
	SecureCookies bool
	// Login bounds sign-in attempts.
	Login LoginPolicy
	// Lockout, when set, also throttles failed sign-ins per source address.
	Lockout guard.Lockout
	// Audit receives a record of every sign-in, consent, token issued or
	// refused, and revocation. Required.
	Audit guard.AuditSink
	// RevokeAccessToken, when set, is called to revoke an access token by
	// its jti (RFC 7009); AccessTokenRevoked reports such revocations to
	// introspection.
	RevokeAccessToken  func(ctx context.Context, jti string, exp time.Time) error
	AccessTokenRevoked func(ctx context.Context, jti string) (bool, error)
	// Logger receives operational messages. Nil discards them.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Server is the authorization server. It is safe for concurrent use.
type Server struct {
	cfg     Config
	scopes  map[string]Scope
	sealer  *sealer
	hasher  *password.Hasher
	cimd    *cimdCache
	keys    atomic.Pointer[keySet]
	logger  *slog.Logger
	now     func() time.Time
	handler http.Handler
	// mfaAttempts counts wrong MFA codes per sign-in transaction (by its
	// id), so that a replayed transaction cookie gains no attempts.
	mfaMu       sync.Mutex
	mfaAttempts map[string]int
}

// VerificationKey is a public key that verifies the server's access tokens.
type VerificationKey struct {
	ID        string
	Algorithm string
	Key       crypto.PublicKey
}

// New checks cfg, makes sure a signing key exists (creating one in the
// store on first start) and returns the Server.
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
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(cfg.Issuer, "/") {
		return nil, errors.New("oauth: Issuer must be an absolute http(s) URL without query, fragment or trailing slash")
	}
	cfg.AccessTokenTTL = cmp.Or(cfg.AccessTokenTTL, 15*time.Minute)
	cfg.RefreshTokenTTL = cmp.Or(cfg.RefreshTokenTTL, 30*24*time.Hour)
	cfg.CodeTTL = cmp.Or(cfg.CodeTTL, time.Minute)
	if cfg.CodeTTL > time.Minute {
		return nil, errors.New("oauth: CodeTTL may not exceed 60 seconds")
	}
	cfg.MaxDynamicClients = cmp.Or(cfg.MaxDynamicClients, 1000)
	cfg.Login.MaxFailures = cmp.Or(cfg.Login.MaxFailures, 5)
	cfg.Login.LockFor = cmp.Or(cfg.Login.LockFor, 15*time.Minute)
	cfg.Login.MaxMFAAttempts = cmp.Or(cfg.Login.MaxMFAAttempts, 5)
	s := &Server{cfg: cfg, scopes: map[string]Scope{}, hasher: password.NewHasher(), logger: cfg.Logger, now: cfg.Now, mfaAttempts: map[string]int{}}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, sc := range cfg.Scopes {
		s.scopes[sc.Name] = sc
	}
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
		client = safehttp.NewClient(safehttp.Options{AllowPrivate: cfg.AllowPrivateCIMD, Timeout: 5 * time.Second})
	}
	s.cimd = newCIMDCache(client, 1000, s.now)
	if err := s.ReloadKeys(ctx); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler serves every endpoint of the authorization server.
func (s *Server) Handler() http.Handler { return s.handler }

// VerificationKeys returns the public keys that verify the server's tokens:
// the signing key, keys published ahead of a rotation, and retired keys
// whose tokens may not have expired yet.
func (s *Server) VerificationKeys(context.Context) ([]VerificationKey, error) {
	return s.keys.Load().public(), nil
}

// ReloadKeys reads the signing keys from the store again, so that a
// rotation made by another process (`mcpguard keys rotate-signing`, another
// replica) takes effect; call it periodically. The first call creates a key
// when there is none.
func (s *Server) ReloadKeys(ctx context.Context) error {
	ks, err := loadKeys(ctx, s.cfg.Store, s.now(), s.cfg.AccessTokenTTL)
	if err != nil {
		return err
	}
	s.keys.Store(ks)
	return nil
}

// RotateSigningKey starts a signing-key rotation: it stores a new ES256 key
// that is published at once (in the JWKS and to resource servers that
// reload keys) but signs only from now+publishFor, when the keys that sign
// now retire. Retired keys keep verifying for as long as their tokens may
// live (the access-token lifetime), so no valid token is ever refused.
func RotateSigningKey(ctx context.Context, st store.OAuthStore, publishFor time.Duration, now time.Time) (*store.SigningKey, error) {
	if publishFor < 0 {
		return nil, errors.New("oauth: negative publication delay")
	}
	keys, err := st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauth: signing keys: %w", err)
	}
	k, err := newSigningKey(now.Add(publishFor))
	if err != nil {
		return nil, err
	}
	if err := st.CreateSigningKey(ctx, k); err != nil {
		return nil, fmt.Errorf("oauth: store signing key: %w", err)
	}
	for _, old := range keys {
		if old.RetiredAt.IsZero() && !old.CreatedAt.After(now) {
			if err := st.RetireSigningKey(ctx, old.ID, k.CreatedAt); err != nil {
				return nil, fmt.Errorf("oauth: retire signing key %s: %w", old.ID, err)
			}
		}
	}
	return k, nil
}

// newSigningKey makes an ES256 key that signs from activeFrom.
func newSigningKey(activeFrom time.Time) (*store.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("oauth: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("oauth: encode signing key: %w", err)
	}
	return &store.SigningKey{ID: randomHex(8), Algorithm: "ES256", PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), CreatedAt: activeFrom}, nil
}

// keySet holds the signing keys: the newest active one signs, and every
// published one verifies.
type keySet struct {
	signing *ecdsa.PrivateKey
	kid     string
	all     []VerificationKey
}

func (k *keySet) public() []VerificationKey { return slices.Clone(k.all) }

// keyGrace is added to a retired key's verification period, for clock
// skew between replicas.
const keyGrace = time.Minute

func loadKeys(ctx context.Context, st store.OAuthStore, now time.Time, tokenTTL time.Duration) (*keySet, error) {
	stored, err := st.ListSigningKeys(ctx) // newest first
	if err != nil {
		return nil, fmt.Errorf("oauth: signing keys: %w", err)
	}
	signs := func(k *store.SigningKey) bool {
		return k.Algorithm == "ES256" && !k.CreatedAt.After(now) && (k.RetiredAt.IsZero() || now.Before(k.RetiredAt))
	}
	active := slices.IndexFunc(stored, signs)
	if active < 0 {
		k, err := newSigningKey(now)
		if err != nil {
			return nil, err
		}
		if err := st.CreateSigningKey(ctx, k); err != nil {
			return nil, fmt.Errorf("oauth: store signing key: %w", err)
		}
		stored = append([]*store.SigningKey{k}, stored...)
		active = 0
	}
	ks := &keySet{}
	for i, k := range stored {
		if k.Algorithm != "ES256" || (!k.RetiredAt.IsZero() && !now.Before(k.RetiredAt.Add(tokenTTL+keyGrace))) {
			continue // past its tokens' lifetime: no longer published
		}
		block, _ := pem.Decode(k.PrivateKeyPEM)
		if block == nil {
			return nil, fmt.Errorf("oauth: signing key %s is not PEM", k.ID)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("oauth: signing key %s: %w", k.ID, err)
		}
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("oauth: signing key %s is not an ECDSA key", k.ID)
		}
		if i == active {
			ks.signing, ks.kid = priv, k.ID
		}
		ks.all = append(ks.all, VerificationKey{ID: k.ID, Algorithm: "ES256", Key: &priv.PublicKey})
	}
	return ks, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.serveMetadata)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveMetadata)
	mux.HandleFunc("GET /.well-known/jwks.json", s.serveJWKS)
	mux.HandleFunc("GET /oauth/authorize", s.authorize)
	mux.HandleFunc("POST /oauth/login", s.login)
	mux.HandleFunc("POST /oauth/mfa", s.mfa)
	mux.HandleFunc("POST /oauth/consent", s.consent)
	mux.HandleFunc("GET /oauth/static/style.css", serveCSS)
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("POST /oauth/revoke", s.revoke)
	mux.HandleFunc("POST /oauth/introspect", s.introspect)
	if s.cfg.DynamicRegistration {
		mux.HandleFunc("POST /oauth/register", s.register)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guard.SecurityHeaders(w.Header())
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		mux.ServeHTTP(w, r)
	})
}

// maxFormBytes bounds every request body the server reads.
const maxFormBytes = 64 << 10

// audit writes one record; a failure is logged (the request has already
// been decided).
func (s *Server) audit(r *http.Request, method, subject, clientID string, decision guard.Outcome, reason string) error {
	rec := &guard.Record{
		Time: s.now(), Method: method, Subject: subject, Decision: decision, Reason: reason,
		ClientAddr: clientIP(r), Transport: "http", Issuer: s.cfg.Issuer, Target: clientID,
	}
	if err := s.cfg.Audit.Record(r.Context(), rec); err != nil {
		s.logger.Error("oauth: audit write failed", "err", err)
		return err
	}
	return nil
}
