// Package app assembles mcpguard from its configuration: the store, the
// pipeline's stages, the built-in tools and the transports. The CLI in
// cmd/mcpguard only parses flags and calls into this package.
package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"github.com/mcpguard/mcpguard/internal/tick"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpguard/mcpguard/admin"
	"github.com/mcpguard/mcpguard/auditstore"
	"github.com/mcpguard/mcpguard/authn"
	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/authn/jwt"
	"github.com/mcpguard/mcpguard/authn/password"
	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/config"
	"github.com/mcpguard/mcpguard/internal/tlsx"
	"github.com/mcpguard/mcpguard/policy"
	"github.com/mcpguard/mcpguard/proxy"
	"github.com/mcpguard/mcpguard/ratelimit"
	"github.com/mcpguard/mcpguard/store"
	"github.com/mcpguard/mcpguard/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Version is mcpguard's version, reported in the MCP initialize result.
const Version = "0.1.0"

// DemoDatabase is the demo database's file name inside the data directory.
const DemoDatabase = "demo.db"

// ServeOptions are the inputs of `mcpguard serve`.
type ServeOptions struct {
	// Config is the loaded configuration.
	Config *config.Config
	// Demo seeds the demo database and identities and serves the tools.
	Demo bool
	// Stdio serves MCP on Stdin/Stdout instead of HTTP.
	Stdio bool
	// Env reads the environment (MCP_API_KEY, MCP_AUTH_TOKEN, secrets).
	Env func(string) (string, bool)
	// Status receives the startup report and operational logs: always
	// stderr in practice, never the stdio protocol stream.
	Status io.Writer
	// Stdin and Stdout carry the protocol in stdio mode.
	Stdin  io.Reader
	Stdout io.Writer
	// Ready, if set, is called with the MCP endpoint URL once the HTTP
	// server is listening.
	Ready func(url string)
	// Upstreams are one-line upstream definitions, "name=command args..."
	// or "name=https://host/mcp", added to the configured ones.
	Upstreams []string

	readiness http.Handler // GET /readyz, set by Serve
}

// Serve runs mcpguard until ctx is done.
func Serve(ctx context.Context, o ServeOptions) error {
	cfg := o.Config
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	logger := slog.New(slog.NewTextHandler(o.Status, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ok := func(format string, args ...any) { fmt.Fprintf(o.Status, "[OK] "+format+"\n", args...) }
	warn := func(format string, args ...any) { fmt.Fprintf(o.Status, "[WARN] "+format+"\n", args...) }

	if o.Stdio && cfg.Audit.Log == "stdout" {
		return errors.New(`audit.log "stdout" cannot be used with --stdio: stdout carries the MCP protocol; use a file or "stderr"`)
	}
	if o.Demo {
		cfg.Database = filepath.Join(cfg.DataDir, DemoDatabase)
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		if _, err := tools.SeedDemo(ctx, cfg.Database); err != nil {
			return fmt.Errorf("demo database: %w", err)
		}
	}

	st, err := openStoreFor(ctx, cfg, o.Env)
	if err != nil {
		return err
	}
	defer st.Close()
	if sealed, isSealed := st.(*sealingStore); isSealed {
		ok("Secrets sealed with master key %s", sealed.ring.CurrentID())
	} else if cfg.OAuth.Enabled && !o.Stdio {
		warn("No master key (%s): the authorization server's signing keys and TOTP secrets are stored in clear in %s; set one to seal them", cfg.Secrets.MasterKey, storeName(cfg))
	}

	if o.Demo {
		if err := seedDemoIdentities(ctx, st, o.Status); err != nil {
			return err
		}
	}

	res := resolver(ctx, cfg, st, o.Env)
	// Policies ask the gateway, once it exists, which upstream serves an
	// item (resource.upstream, Upstream::"name").
	var gateway atomic.Pointer[proxy.Gateway]
	owner := func(kind, name string) string {
		if gw := gateway.Load(); gw != nil {
			return gw.Owner(kind, name)
		}
		return ""
	}
	g, keys, rbac, err := buildGuard(ctx, cfg, st, res, owner, logger)
	if err != nil {
		return err
	}
	rdb, err := shareState(cfg, g, logger)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
		ok("Rate limits and lockout shared through Redis (on failure: %s)", cmp.Or(cfg.Redis.OnFailure, "closed"))
	}
	o.readiness = readiness(st, rdb)
	hup := &hupReloader{}
	hup.listen(ctx, logger)
	if set, ok := g.Authorizer.(*policy.Set); ok {
		watchPolicies(ctx, set, cfg.Policies.ReloadInterval, logger, hup)
	}
	obs, err := newObservability(cfg, logger)
	if err != nil {
		return err
	}
	defer obs.close()
	g.Observer = obs.observer()
	sink, err := openAuditLog(cfg, res, obs.metrics)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer sink.Close()
	// Every record goes to the log file and to the store, where
	// `mcpguard audit query` and the admin page read it.
	// The store copy is a query index, written in batches off the request
	// path; the file is the authoritative, durable record.
	index := auditstore.NewBatchSink(st, auditstore.BatchOptions{Logger: logger})
	defer func() {
		if err := index.Close(); err != nil {
			logger.Error("audit index", "err", err)
		}
	}()
	g.Audit = auditstore.Tee(sink, index)

	var reserved []string
	if cfg.Database != "" {
		reserved = tools.Names()
	}
	gw, err := newGateway(cfg, o, st, res, g.Audit, reserved, obs.metrics.SetKnownTools, logger)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	serverOpts := &mcp.ServerOptions{Logger: logger, GetSessionID: guard.NewSessionID}
	if gw != nil {
		gw.Configure(serverOpts)
		gateway.Store(gw)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "mcpguard", Version: Version}, serverOpts)
	transport := "http"
	if o.Stdio {
		transport = "stdio"
	}
	mcpOpts := guard.MCPOptions{Transport: transport}
	if o.Stdio {
		mcpOpts.Credential = stdioCredential(o.Env)
	}
	middleware := append(obs.mcpMiddleware(), g.MCPMiddleware(mcpOpts))
	if gw != nil {
		// Innermost: a call to a tool blocked by pinning is refused after
		// it was authorized and with its audit record.
		middleware = append(middleware, gw.Middleware())
	}
	server.AddReceivingMiddleware(middleware...)

	if keys != nil {
		ok("API key authentication enabled")
		flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { keys.Run(flushCtx, 30*time.Second, logger); close(done) }()
		defer func() { stopFlush(); <-done }()
	}
	if cfg.Auth.JWT.Enabled {
		ok("JWT authentication enabled (issuer %s)", cfg.Auth.JWT.Issuer)
	}
	ok("Role-based access control active (%d roles, %d tool rules)", len(cfg.Roles), len(cfg.ToolPermissions))
	switch cfg.Audit.Log {
	case "-", "stderr":
		ok("Audit logging to stderr")
	case "stdout":
		ok("Audit logging to stdout")
	default:
		ok("Audit logging to %s (hash-chained, signed checkpoints)", cfg.Audit.Log)
	}
	if cfg.RateLimit.Enabled {
		ok("Rate limiting: %d req/min per user", cfg.RateLimit.RequestsPerMinute)
	} else {
		warn("Rate limiting disabled")
	}
	if g.Lockout != nil {
		lo := cfg.RateLimit.Lockout
		ok("Lockout: %d failed authentications within %v lock a source for %v", lo.MaxFailures, lo.Window, lo.Duration)
	}

	if cfg.Database != "" {
		db, err := tools.Open(ctx, cfg.Database)
		if err != nil {
			return fmt.Errorf("built-in tools: %w", err)
		}
		defer db.Close()
		tools.Register(server, db)
		obs.metrics.SetKnownTools(tools.Names())
		ok("Built-in database tools on %s: %s", cfg.Database, strings.Join(tools.Names(), ", "))
	}
	if gw != nil {
		if err := gw.Start(ctx, server); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		defer gw.Close()
		sctx, stopStatus := context.WithCancel(ctx)
		statusDone := make(chan struct{})
		go func() { reportStatus(sctx, gw, st, logger); close(statusDone) }()
		defer func() { stopStatus(); <-statusDone }()
		for _, s := range gw.Status() {
			ok("Upstream %s (%s, %s): %d tools, %d blocked by pinning", s.Name, s.Kind, s.Isolation, s.Tools, s.Blocked)
		}
	}
	if cfg.Auth.Anonymous.Enabled && !o.Stdio {
		warn("Anonymous access enabled: requests without credentials act as roles %s (loopback listener only)", strings.Join(cfg.Auth.Anonymous.Roles, ", "))
	}

	if o.Stdio {
		if mcpOpts.Credential == nil {
			warn("No MCP_API_KEY or MCP_AUTH_TOKEN in the environment: every request but initialize and ping will be refused")
		}
		fmt.Fprintln(o.Status, "Server ready on stdio")
		err := server.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(o.Stdin), Writer: nopWriteCloser{o.Stdout}})
		if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
	if cfg.Metrics.Enabled {
		if cfg.Metrics.Addr != "" {
			ok("Metrics at http://%s/metrics (unauthenticated listener)", cfg.Metrics.Addr)
		} else {
			ok("Metrics at %s/metrics for roles %s", "the main listener", strings.Join(cfg.Metrics.Roles, ", "))
		}
	}
	if cfg.Tracing.Enabled {
		ok("Tracing to %s", cfg.Tracing.File)
	}
	if cfg.Admin.Enabled {
		ok("Admin page at /admin/ for roles %s", strings.Join(cfg.Admin.Roles, ", "))
	}
	return serveHTTP(ctx, cfg, st, res, g, rbac, obs, server, o, logger, hup)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// stdioCredential reads the stdio credential from the environment.
func stdioCredential(env func(string) (string, bool)) *guard.Credential {
	if v, ok := env("MCP_API_KEY"); ok && strings.TrimSpace(v) != "" {
		return &guard.Credential{Kind: guard.APIKeyHeader, Secret: strings.TrimSpace(v)}
	}
	if v, ok := env("MCP_AUTH_TOKEN"); ok && strings.TrimSpace(v) != "" {
		return &guard.Credential{Kind: guard.Bearer, Secret: strings.TrimSpace(v)}
	}
	return nil
}

func serveHTTP(ctx context.Context, cfg *config.Config, st store.Store, res config.Resolver, g *guard.Guard, rbac *authz.RBAC, obs *observability, server *mcp.Server, o ServeOptions, logger *slog.Logger, hup *hupReloader) error {
	tlsCfg, err := setupTLS(ctx, cfg, g, hup, logger)
	if err != nil {
		return err
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	handler, err := mcpHandler(ctx, cfg, st, g, server, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
	}
	defer ln.Close()
	if g.HTTP.Anonymous != nil && !config.LoopbackAddr(ln.Addr().String()) {
		return fmt.Errorf("auth.anonymous is enabled but the listener %s is not loopback-only; refusing to start", ln.Addr())
	}
	addr := ln.Addr().String()
	ln = netx.LimitListener(ln, cfg.Server.MaxConnections)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	// The OAuth issuer and resource URL need the address clients reach:
	// server.public_url, or the listener's (its port is known only now
	// when server.addr asks for port 0).
	base := scheme + "://" + addr
	if cfg.Server.PublicURL != "" {
		base = cfg.BaseURL()
	}
	rs, err := setupOAuth(ctx, cfg, base, st, g, rbac, res, logger)
	if err != nil {
		return err
	}
	watchRevocations(ctx, st, g)
	if rs.as != nil {
		go purgeOAuth(ctx, st, logger)
		go rs.reloadKeys(ctx, logger)
		fmt.Fprintf(o.Status, "[OK] OAuth 2.1 authorization server at %s (scopes %s; users: `mcpguard users add`)\n", base, strings.Join(cfg.OAuth.DefaultScopes, " "))
	}
	for _, p := range cfg.Auth.Providers {
		fmt.Fprintf(o.Status, "[OK] Trusting tokens of identity provider %s (%s)\n", p.Name, p.Issuer)
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.Server.Path, obs.httpMiddleware(g.HTTPMiddleware(handler)))
	rs.mount(mux, cfg)
	if cfg.Metrics.Enabled {
		if cfg.Metrics.Addr == "" {
			mux.Handle("GET /metrics", g.RequirePrincipal("metrics", anyRole(rbac, cfg.Metrics.Roles), obs.metrics.Handler()))
		} else {
			stop, err := serveMetrics(cfg.Metrics.Addr, obs.metrics.Handler(), logger)
			if err != nil {
				return err
			}
			defer stop()
		}
	}
	if cfg.Admin.Enabled {
		h, err := adminHandler(cfg, st, g, logger)
		if err != nil {
			return err
		}
		mux.Handle("/admin/", h)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		guard.SecurityHeaders(w.Header())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", o.readiness)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		guard.SecurityHeaders(w.Header())
		http.Error(w, fmt.Sprintf("not found: the MCP endpoint is %s", cfg.Server.Path), http.StatusNotFound)
	})
	var root http.Handler = mux
	if hosts, check := hostAllowList(cfg, addr); check {
		root = netx.AllowHosts(hosts, mux)
	} else {
		fmt.Fprintf(o.Status, "[WARN] Listening on all interfaces without server.public_url or server.allowed_hosts: Host headers are not checked (DNS rebinding)\n")
	}
	srv := &http.Server{
		Handler:           tlsx.HSTS(root),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	url := scheme + "://" + addr + cfg.Server.Path
	fmt.Fprintf(o.Status, "Server ready on %s\n", url)
	if o.Ready != nil {
		o.Ready(url)
	}
	return netx.Serve(ctx, srv, ln)
}

// adminHandler builds the read-only admin page. Its session key is random
// per process: restarting mcpguard signs everyone out.
func adminHandler(cfg *config.Config, st store.Store, g *guard.Guard, logger *slog.Logger) (http.Handler, error) {
	key := make([]byte, admin.SessionKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("admin session key: %w", err)
	}
	inherits := map[string][]string{}
	for name, r := range cfg.Roles {
		inherits[name] = r.Inherits
	}
	return admin.New(admin.Options{
		Store: st, Authenticator: g.Authenticator, Authorizer: g.Authorizer,
		AllowedRoles: cfg.Admin.Roles, Inherits: inherits,
		SessionKey: key, Audit: g.Audit, Logger: logger,
	})
}

// buildGuard builds every stage but the audit sink from the configuration.
func buildGuard(ctx context.Context, cfg *config.Config, st store.Store, res config.Resolver, upstream func(kind, name string) string, logger *slog.Logger) (*guard.Guard, *apikey.Authenticator, *authz.RBAC, error) {
	var router authn.Router
	var keys *apikey.Authenticator
	if cfg.Auth.APIKeys.Enabled {
		keys = apikey.NewWithOptions(st, apikey.Options{RevocationRecheck: recheck(cfg.Auth.RevocationRecheck)})
		router.APIKeys = keys
	}
	if cfg.Auth.JWT.Enabled {
		j, err := buildJWT(cfg.Auth.JWT, cfg.Auth.RevocationRecheck, st, res)
		if err != nil {
			return nil, nil, nil, err
		}
		router.JWT = j
	}
	if router.APIKeys == nil && router.JWT == nil {
		return nil, nil, nil, errors.New("no authentication method is enabled: enable auth.api_keys or auth.jwt")
	}
	rbac, err := authz.NewRBAC(Policy(cfg))
	if err != nil {
		return nil, nil, nil, err
	}
	policies, err := LoadPolicies(cfg, upstream)
	if err != nil {
		return nil, nil, nil, err
	}
	g := &guard.Guard{
		Authenticator:  router,
		Authorizer:     policies,
		ArgumentFields: cfg.Audit.ArgumentFields,
		Logger:         logger,
		HTTP: guard.HTTPOptions{
			MaxBodyBytes:    cfg.Server.MaxBodyBytes,
			AllowedOrigins:  cfg.Server.AllowedOrigins,
			BodyReadTimeout: cfg.Server.ReadTimeout,
		},
	}
	if a := cfg.Auth.Anonymous; a.Enabled {
		g.HTTP.Anonymous = &guard.Principal{Subject: "anonymous", Issuer: "mcpguard", Method: guard.MethodAnonymous, Roles: a.Roles}
	}
	if rl := cfg.RateLimit; rl.Enabled {
		lim, err := ratelimit.New(limiterConfig(cfg))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("rate_limit: %w", err)
		}
		g.Limiter = lim
	}
	if lo := cfg.RateLimit.Lockout; lo.MaxFailures > 0 {
		lk, err := ratelimit.NewLockout(ratelimit.LockoutConfig{MaxFailures: lo.MaxFailures, Window: lo.Window, Duration: lo.Duration})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("rate_limit.lockout: %w", err)
		}
		g.Lockout = lk
	}
	return g, keys, rbac, nil
}

// Policy converts the configuration's roles, users and tool requirements.
func Policy(cfg *config.Config) authz.Policy {
	p := authz.Policy{Roles: map[string]authz.Role{}, Users: cfg.Users, Tools: map[string]authz.Requirement{}}
	for name, r := range cfg.Roles {
		p.Roles[name] = authz.Role{Inherits: r.Inherits, Permissions: r.Permissions}
	}
	for name, t := range cfg.ToolPermissions {
		p.Tools[name] = authz.Requirement{Roles: t.Roles, Scopes: t.Scopes}
	}
	return p
}

// recheck maps the configured interval to the authenticators' convention,
// where zero means the default and a negative value means every request.
func recheck(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func buildJWT(c config.JWTConfig, rc time.Duration, st store.Store, res config.Resolver) (*jwt.Authenticator, error) {
	jc := jwt.Config{
		Issuer:                 c.Issuer,
		Audiences:              c.Audiences,
		Leeway:                 c.Leeway,
		JWKSURL:                c.JWKSURL,
		JWKSCacheTTL:           c.JWKSCacheTTL,
		JWKSMinRefreshInterval: c.JWKSMinRefreshInterval,
		RolesClaim:             c.Claims.Roles,
		ScopeClaims:            c.Claims.Scopes,
		PermissionsClaim:       c.Claims.Permissions,
		Revocations:            st,
	}
	for i, k := range c.Keys {
		key := jwt.Key{ID: k.KID, Algorithm: k.Alg}
		if strings.HasPrefix(k.Alg, "HS") {
			secret, err := k.Secret.ResolveWith(res)
			if err != nil {
				return nil, fmt.Errorf("auth.jwt.keys[%d].secret: %w", i, err)
			}
			key.Key = secret
		} else {
			pemBytes, err := k.PublicKey.ResolveWith(res)
			if err != nil {
				return nil, fmt.Errorf("auth.jwt.keys[%d].public_key: %w", i, err)
			}
			pub, err := jwt.ParsePublicKeyPEM(pemBytes)
			if err != nil {
				return nil, fmt.Errorf("auth.jwt.keys[%d].public_key: %w", i, err)
			}
			key.Key = pub
		}
		jc.Keys = append(jc.Keys, key)
	}
	a, err := jwt.New(jc)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt: %w", err)
	}
	return a, nil
}

// demoIdentities are the demo's users, each named after its role.
var demoIdentities = []string{"admin", "developer", "viewer"}

// seedDemoIdentities creates the demo identities on the first run and
// prints their keys, once.
func seedDemoIdentities(ctx context.Context, st store.Store, out io.Writer) error {
	existing, err := st.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, k := range existing {
		have[k.Name] = true
	}
	var created []string
	keys := map[string]string{}
	for _, name := range demoIdentities {
		if have[name] {
			continue
		}
		key, _, err := apikey.Create(ctx, st, apikey.CreateOptions{Name: name, Roles: []string{name}})
		if err != nil {
			return fmt.Errorf("demo identity %s: %w", name, err)
		}
		created = append(created, name)
		keys[name] = key
	}
	if err := seedDemoUsers(ctx, st, out); err != nil {
		return err
	}
	if len(created) == 0 {
		fmt.Fprintln(out, "[OK] Demo identities exist (their keys were shown when they were created; make more with `mcpguard keys create`)")
		return nil
	}
	sort.Strings(created)
	fmt.Fprintln(out, "Demo identities created. Their API keys are shown once, now; only hashes are stored:")
	for _, name := range demoIdentities {
		if k, ok := keys[name]; ok {
			fmt.Fprintf(out, "  %-10s %s\n", name, k)
		}
	}
	return nil
}

// seedDemoUsers creates the demo's people, who sign in to the built-in
// authorization server, on the first run, and prints their passwords once.
func seedDemoUsers(ctx context.Context, st store.Store, out io.Writer) error {
	passwords := map[string]string{}
	for _, name := range demoIdentities {
		if _, err := st.GetUser(ctx, name); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		pw := randomPassword()
		hash, err := password.Hash(pw)
		if err != nil {
			return err
		}
		if err := st.CreateUser(ctx, &store.User{Name: name, PasswordHash: hash, Roles: []string{name}}); err != nil {
			return fmt.Errorf("demo user %s: %w", name, err)
		}
		passwords[name] = pw
	}
	if len(passwords) == 0 {
		return nil
	}
	fmt.Fprintln(out, "Demo users for OAuth sign-in created. Their passwords are shown once, now; only argon2id hashes are stored:")
	for _, name := range demoIdentities {
		if pw, ok := passwords[name]; ok {
			fmt.Fprintf(out, "  user %-10s password %s\n", name, pw)
		}
	}
	return nil
}

// randomPassword returns 128 random bits, base64url-encoded.
func randomPassword() string {
	b := make([]byte, 16)
	rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// purgeOAuth deletes expired authorization codes and refresh tokens every
// ten minutes until ctx is done, so that the tables stay bounded.
func purgeOAuth(ctx context.Context, st store.Store, logger *slog.Logger) {
	tick.Now(ctx, 10*time.Minute, func() {
		if n, err := st.PurgeExpiredOAuth(ctx, time.Now()); err != nil && ctx.Err() == nil {
			logger.Warn("oauth: purging expired codes and tokens failed", "err", err)
		} else if n > 0 {
			logger.Info("oauth: purged expired codes and refresh tokens", "rows", n)
		}
	})
}
