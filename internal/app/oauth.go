package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/authn"
	"github.com/mcpguard/mcpguard/authn/introspect"
	"github.com/mcpguard/mcpguard/authn/jwt"
	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/internal/netx"
	"github.com/mcpguard/mcpguard/internal/tick"
	"github.com/mcpguard/mcpguard/oauth"
	"github.com/mcpguard/mcpguard/store"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// OAuthSessionKeyFile is the file in the data directory holding the key
// that seals the authorization server's login cookies, when
// oauth.session_key is not set.
const OAuthSessionKeyFile = "oauth-session.key"

// resourceServer is what mcpguard needs to act as an OAuth protected
// resource (and, when enabled, its own authorization server) for one base
// URL.
type resourceServer struct {
	base     string // scheme://host[:port] clients use
	resource string // canonical URL of the MCP endpoint
	as       *oauth.Server
	verifier *jwt.Authenticator // of the built-in server's tokens
	scopes   []oauth.Scope
}

// keyReload is how often the built-in server's signing keys are read again,
// so that a rotation (by the CLI or another replica) reaches this process.
const keyReload = 30 * time.Second

// reloadKeys keeps the authorization server's signing keys and the token
// verifier's keys current until ctx is done.
func (rs *resourceServer) reloadKeys(ctx context.Context, logger *slog.Logger) {
	tick.Every(ctx, keyReload, func() {
		if err := rs.syncKeys(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("oauth: reloading signing keys failed; keeping the current ones", "err", err)
		}
	})
}

func (rs *resourceServer) syncKeys(ctx context.Context) error {
	if err := rs.as.ReloadKeys(ctx); err != nil {
		return err
	}
	vks, err := rs.as.VerificationKeys(ctx)
	if err != nil {
		return err
	}
	return rs.verifier.SetKeys(jwtKeys(vks))
}

func jwtKeys(vks []oauth.VerificationKey) []jwt.Key {
	keys := make([]jwt.Key, 0, len(vks))
	for _, k := range vks {
		keys = append(keys, jwt.Key{ID: k.ID, Algorithm: k.Algorithm, Key: k.Key})
	}
	return keys
}

// oauthScopes converts the configured scopes, sorted by name so that
// scopes_supported and consent pages are stable.
func oauthScopes(cfg *config.Config) []oauth.Scope {
	var out []oauth.Scope
	for name, s := range cfg.OAuth.Scopes {
		out = append(out, oauth.Scope{Name: name, Description: s.Description, Role: s.Role})
	}
	slices.SortFunc(out, func(a, b oauth.Scope) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// setupOAuth builds the resource-server side for base (the URL the
// listener is reached at): the external identity providers' authenticators,
// the built-in authorization server when enabled, the WWW-Authenticate
// parameters and the step-up rule. It adds the authenticators to g's
// router; g.Audit must already be set.
func setupOAuth(ctx context.Context, cfg *config.Config, base string, st store.Store, g *guard.Guard, rbac *authz.RBAC, res config.Resolver, logger *slog.Logger) (*resourceServer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rs := &resourceServer{base: base, resource: base + cfg.Server.Path}
	router, ok := g.Authenticator.(authn.Router)
	if !ok {
		return nil, errors.New("oauth: the guard's authenticator is not an authn.Router")
	}
	router.Issuers = map[string]guard.Authenticator{}
	for i, p := range cfg.Auth.Providers {
		a, err := buildProvider(p, rs.resource, cfg.Auth.RevocationRecheck, st, res)
		if err != nil {
			return nil, fmt.Errorf("auth.providers[%d] (%s): %w", i, p.Name, err)
		}
		if p.IntrospectionURL != "" {
			if router.Opaque != nil {
				return nil, fmt.Errorf("auth.providers[%d] (%s): only one introspection provider is supported", i, p.Name)
			}
			router.Opaque = a
		} else {
			router.Issuers[p.Issuer] = a
		}
	}
	enabled := cfg.OAuth.Enabled
	if enabled && !secureBase(base) {
		// Passwords, codes and cookies would cross the network in clear,
		// and the MCP specification requires https for these endpoints.
		logger.Warn("oauth: the built-in authorization server is off: it needs https off loopback; set server.public_url to the https URL of a TLS-terminating proxy, or oauth.enabled: false to silence this", "base", base)
		enabled = false
	}
	if enabled {
		sessionKey, err := oauthSessionKey(cfg, res)
		if err != nil {
			return nil, err
		}
		rs.scopes = oauthScopes(cfg)
		as, err := oauth.New(ctx, oauth.Config{
			Issuer:                    base,
			Resources:                 []string{rs.resource},
			Store:                     st,
			Scopes:                    rs.scopes,
			DefaultScopes:             cfg.OAuth.DefaultScopes,
			HasRole:                   rbac.HeldRole,
			AccessTokenTTL:            cfg.OAuth.AccessTokenTTL,
			RefreshTokenTTL:           cfg.OAuth.RefreshTokenTTL,
			CodeTTL:                   cfg.OAuth.CodeTTL,
			DynamicRegistration:       cfg.OAuth.DynamicRegistration,
			MaxDynamicClients:         cfg.OAuth.MaxDynamicClients,
			RegistrationsPerHour:      cfg.OAuth.RegistrationsPerHour,
			ClientIDMetadataDocuments: cfg.OAuth.ClientIDMetadataDocuments,
			AllowPrivateCIMD:          cfg.OAuth.AllowPrivateMetadataURLs,
			SessionKey:                sessionKey,
			SecureCookies:             strings.HasPrefix(base, "https://"),
			Login:                     oauth.LoginPolicy{MaxFailures: cfg.OAuth.LoginMaxFailures, LockFor: cfg.OAuth.LoginLockout},
			Lockout:                   g.Lockout,
			Audit:                     g.Audit,
			Logger:                    logger,
			RevokeAccessToken:         st.RevokeToken,
			AccessTokenRevoked:        st.TokenRevoked,
		})
		if err != nil {
			return nil, fmt.Errorf("oauth: %w", err)
		}
		rs.as = as
		verifier, err := ownTokenVerifier(ctx, as, base, rs.resource, cfg.Auth.RevocationRecheck, st)
		if err != nil {
			return nil, err
		}
		router.Issuers[base] = verifier
		rs.verifier = verifier
		g.HTTP.ChallengeScopes = cfg.OAuth.DefaultScopes
		g.HTTP.StepUp = oauth.StepUp(oauth.StepUpConfig{Issuer: base, Scopes: rs.scopes, HasRole: rbac.HeldRole, Users: st})
	}
	g.Authenticator = router
	if len(rs.authorizationServers(cfg)) > 0 {
		g.HTTP.ResourceMetadataURL = rs.metadataURL(cfg)
	}
	return rs, nil
}

// secureBase reports whether base is https, or http on a loopback host
// (where nothing crosses the network).
func secureBase(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	return u.Scheme == "https" || (u.Scheme == "http" && netx.IsLoopbackHost(u.Host))
}

// metadataURL is where the protected resource metadata is served (RFC 9728
// §3.1: the well-known prefix inserted before the resource's path).
func (rs *resourceServer) metadataURL(cfg *config.Config) string {
	return rs.base + "/.well-known/oauth-protected-resource" + cfg.Server.Path
}

func (rs *resourceServer) authorizationServers(cfg *config.Config) []string {
	var out []string
	if rs.as != nil {
		out = append(out, rs.base)
	}
	for _, p := range cfg.Auth.Providers {
		out = append(out, p.Issuer)
	}
	return out
}

// mount adds the metadata and authorization-server endpoints to mux.
func (rs *resourceServer) mount(mux *http.ServeMux, cfg *config.Config) {
	servers := rs.authorizationServers(cfg)
	if len(servers) == 0 {
		return
	}
	meta := &oauthex.ProtectedResourceMetadata{
		Resource:               rs.resource,
		AuthorizationServers:   servers,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "mcpguard",
	}
	for _, s := range rs.scopes {
		meta.ScopesSupported = append(meta.ScopesSupported, s.Name)
	}
	prm := auth.ProtectedResourceMetadataHandler(meta)
	mux.Handle("/.well-known/oauth-protected-resource"+cfg.Server.Path, prm)
	mux.Handle("/.well-known/oauth-protected-resource", prm)
	if rs.as != nil {
		h := rs.as.Handler()
		for _, p := range []string{
			"/.well-known/oauth-authorization-server",
			"/.well-known/openid-configuration",
			"/.well-known/jwks.json",
			"/oauth/",
		} {
			mux.Handle(p, h)
		}
	}
}

// ownTokenVerifier verifies the access tokens of mcpguard's own
// authorization server: its signing keys, its issuer, this resource as the
// audience, revocation by jti.
func ownTokenVerifier(ctx context.Context, as *oauth.Server, issuer, resource string, rc time.Duration, st store.Store) (*jwt.Authenticator, error) {
	vks, err := as.VerificationKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauth: signing keys: %w", err)
	}
	jc := jwt.Config{
		Issuer:            issuer,
		Audiences:         []string{resource},
		RolesClaim:        "roles",
		ScopeClaims:       []string{"scope"},
		ClientIDClaims:    []string{"client_id"},
		Method:            guard.MethodOAuth,
		ScopeLimited:      true,
		RequiredType:      "at+jwt",
		Revocations:       st,
		RevocationRecheck: recheck(rc),
	}
	jc.Keys = jwtKeys(vks)
	a, err := jwt.New(jc)
	if err != nil {
		return nil, fmt.Errorf("oauth: token verifier: %w", err)
	}
	return a, nil
}

// buildProvider builds the authenticator of one external identity
// provider.
func buildProvider(p config.ProviderConfig, resource string, rc time.Duration, st store.Store, res config.Resolver) (guard.Authenticator, error) {
	audiences := p.Audiences
	if len(audiences) == 0 {
		audiences = []string{resource}
	}
	if p.IntrospectionURL != "" {
		secret, err := p.ClientSecret.ResolveWith(res)
		if err != nil {
			return nil, fmt.Errorf("client_secret: %w", err)
		}
		return introspect.New(introspect.Config{
			URL: p.IntrospectionURL, ClientID: p.ClientID, ClientSecret: secret,
			Issuer: p.Issuer, Audiences: audiences,
			RolesClaim: p.Claims.Roles, ScopeClaim: firstOr(p.Claims.Scopes, ""),
		})
	}
	return jwt.New(jwt.Config{
		Issuer:            p.Issuer,
		Audiences:         audiences,
		JWKSURL:           p.JWKSURL,
		RolesClaim:        p.Claims.Roles,
		ScopeClaims:       p.Claims.Scopes,
		PermissionsClaim:  p.Claims.Permissions,
		RoleMap:           p.RoleMap,
		Revocations:       st,
		RevocationRecheck: recheck(rc),
	})
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

// oauthSessionKey resolves oauth.session_key, or loads (creating on first
// start) the key file in the data directory.
func oauthSessionKey(cfg *config.Config, res config.Resolver) ([]byte, error) {
	if cfg.OAuth.SessionKey != "" {
		k, err := cfg.OAuth.SessionKey.ResolveWith(res)
		if err != nil {
			return nil, fmt.Errorf("oauth.session_key: %w", err)
		}
		if len(k) < 32 {
			return nil, errors.New("oauth.session_key: must be at least 32 bytes")
		}
		return k, nil
	}
	k, err := audit.LoadOrCreateKey(filepath.Join(cfg.DataDir, OAuthSessionKeyFile))
	if err != nil {
		return nil, fmt.Errorf("oauth session key: %w", err)
	}
	return k, nil
}
