package config

import (
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mcpguard/mcpguard/internal/netx"
)

// UpstreamConfig is one existing MCP server that mcpguard fronts in gateway
// mode (package proxy): a stdio command or a streamable-HTTP URL. File
// only, under "upstreams:".
type UpstreamConfig struct {
	// Name identifies the upstream, and is the default prefix of its tool
	// and prompt names (github → github__create_issue).
	Name string `yaml:"name"`
	// Command is the program and its arguments of a stdio upstream.
	Command []string `yaml:"command"`
	// Env sets environment variables of a stdio upstream. A value that is
	// a reference (env:NAME, file:/path, secret:NAME) is resolved at start;
	// any other value is passed as it is. The upstream gets only these and
	// a minimal environment (PATH, HOME, LANG...), never mcpguard's own.
	Env map[string]string `yaml:"env"`
	// URL is the streamable-HTTP endpoint of a remote upstream.
	URL string `yaml:"url"`
	// Headers are sent to a remote upstream on every request; values are
	// references (env:NAME, file:/path, secret:NAME), since they usually
	// hold the upstream's credentials. The caller's credential is never
	// forwarded.
	Headers map[string]SecretRef `yaml:"headers"`
	// UserEnv sets, for each caller's own process (isolation per-user),
	// environment variables from references in which {user} stands for
	// the caller's name: GITHUB_TOKEN: "secret:github-token.{user}" gives
	// alice's process the secret github-token.alice (`mcpguard secrets
	// set github-token.alice`). A caller without one is refused with a
	// message saying so.
	UserEnv map[string]string `yaml:"user_env"`
	// UserHeaders is UserEnv for a url upstream: headers sent only on the
	// caller's own connection.
	UserHeaders map[string]string `yaml:"user_headers"`
	// Isolation is "shared" (default: one process for every caller) or
	// "per-user" (one process per authenticated identity).
	Isolation string `yaml:"isolation"`
	// Timeout bounds connecting and every forwarded request. Default 60s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxResponseBytes bounds every message from the upstream. Default
	// 4 MiB.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// Namespace is the prefix of the upstream's tool and prompt names.
	// Default: the upstream's name; false: names pass through unchanged.
	Namespace string `yaml:"namespace"`
	// MaxConnections bounds a per-user upstream's processes (one per
	// identity); beyond it the least recently used idle one is stopped, or
	// the caller refused. Default 64.
	MaxConnections int `yaml:"max_connections"`
	// Pinning is what a changed tool definition does: "block" (default;
	// hidden and refused until `mcpguard tools pin`), "flag" (allowed,
	// audited) or "off".
	Pinning string `yaml:"pinning"`
}

// Prefix returns the upstream's name prefix: Namespace, the name when it
// is empty, and "" when it is "false".
func (u *UpstreamConfig) Prefix() string {
	switch u.Namespace {
	case "":
		return u.Name
	case "false":
		return ""
	}
	return u.Namespace
}

// GatewayConfig configures gateway mode as a whole.
type GatewayConfig struct {
	// Separator joins an upstream's prefix and a tool or prompt name.
	// Default "__".
	Separator string `yaml:"separator"`
	// IdleTimeout closes per-user upstream processes unused for this
	// long. Default 10m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// AnonymousConfig admits requests without credentials as one fixed
// identity. It is meant for loopback-only test profiles (the MCP
// conformance suite's client sends no credentials) and is refused unless
// server.addr is a loopback address.
type AnonymousConfig struct {
	// Enabled turns anonymous access on. Default false.
	Enabled bool `yaml:"enabled"`
	// Roles are the anonymous identity's roles: grant the least needed.
	Roles []string `yaml:"roles"`
}

var (
	upstreamNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
	namespaceRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	headerNameRE   = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

func (v *validator) gateway(c *Config) {
	gp := path{}.field("gateway")
	if strings.ContainsAny(c.Gateway.Separator, " \t\r\n") || len(c.Gateway.Separator) > 8 {
		v.add(gp.field("separator"), "must be at most 8 characters without spaces")
	}
	v.positiveDuration(gp.field("idle_timeout"), c.Gateway.IdleTimeout)
	names := map[string]int{}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		p := path{}.field("upstreams").index(i)
		if !upstreamNameRE.MatchString(u.Name) {
			v.add(p.field("name"), "must be 1-63 letters, digits, '-' or '_', starting with a letter or digit")
		} else if first, dup := names[u.Name]; dup {
			v.add(p.field("name"), "duplicate upstream name %q (also upstreams[%d])", u.Name, first)
		} else {
			names[u.Name] = i
		}
		if (len(u.Command) == 0) == (u.URL == "") {
			v.add(p, "set exactly one of command (a stdio server) and url (a streamable-HTTP server)")
		}
		if len(u.Command) > 0 && u.Command[0] == "" {
			v.add(p.field("command").index(0), "must name a program")
		}
		if u.URL != "" {
			pu, err := url.Parse(u.URL)
			switch {
			case err != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http"):
				v.add(p.field("url"), "must be an https URL such as https://mcp.example.com/mcp")
			case pu.User != nil:
				v.add(p.field("url"), "must not contain credentials; use headers with a reference")
			case pu.Scheme == "http" && !netx.IsLoopbackHost(pu.Host):
				v.add(p.field("url"), "must be https (http only on a loopback host)")
			}
		}
		if len(u.Env) > 0 && u.URL != "" {
			v.add(p.field("env"), "only applies to a command upstream")
		}
		for k := range u.Env {
			if !envName.MatchString(k) {
				v.add(p.field("env").key(k), "is not a valid environment variable name")
			}
		}
		if len(u.UserEnv) > 0 && u.URL != "" {
			v.add(p.field("user_env"), "only applies to a command upstream; use user_headers")
		}
		if len(u.UserHeaders) > 0 && u.URL == "" {
			v.add(p.field("user_headers"), "only applies to a url upstream; use user_env")
		}
		for field, m := range map[string]map[string]string{"user_env": u.UserEnv, "user_headers": u.UserHeaders} {
			if len(m) > 0 && u.Isolation != "per-user" {
				v.add(p.field(field), "needs isolation: per-user (one user's credential must never serve another)")
			}
			for k, tpl := range m {
				if !strings.Contains(tpl, "{user}") || !SecretRef(strings.ReplaceAll(tpl, "{user}", "u")).Valid() {
					v.add(p.field(field).key(k), "must be a reference containing {user}, such as secret:token.{user}")
				}
			}
		}
		if len(u.Headers) > 0 && u.URL == "" {
			v.add(p.field("headers"), "only applies to a url upstream")
		}
		for k, ref := range u.Headers {
			if !headerNameRE.MatchString(k) {
				v.add(p.field("headers").key(k), "is not a valid header name")
			}
			if !ref.Valid() {
				v.add(p.field("headers").key(k), "%s", inlineSecretMsg(ref))
			}
		}
		switch u.Isolation {
		case "", "shared", "per-user":
		default:
			v.add(p.field("isolation"), "must be shared or per-user")
		}
		switch u.Pinning {
		case "", "block", "flag", "off":
		default:
			v.add(p.field("pinning"), "must be block, flag or off")
		}
		if u.Timeout < 0 {
			v.add(p.field("timeout"), "must not be negative")
		}
		if u.MaxResponseBytes < 0 {
			v.add(p.field("max_response_bytes"), "must not be negative")
		}
		if u.MaxConnections < 0 {
			v.add(p.field("max_connections"), "must not be negative")
		}
		if u.Namespace != "" && u.Namespace != "false" && !namespaceRE.MatchString(u.Namespace) {
			v.add(p.field("namespace"), "must be false or 1-63 letters, digits, '.', '-' or '_'")
		}
	}
}

func (v *validator) anonymous(c *Config) {
	a := &c.Auth.Anonymous
	if !a.Enabled {
		return
	}
	p := path{}.field("auth").field("anonymous")
	v.roleList(p.field("roles"), a.Roles, c.Roles)
	if !LoopbackAddr(c.Server.Addr) {
		v.add(path{}.field("server").field("addr"), "must be a loopback address (127.0.0.1, [::1], localhost) when auth.anonymous.enabled is true: anonymous access is for local test profiles only")
	}
}

// LoopbackAddr reports whether a host:port listens only on loopback.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	return netx.IsLoopbackHost(host)
}
