package config

import (
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// supportedAlgs are the JWT algorithms a static key may be pinned to.
var supportedAlgs = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// permissionVerbs is the verb each permission kind uses.
var permissionVerbs = map[string]string{
	"tools":     "call",
	"resources": "read",
	"prompts":   "get",
}

// validator collects problems found in a decoded configuration.
type validator struct {
	problems []problem
}

func (v *validator) add(p path, format string, args ...any) {
	v.problems = append(v.problems, problem{path: p, msg: fmt.Sprintf(format, args...)})
}

// validate checks the semantic rules of c and returns every problem.
func validate(c *Config) []problem {
	v := &validator{}
	v.server(path{}.field("server"), &c.Server)
	for i, id := range c.Server.TLS.Identities {
		v.knownRoles(path{}.field("server").field("tls").field("identities").index(i).field("roles"), id.Roles, c.Roles)
	}
	if c.DataDir == "" {
		v.add(path{}.field("data_dir"), "must not be empty")
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		v.add(path{}.field("store"), "must be empty (SQLite in data_dir) or a postgres:// URL")
	}
	rp := path{}.field("redis")
	if u := c.Redis.URL; u != "" && !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") && !strings.HasPrefix(u, "unix://") {
		rp := rp.field("url")
		v.add(rp, "must be a redis://, rediss:// or unix:// URL")
	}
	if f := c.Redis.OnFailure; f != "" && f != "closed" && f != "local" {
		v.add(rp.field("on_failure"), "must be closed or local")
	}
	v.auth(path{}.field("auth"), &c.Auth)
	v.roles(path{}.field("roles"), c.Roles)
	v.users(path{}.field("users"), c.Users, c.Roles)
	v.toolPermissions(path{}.field("tool_permissions"), c.ToolPermissions, c.Roles)
	v.rateLimit(path{}.field("rate_limit"), &c.RateLimit)
	v.audit(path{}.field("audit"), &c.Audit)
	v.observability(c)
	v.oauth(path{}.field("oauth"), &c.OAuth, c.Roles)
	sp := path{}.field("secrets")
	if c.Secrets.MasterKey == "" || !c.Secrets.MasterKey.Valid() || strings.HasPrefix(string(c.Secrets.MasterKey), "secret:") {
		v.add(sp.field("master_key"), "must be env:NAME or file:/path (not inline, not secret:)")
	}
	for i, k := range c.Secrets.PreviousMasterKeys {
		if !k.Valid() || strings.HasPrefix(string(k), "secret:") {
			v.add(sp.field("previous_master_keys").index(i), "must be env:NAME or file:/path (not inline, not secret:)")
		}
	}
	v.providers(path{}.field("auth").field("providers"), c.Auth.Providers, c.Roles)
	pp := path{}.field("policies")
	if c.Policies.Dir == "" {
		v.add(pp.field("dir"), "must not be empty")
	}
	if _, err := time.LoadLocation(c.Policies.TimeZone); err != nil || c.Policies.TimeZone == "" {
		v.add(pp.field("time_zone"), "unknown time zone %q (use an IANA name such as UTC or Europe/Paris)", c.Policies.TimeZone)
	}
	if c.Policies.ReloadInterval < 0 {
		v.add(pp.field("reload_interval"), "must not be negative")
	}
	v.gateway(c)
	v.anonymous(c)
	return v.problems
}

func (v *validator) positiveDuration(p path, d time.Duration) {
	if d <= 0 {
		v.add(p, "must be a positive duration such as 30s")
	}
}

func (v *validator) positive(p path, n int64) {
	if n <= 0 {
		v.add(p, "must be a positive integer")
	}
}

func (v *validator) nonNegative(p path, n int) {
	if n < 0 {
		v.add(p, "must not be negative")
	}
}

func (v *validator) server(p path, s *ServerConfig) {
	if msg := checkAddr(s.Addr); msg != "" {
		v.add(p.field("addr"), "%s", msg)
	}
	if !strings.HasPrefix(s.Path, "/") {
		v.add(p.field("path"), "must start with /")
	}
	for i, o := range s.AllowedOrigins {
		if !isOrigin(o) {
			v.add(p.field("allowed_origins").index(i), "must be an origin such as https://app.example.com (scheme://host[:port], nothing after)")
		}
	}
	v.positive(p.field("max_body_bytes"), s.MaxBodyBytes)
	v.positive(p.field("max_header_bytes"), int64(s.MaxHeaderBytes))
	v.positiveDuration(p.field("read_header_timeout"), s.ReadHeaderTimeout)
	v.positiveDuration(p.field("read_timeout"), s.ReadTimeout)
	v.positiveDuration(p.field("idle_timeout"), s.IdleTimeout)
	v.positiveDuration(p.field("session_timeout"), s.SessionTimeout)
	v.positiveDuration(p.field("session_ttl"), s.SessionTTL)
	v.positive(p.field("max_sessions_per_principal"), int64(s.MaxSessionsPerPrincipal))
	v.positive(p.field("max_connections"), int64(s.MaxConnections))
	v.positive(p.field("max_streams_per_principal"), int64(s.MaxStreamsPerPrincipal))
	v.tls(p.field("tls"), &s.TLS)
	if s.PublicURL != "" && !isOrigin(strings.TrimSuffix(s.PublicURL, "/")) {
		v.add(p.field("public_url"), "must be scheme://host[:port] such as https://mcp.example.com (no path)")
	}
}

func (v *validator) tls(p path, t *TLSConfig) {
	if (t.Cert == "") != (t.Key == "") {
		v.add(p, "set both cert and key (PEM files) to serve HTTPS")
	}
	if t.ClientCA != "" && !t.Enabled() {
		v.add(p.field("client_ca"), "mutual TLS needs HTTPS: set cert and key too")
	}
	switch t.ClientAuth {
	case "":
	case "mtls", "mtls+token", "either":
		if t.ClientCA == "" {
			v.add(p.field("client_auth"), "needs client_ca, the CAs client certificates are verified against")
		}
	default:
		v.add(p.field("client_auth"), "must be mtls, mtls+token or either")
	}
	v.positiveDuration(p.field("reload_interval"), t.ReloadInterval)
	for i, id := range t.Identities {
		n := 0
		for _, s := range []string{id.CommonName, id.DNSName, id.URI, id.Fingerprint} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.add(p.field("identities").index(i), "set exactly one of common_name, dns_name, uri, fingerprint")
		}
		if id.Fingerprint != "" && id.Subject == "" {
			v.add(p.field("identities").index(i).field("subject"), "a fingerprint identity needs a subject")
		}
	}
}

func (v *validator) oauth(p path, o *OAuthConfig, roles map[string]Role) {
	v.positiveDuration(p.field("access_token_ttl"), o.AccessTokenTTL)
	v.positiveDuration(p.field("refresh_token_ttl"), o.RefreshTokenTTL)
	if o.CodeTTL <= 0 || o.CodeTTL > time.Minute {
		v.add(p.field("code_ttl"), "must be a positive duration of at most 60s")
	}
	v.nonNegative(p.field("max_dynamic_clients"), o.MaxDynamicClients)
	v.positive(p.field("registrations_per_hour"), int64(o.RegistrationsPerHour))
	v.positive(p.field("login_max_failures"), int64(o.LoginMaxFailures))
	v.positiveDuration(p.field("login_lockout"), o.LoginLockout)
	if o.SessionKey != "" && !o.SessionKey.Valid() {
		v.add(p.field("session_key"), "%s", inlineSecretMsg(o.SessionKey))
	}
	if o.Enabled && len(o.Scopes) == 0 {
		v.add(p.field("scopes"), "at least one scope is required when oauth.enabled is true")
	}
	defaultScopes := maps.Equal(o.Scopes, Default().OAuth.Scopes)
	for _, name := range slices.Sorted(maps.Keys(o.Scopes)) {
		sp := p.field("scopes").key(name)
		if name == "" || strings.ContainsAny(name, " \"\\") || !isPrintableASCII(name) {
			v.add(sp, "a scope name must be printable ASCII without spaces, quotes or backslashes")
		}
		// The built-in scopes name the built-in roles; a file that replaces
		// the roles need not replace them too: a scope whose role does not
		// exist grants nothing.
		if _, ok := roles[o.Scopes[name].Role]; !ok && !defaultScopes {
			v.add(sp.field("role"), "%s", unknownRole(o.Scopes[name].Role, roles))
		}
	}
	for i, s := range o.DefaultScopes {
		if _, ok := o.Scopes[s]; !ok {
			v.add(p.field("default_scopes").index(i), "unknown scope %q (define it under oauth.scopes)", s)
		}
	}
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (v *validator) providers(p path, list []ProviderConfig, roles map[string]Role) {
	names := map[string]int{}
	issuers := map[string]int{}
	for i, pr := range list {
		pp := p.index(i)
		if pr.Name == "" {
			v.add(pp.field("name"), "required")
		} else if first, dup := names[pr.Name]; dup {
			v.add(pp.field("name"), "duplicate provider name %q (also providers[%d])", pr.Name, first)
		} else {
			names[pr.Name] = i
		}
		if pr.Issuer == "" {
			v.add(pp.field("issuer"), "required: the issuer identifier in the provider's tokens")
		} else if first, dup := issuers[pr.Issuer]; dup {
			v.add(pp.field("issuer"), "duplicate issuer (also providers[%d])", first)
		} else {
			issuers[pr.Issuer] = i
		}
		switch {
		case pr.JWKSURL == "" && pr.IntrospectionURL == "":
			v.add(pp, "set jwks_url (JWT access tokens) or introspection_url (opaque tokens)")
		case pr.JWKSURL != "" && pr.IntrospectionURL != "":
			v.add(pp, "set only one of jwks_url and introspection_url")
		case pr.JWKSURL != "":
			if msg := checkJWKSURL(pr.JWKSURL); msg != "" {
				v.add(pp.field("jwks_url"), "%s", msg)
			}
		default:
			if msg := checkJWKSURL(pr.IntrospectionURL); msg != "" {
				v.add(pp.field("introspection_url"), "%s", msg)
			}
			if pr.ClientID == "" {
				v.add(pp.field("client_id"), "required with introspection_url")
			}
			if pr.ClientSecret == "" {
				v.add(pp.field("client_secret"), "required with introspection_url; use env:NAME or file:/path")
			}
		}
		if pr.ClientSecret != "" && !pr.ClientSecret.Valid() {
			v.add(pp.field("client_secret"), "%s", inlineSecretMsg(pr.ClientSecret))
		}
		for i, aud := range pr.Audiences {
			if aud == "" {
				v.add(pp.field("audiences").index(i), "must not be empty")
			}
		}
		for _, group := range slices.Sorted(maps.Keys(pr.RoleMap)) {
			v.knownRoles(pp.field("role_map").key(group), pr.RoleMap[group], roles)
		}
	}
}

// checkAddr returns why addr is not a valid listen address, or "".
func checkAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port, such as 127.0.0.1:8080"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || (n == 0 && port != "0") {
		return "port must be a number from 0 to 65535"
	}
	if strings.ContainsAny(host, " /") {
		return "must be host:port, such as 127.0.0.1:8080"
	}
	return ""
}

// isOrigin reports whether o is a serialized origin: scheme://host[:port].
func isOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return false
	}
	return u.User == nil && u.Path == "" && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.Opaque == "" &&
		o == u.Scheme+"://"+u.Host
}

func (v *validator) auth(p path, a *AuthConfig) {
	if a.RevocationRecheck < 0 {
		v.add(p.field("revocation_recheck"), "must not be negative (0s checks the store on every request)")
	}
	j := &a.JWT
	jp := p.field("jwt")
	if !a.APIKeys.Enabled && !j.Enabled {
		v.add(p, "no authentication method enabled; set auth.api_keys.enabled or auth.jwt.enabled to true")
	}
	if j.Enabled {
		if j.Issuer == "" {
			v.add(jp.field("issuer"), "required when auth.jwt.enabled is true")
		}
		if len(j.Audiences) == 0 {
			v.add(jp.field("audiences"), "at least one audience is required when auth.jwt.enabled is true")
		}
		if len(j.Keys) == 0 && j.JWKSURL == "" {
			v.add(jp, "auth.jwt.enabled is true but neither keys nor jwks_url is set")
		}
	}
	for i, aud := range j.Audiences {
		if aud == "" {
			v.add(jp.field("audiences").index(i), "must not be empty")
		}
	}
	if j.Leeway < 0 {
		v.add(jp.field("leeway"), "must not be negative")
	}
	v.positiveDuration(jp.field("jwks_cache_ttl"), j.JWKSCacheTTL)
	v.positiveDuration(jp.field("jwks_min_refresh_interval"), j.JWKSMinRefreshInterval)
	if j.JWKSURL != "" {
		if msg := checkJWKSURL(j.JWKSURL); msg != "" {
			v.add(jp.field("jwks_url"), "%s", msg)
		}
	}
	kids := map[string]int{}
	for i, k := range j.Keys {
		kp := jp.field("keys").index(i)
		if first, dup := kids[k.KID]; dup {
			v.add(kp.field("kid"), "duplicate key ID %q (also used by keys[%d])", k.KID, first)
		} else {
			kids[k.KID] = i
		}
		v.jwtKey(kp, &k)
	}
	for i, s := range j.Claims.Scopes {
		if s == "" {
			v.add(jp.field("claims").field("scopes").index(i), "must not be empty")
		}
	}
}

// checkJWKSURL returns why u is not an acceptable JWKS URL, or "".
func checkJWKSURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "must be an absolute https:// URL"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if netx.IsLoopbackHost(u.Hostname()) {
			return ""
		}
		return "must use https (http is allowed only for a loopback host)"
	default:
		return "must be an absolute https:// URL"
	}
}

func (v *validator) jwtKey(p path, k *JWTKey) {
	if !slices.Contains(supportedAlgs, k.Alg) {
		if k.Alg == "" {
			v.add(p.field("alg"), "required; one of %s", strings.Join(supportedAlgs, ", "))
		} else {
			v.add(p.field("alg"), "unsupported algorithm %q; use one of %s", k.Alg, strings.Join(supportedAlgs, ", "))
		}
		// Still check that a secret is not inline.
		if k.Secret != "" && !k.Secret.Valid() {
			v.add(p.field("secret"), "%s", inlineSecretMsg(k.Secret))
		}
		return
	}
	hmac := strings.HasPrefix(k.Alg, "HS")
	switch {
	case k.Secret != "" && !k.Secret.Valid():
		// Refused whatever the algorithm: the value may be a real secret.
		v.add(p.field("secret"), "%s", inlineSecretMsg(k.Secret))
	case hmac && k.Secret == "":
		v.add(p.field("secret"), "required for alg %s; use env:NAME or file:/path", k.Alg)
	case !hmac && k.Secret != "":
		v.add(p.field("secret"), "not used with alg %s; give public_key instead", k.Alg)
	}
	switch {
	case k.PublicKey != "" && !k.PublicKey.Valid():
		v.add(p.field("public_key"), "must be a reference, env:NAME or file:/path (inline PEM is not supported)")
	case !hmac && k.PublicKey == "":
		v.add(p.field("public_key"), "required for alg %s; use file:/path or env:NAME holding a PEM public key", k.Alg)
	case hmac && k.PublicKey != "":
		v.add(p.field("public_key"), "not used with alg %s; give secret instead", k.Alg)
	}
}

// inlineSecretMsg explains why s is refused without repeating it.
func inlineSecretMsg(s SecretRef) string {
	if strings.HasPrefix(string(s), "env:") || strings.HasPrefix(string(s), "file:") {
		return "malformed reference; use env:NAME (a valid variable name) or file:/path"
	}
	return "inline secrets are not allowed; use env:NAME or file:/path"
}

// checkPermission returns why perm is not a valid permission pattern, or "".
func checkPermission(perm string) string {
	kind, rest, ok1 := strings.Cut(perm, ":")
	verb, target, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || kind == "" || verb == "" || target == "" {
		return fmt.Sprintf("permission %q must have the form <kind>:<verb>:<target>, such as tools:call:query", perm)
	}
	want, ok := permissionVerbs[kind]
	if !ok {
		return fmt.Sprintf("permission %q: kind must be tools, resources or prompts", perm)
	}
	if verb != want && !strings.Contains(verb, "*") {
		return fmt.Sprintf("permission %q: the verb for %s is %q", perm, kind, want)
	}
	return ""
}

func (v *validator) roles(p path, roles map[string]Role) {
	for _, name := range slices.Sorted(maps.Keys(roles)) {
		rp := p.key(name)
		if strings.TrimSpace(name) == "" {
			v.add(rp, "role name must not be empty")
		}
		r := roles[name]
		v.knownRoles(rp.field("inherits"), r.Inherits, roles)
		for i, perm := range r.Permissions {
			if msg := checkPermission(perm); msg != "" {
				v.add(rp.field("permissions").index(i), "%s", msg)
			}
		}
	}
	v.cycles(p, roles)
}

// cycles reports every inheritance cycle found by a depth-first search,
// at the inherits list of the role where the cycle is first entered.
func (v *validator) cycles(p path, roles map[string]Role) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		color[name] = grey
		stack = append(stack, name)
		for _, parent := range roles[name].Inherits {
			if _, ok := roles[parent]; !ok {
				continue // reported as unknown
			}
			switch color[parent] {
			case white:
				visit(parent)
			case grey:
				start := slices.Index(stack, parent)
				cycle := append(slices.Clone(stack[start:]), parent)
				v.add(p.key(parent).field("inherits"), "inheritance cycle: %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = black
	}
	for _, name := range slices.Sorted(maps.Keys(roles)) {
		if color[name] == white {
			visit(name)
		}
	}
}

// knownRoles reports every entry of list (at p) that names no defined role.
func (v *validator) knownRoles(p path, list []string, roles map[string]Role) {
	for i, r := range list {
		if _, ok := roles[r]; !ok {
			v.add(p.index(i), "%s", unknownRole(r, roles))
		}
	}
}

func unknownRole(name string, roles map[string]Role) string {
	defined := slices.Sorted(maps.Keys(roles))
	if len(defined) == 0 {
		return fmt.Sprintf("unknown role %q (no roles are defined)", name)
	}
	return fmt.Sprintf("unknown role %q (defined roles: %s)", name, strings.Join(defined, ", "))
}

func (v *validator) users(p path, users map[string][]string, roles map[string]Role) {
	for _, subject := range slices.Sorted(maps.Keys(users)) {
		up := p.key(subject)
		if strings.TrimSpace(subject) == "" {
			v.add(up, "subject must not be empty")
		}
		v.knownRoles(up, users[subject], roles)
	}
}

func (v *validator) toolPermissions(p path, tools map[string]ToolRequirement, roles map[string]Role) {
	for _, tool := range slices.Sorted(maps.Keys(tools)) {
		tp := p.key(tool)
		if strings.TrimSpace(tool) == "" {
			v.add(tp, "tool name must not be empty")
		}
		req := tools[tool]
		v.knownRoles(tp.field("roles"), req.Roles, roles)
		for i, s := range req.Scopes {
			if strings.TrimSpace(s) == "" {
				v.add(tp.field("scopes").index(i), "must not be empty")
			}
		}
	}
}

func (v *validator) rateLimit(p path, r *RateLimitConfig) {
	if r.Enabled {
		v.positive(p.field("requests_per_minute"), int64(r.RequestsPerMinute))
	} else {
		v.nonNegative(p.field("requests_per_minute"), r.RequestsPerMinute)
	}
	v.nonNegative(p.field("burst"), r.Burst)
	v.nonNegative(p.field("per_key_requests_per_minute"), r.PerKeyRequestsPerMinute)
	for _, tool := range slices.Sorted(maps.Keys(r.Tools)) {
		tp := p.field("tools").key(tool)
		if strings.TrimSpace(tool) == "" {
			v.add(tp, "tool name must not be empty")
		}
		v.positive(tp.field("requests_per_minute"), int64(r.Tools[tool].RequestsPerMinute))
		v.nonNegative(tp.field("burst"), r.Tools[tool].Burst)
	}
	lp := p.field("lockout")
	v.nonNegative(lp.field("max_failures"), r.Lockout.MaxFailures)
	v.positiveDuration(lp.field("window"), r.Lockout.Window)
	v.positiveDuration(lp.field("duration"), r.Lockout.Duration)
}

func (v *validator) audit(p path, a *AuditConfig) {
	if a.Log == "" {
		v.add(p.field("log"), `must not be empty (use "-" for stderr)`)
	}
	if a.HMACKey != "" && !a.HMACKey.Valid() {
		v.add(p.field("hmac_key"), "%s", inlineSecretMsg(a.HMACKey))
	}
	for i, k := range a.PreviousHMACKeys {
		if !k.Valid() {
			v.add(p.field("previous_hmac_keys").index(i), "%s", inlineSecretMsg(k))
		}
	}
	v.positiveDuration(p.field("flush_interval"), a.FlushInterval)
	v.positive(p.field("checkpoint_every"), int64(a.CheckpointEvery))
	if a.MinFreeBytes < 0 {
		v.add(p.field("min_free_bytes"), "must not be negative (0 turns the reserve off)")
	}
	if a.MaxBytes < 0 {
		v.add(p.field("max_bytes"), "must not be negative (0 turns size rotation off)")
	}
	if a.MaxAge < 0 {
		v.add(p.field("max_age"), "must not be negative (0 turns age rotation off)")
	}
	for i, f := range a.ArgumentFields {
		if strings.TrimSpace(f) == "" {
			v.add(p.field("argument_fields").index(i), "must not be empty")
		}
	}
}

func (v *validator) observability(c *Config) {
	if c.Metrics.Enabled {
		mp := path{}.field("metrics")
		if c.Metrics.Addr != "" {
			if _, _, err := net.SplitHostPort(c.Metrics.Addr); err != nil {
				v.add(mp.field("addr"), "must be host:port")
			}
		} else {
			v.roleList(mp.field("roles"), c.Metrics.Roles, c.Roles)
		}
	}
	if c.Tracing.Enabled && c.Tracing.File == "" {
		v.add(path{}.field("tracing").field("file"), `is required when tracing is enabled (use "-" for stderr)`)
	}
	if c.Admin.Enabled {
		v.roleList(path{}.field("admin").field("roles"), c.Admin.Roles, c.Roles)
	}
}

// roleList checks a non-empty list of defined roles. The default, [admin],
// is accepted without an admin role defined: the feature is then open to
// no one, which is safe, and a file that replaces the roles need not repeat
// the setting.
func (v *validator) roleList(p path, list []string, roles map[string]Role) {
	if _, ok := roles["admin"]; !ok && len(list) == 1 && list[0] == "admin" {
		return
	}
	if len(list) == 0 {
		v.add(p, "must name at least one role")
	}
	v.knownRoles(p, list, roles)
}
