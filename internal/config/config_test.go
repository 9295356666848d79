package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// envMap returns an env lookup function over m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaultIsValidAndComplete(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("", nil, nil)
	if err != nil {
		t.Fatalf("Parse(empty) = %v", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("Parse(empty) differs from Default()")
	}
	if got := slices.Sorted(maps.Keys(cfg.Roles)); !slices.Equal(got, []string{"admin", "developer", "viewer"}) {
		t.Errorf("default roles = %v", got)
	}
	if got := cfg.Roles["admin"].Inherits; !slices.Equal(got, []string{"developer"}) {
		t.Errorf("admin inherits %v", got)
	}
	if got := cfg.Roles["developer"].Inherits; !slices.Equal(got, []string{"viewer"}) {
		t.Errorf("developer inherits %v", got)
	}
	want := map[string]string{
		"delete_users": "admin", "drop_table": "admin", "execute_sql": "developer",
		"query": "viewer", "list_tables": "viewer", "describe_table": "viewer",
	}
	if len(cfg.ToolPermissions) != len(want) {
		t.Errorf("default tool_permissions = %v", cfg.ToolPermissions)
	}
	for tool, role := range want {
		if got := cfg.ToolPermissions[tool].Roles; !slices.Equal(got, []string{role}) {
			t.Errorf("tool_permissions[%s].roles = %v, want [%s]", tool, got, role)
		}
	}
	if cfg.Server.Addr != "127.0.0.1:8080" || cfg.Server.MaxBodyBytes != 1<<20 || cfg.Server.SessionTimeout != 30*time.Minute {
		t.Errorf("unexpected server defaults %+v", cfg.Server)
	}
	if !cfg.Auth.APIKeys.Enabled || cfg.Auth.JWT.Enabled {
		t.Errorf("auth defaults: api_keys %v jwt %v", cfg.Auth.APIKeys.Enabled, cfg.Auth.JWT.Enabled)
	}
}

func TestDefaultReturnsFreshValue(t *testing.T) {
	t.Parallel()
	a := Default()
	a.Roles["viewer"].Permissions[0] = "changed"
	a.Server.AllowedOrigins = append(a.Server.AllowedOrigins, "https://x.example")
	a.Auth.JWT.Claims.Scopes[0] = "changed"
	if b := Default(); b.Roles["viewer"].Permissions[0] != "tools:call:list_tables" ||
		len(b.Server.AllowedOrigins) != 0 || b.Auth.JWT.Claims.Scopes[0] != "scope" {
		t.Error("Default() shares state between calls")
	}
}

func TestExampleIsValid(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("example.yaml", Example, nil)
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	for i, k := range cfg.Auth.JWT.Keys {
		if k.Secret != "" && !k.Secret.Valid() {
			t.Errorf("keys[%d].secret is not a reference", i)
		}
		if k.PublicKey != "" && !k.PublicKey.Valid() {
			t.Errorf("keys[%d].public_key is not a reference", i)
		}
	}
	// Apart from the illustrative JWT settings and users, the example
	// documents exactly the defaults; this catches drift between the two.
	if len(cfg.Auth.JWT.Keys) != 2 || cfg.Users["alice@example.com"] == nil {
		t.Fatalf("example lost its JWT keys or users: %+v %+v", cfg.Auth.JWT.Keys, cfg.Users)
	}
	cfg.Auth.JWT.Issuer, cfg.Auth.JWT.Audiences, cfg.Auth.JWT.Keys = "", []string{}, []JWTKey{}
	cfg.Users = map[string][]string{}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("example.yaml does not show the defaults:\n got %+v\nwant %+v", cfg, Default())
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, Example, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("server:\n  path: mcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(good); err != nil {
		t.Errorf("Check(example) = %v", err)
	}
	err := Check(bad)
	if want := bad + ":2: server.path: must start with /"; err == nil || err.Error() != want {
		t.Errorf("Check(bad) = %v, want %s", err, want)
	}
	err = Check(filepath.Join(dir, "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check(missing) = %v", err)
	}
}

func TestLoadAppliesProcessEnvironment(t *testing.T) {
	// Not parallel: uses t.Setenv.
	t.Setenv("MCPGUARD_SERVER_ADDR", "127.0.0.1:9999")
	file := filepath.Join(t.TempDir(), "mcpguard.yaml")
	if err := os.WriteFile(file, []byte("server:\n  addr: 127.0.0.1:7000\n  path: /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:9999" || cfg.Server.Path != "/x" {
		t.Errorf("Load: addr %q path %q", cfg.Server.Addr, cfg.Server.Path)
	}
	cfg, err = Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:9999" || cfg.Server.Path != "/mcp" {
		t.Errorf(`Load(""): addr %q path %q`, cfg.Server.Addr, cfg.Server.Path)
	}
}

// TestErrors checks that each problem is reported, alone, with the exact
// file, line, field and message.
func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"rpm zero", "rate_limit:\n  requests_per_minute: 0\n",
			"mcpguard.yaml:2: rate_limit.requests_per_minute: must be a positive integer"},
		{"rpm not integer", "server:\n  addr: 127.0.0.1:1\nrate_limit:\n  requests_per_minute: abc\n",
			"mcpguard.yaml:4: rate_limit.requests_per_minute: must be an integer"},
		{"rpm float", "rate_limit:\n  requests_per_minute: 1.5\n",
			"mcpguard.yaml:2: rate_limit.requests_per_minute: must be an integer"},
		{"negative burst", "rate_limit:\n  burst: -1\n",
			"mcpguard.yaml:2: rate_limit.burst: must not be negative"},
		{"negative per key", "rate_limit:\n  per_key_requests_per_minute: -3\n",
			"mcpguard.yaml:2: rate_limit.per_key_requests_per_minute: must not be negative"},
		{"tool rpm zero", "rate_limit:\n  tools:\n    query: {burst: 1}\n",
			"mcpguard.yaml:3: rate_limit.tools.query.requests_per_minute: must be a positive integer"},
		{"lockout window", "rate_limit:\n  lockout:\n    window: 0s\n",
			"mcpguard.yaml:3: rate_limit.lockout.window: must be a positive duration such as 30s"},
		{"bool type", "rate_limit:\n  enabled: yes please\n",
			"mcpguard.yaml:2: rate_limit.enabled: must be a boolean (true or false)"},
		{"bad addr", "server:\n  addr: localhost\n",
			"mcpguard.yaml:2: server.addr: must be host:port, such as 127.0.0.1:8080"},
		{"bad port", "server:\n  addr: localhost:http\n",
			"mcpguard.yaml:2: server.addr: port must be a number from 0 to 65535"},
		{"path", "server:\n  path: mcp\n",
			"mcpguard.yaml:2: server.path: must start with /"},
		{"origin with path", "server:\n  allowed_origins:\n    - https://ok.example.com\n    - https://app.example.com/\n",
			"mcpguard.yaml:4: server.allowed_origins[1]: must be an origin such as https://app.example.com (scheme://host[:port], nothing after)"},
		{"negative duration", "server:\n  read_timeout: -5s\n",
			"mcpguard.yaml:2: server.read_timeout: must be a positive duration such as 30s"},
		{"duration without unit", "server:\n  idle_timeout: 30\n",
			"mcpguard.yaml:2: server.idle_timeout: must be a duration such as 30s or 5m"},
		{"zero body", "server:\n  max_body_bytes: 0\n",
			"mcpguard.yaml:2: server.max_body_bytes: must be a positive integer"},
		{"list expected", "server:\n  allowed_origins: https://a.example.com\n",
			"mcpguard.yaml:2: server.allowed_origins: must be a list"},
		{"mapping expected", "server: 8080\n",
			"mcpguard.yaml:1: server: must be a mapping"},
		{"string expected", "data_dir: [a, b]\n",
			"mcpguard.yaml:1: data_dir: must be a string"},
		{"empty data_dir", "data_dir: \"\"\n",
			"mcpguard.yaml:1: data_dir: must not be empty"},
		{"unknown field", "server:\n  addr: 127.0.0.1:8080\n  adress: x\n",
			"mcpguard.yaml:3: server.adress: unknown field (valid fields here: addr, path, allowed_origins, max_body_bytes, max_header_bytes, read_header_timeout, read_timeout, idle_timeout, session_timeout, public_url, tls, session_ttl, max_sessions_per_principal, max_connections, allowed_hosts, max_streams_per_principal)"},
		{"unknown top-level field", "# comment\n\nlogging: debug\n",
			"mcpguard.yaml:3: logging: unknown field (valid fields here: server, data_dir, store, redis, database, auth, roles, users, tool_permissions, rate_limit, audit, metrics, tracing, admin, oauth, secrets, policies, gateway, upstreams)"},
		{"unknown field in flow mapping", "roles:\n  viewer: {permissions: [\"tools:call:query\"], inherit: []}\ntool_permissions: {}\n",
			"mcpguard.yaml:2: roles.viewer.inherit: unknown field (valid fields here: inherits, permissions)"},
		{"unknown time zone", "policies:\n  time_zone: Mars/Olympus\n",
			`mcpguard.yaml:2: policies.time_zone: unknown time zone "Mars/Olympus" (use an IANA name such as UTC or Europe/Paris)`},
		{"duplicate key", "audit:\n  log: a.log\n  log: b.log\n",
			"mcpguard.yaml:3: audit.log: duplicate key (first set on line 2)"},
		{"tab indentation", "server:\n\taddr: 127.0.0.1:8080\n",
			"mcpguard.yaml:2: invalid YAML: found character that cannot start any token (tabs are not allowed in YAML indentation; use spaces)"},
		{"unclosed flow", "audit:\n  argument_fields: [a, b\n",
			"mcpguard.yaml:2: invalid YAML: did not find expected ',' or ']'"},
		{"bad indentation", "audit:\n  log: x\n bad: 1\n",
			"mcpguard.yaml:3: invalid YAML: did not find expected key"},
		{"two documents", "audit:\n  log: a.log\n---\naudit:\n  log: b.log\n",
			"mcpguard.yaml:3: only one YAML document is allowed"},
		{"top level list", "- a\n- b\n",
			"mcpguard.yaml:1: the top level must be a mapping of settings"},
		{"anchor on unknown field", "base: &b {log: x}\n",
			"mcpguard.yaml:1: base: unknown field (valid fields here: server, data_dir, store, redis, database, auth, roles, users, tool_permissions, rate_limit, audit, metrics, tracing, admin, oauth, secrets, policies, gateway, upstreams)"},
		{"merge key refused", "audit:\n  <<: {log: x}\n",
			"mcpguard.yaml:2: audit: merge keys (<<) are not supported"},
		{"empty audit log", "audit:\n  log: \"\"\n",
			`mcpguard.yaml:2: audit.log: must not be empty (use "-" for stderr)`},
		{"no auth", "auth:\n  api_keys: {enabled: false}\n",
			"mcpguard.yaml:1: auth: no authentication method enabled; set auth.api_keys.enabled or auth.jwt.enabled to true"},
		{"jwks http remote", "auth:\n  jwt:\n    jwks_url: http://idp.example.com/jwks\n",
			"mcpguard.yaml:3: auth.jwt.jwks_url: must use https (http is allowed only for a loopback host)"},
		{"jwks relative", "auth:\n  jwt:\n    jwks_url: /jwks\n",
			"mcpguard.yaml:3: auth.jwt.jwks_url: must be an absolute https:// URL"},
		{"unsupported alg", "auth:\n  jwt:\n    keys:\n      - kid: a\n        alg: none\n        secret: env:X\n",
			`mcpguard.yaml:5: auth.jwt.keys[0].alg: unsupported algorithm "none"; use one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA`},
		{"hs without secret", "auth:\n  jwt:\n    keys:\n      - {kid: a, alg: HS512}\n",
			"mcpguard.yaml:4: auth.jwt.keys[0].secret: required for alg HS512; use env:NAME or file:/path"},
		{"rs without public key", "auth:\n  jwt:\n    keys:\n      - kid: a\n        alg: ES256\n",
			"mcpguard.yaml:4: auth.jwt.keys[0].public_key: required for alg ES256; use file:/path or env:NAME holding a PEM public key"},
		{"rs with secret", "auth:\n  jwt:\n    keys:\n      - kid: a\n        alg: EdDSA\n        public_key: file:/k.pem\n        secret: env:S\n",
			"mcpguard.yaml:7: auth.jwt.keys[0].secret: not used with alg EdDSA; give public_key instead"},
		{"inline public key", "auth:\n  jwt:\n    keys:\n      - kid: a\n        alg: RS256\n        public_key: \"-----BEGIN PUBLIC KEY-----\"\n",
			"mcpguard.yaml:6: auth.jwt.keys[0].public_key: must be a reference, env:NAME or file:/path (inline PEM is not supported)"},
		{"inline secret", "auth:\n  jwt:\n    keys:\n      - kid: k1\n        alg: HS256\n        secret: hunter2\n",
			"mcpguard.yaml:6: auth.jwt.keys[0].secret: inline secrets are not allowed; use env:NAME or file:/path"},
		{"duplicate kid", "auth:\n  jwt:\n    keys:\n      - {kid: a, alg: HS256, secret: env:A}\n      - {kid: a, alg: HS256, secret: env:B}\n",
			`mcpguard.yaml:5: auth.jwt.keys[1].kid: duplicate key ID "a" (also used by keys[0])`},
		{"bad permission form", "roles:\n  viewer:\n    permissions: [\"tools:call:query\", \"query\"]\ntool_permissions: {}\n",
			`mcpguard.yaml:3: roles.viewer.permissions[1]: permission "query" must have the form <kind>:<verb>:<target>, such as tools:call:query`},
		{"bad permission kind", "roles:\n  viewer:\n    permissions:\n      - tool:call:query\ntool_permissions: {}\n",
			`mcpguard.yaml:4: roles.viewer.permissions[0]: permission "tool:call:query": kind must be tools, resources or prompts`},
		{"bad permission verb", "roles:\n  viewer:\n    permissions:\n      - resources:get:*\ntool_permissions: {}\n",
			`mcpguard.yaml:4: roles.viewer.permissions[0]: permission "resources:get:*": the verb for resources is "read"`},
		{"unknown inherited role", "roles:\n  viewer: {}\n  developer: {inherits: [viewer]}\n  admin:\n    inherits: [dev]\n",
			`mcpguard.yaml:5: roles.admin.inherits[0]: unknown role "dev" (defined roles: admin, developer, viewer)`},
		{"unknown user role", "users:\n  alice@example.com: [developer]\n  bob: [root]\n",
			`mcpguard.yaml:3: users.bob[0]: unknown role "root" (defined roles: admin, developer, viewer)`},
		{"user with dotted subject", "users:\n  bob.smith@example.com:\n    - viewer\n    - root\n",
			`mcpguard.yaml:4: users["bob.smith@example.com"][1]: unknown role "root" (defined roles: admin, developer, viewer)`},
		{"unknown tool role", "tool_permissions:\n  query: {roles: [viewer]}\n  drop_table:\n    roles: [superuser]\n",
			`mcpguard.yaml:4: tool_permissions.drop_table.roles[0]: unknown role "superuser" (defined roles: admin, developer, viewer)`},
		{"public url with path", "server:\n  public_url: https://mcp.example.com/base\n",
			"mcpguard.yaml:2: server.public_url: must be scheme://host[:port] such as https://mcp.example.com (no path)"},
		{"code ttl too long", "oauth:\n  code_ttl: 5m\n",
			"mcpguard.yaml:2: oauth.code_ttl: must be a positive duration of at most 60s"},
		{"scope with unknown role", "oauth:\n  scopes:\n    mcp:all: {role: root}\n  default_scopes: [mcp:all]\n",
			`mcpguard.yaml:3: oauth.scopes["mcp:all"].role: unknown role "root" (defined roles: admin, developer, viewer)`},
		{"unknown default scope", "oauth:\n  default_scopes: [mcp:read, mcp:everything]\n",
			`mcpguard.yaml:2: oauth.default_scopes[1]: unknown scope "mcp:everything" (define it under oauth.scopes)`},
		{"inline session key", "oauth:\n  session_key: s3cr3t-value\n",
			"mcpguard.yaml:2: oauth.session_key: inline secrets are not allowed; use env:NAME or file:/path"},
		{"provider without keys", "auth:\n  providers:\n    - name: okta\n      issuer: https://okta.example\n",
			"mcpguard.yaml:3: auth.providers[0]: set jwks_url (JWT access tokens) or introspection_url (opaque tokens)"},
		{"provider introspection without client", "auth:\n  providers:\n    - name: corp\n      issuer: https://sso.example\n      introspection_url: https://sso.example/introspect\n",
			"mcpguard.yaml:3: auth.providers[0].client_id: required with introspection_url\n" +
				"mcpguard.yaml:3: auth.providers[0].client_secret: required with introspection_url; use env:NAME or file:/path"},
		{"provider duplicate issuer and bad role map", "auth:\n  providers:\n    - {name: a, issuer: https://i.example, jwks_url: https://i.example/k}\n    - name: b\n      issuer: https://i.example\n      jwks_url: http://i.example/k\n      role_map: {eng: [root]}\n",
			"mcpguard.yaml:5: auth.providers[1].issuer: duplicate issuer (also providers[0])\n" +
				"mcpguard.yaml:6: auth.providers[1].jwks_url: must use https (http is allowed only for a loopback host)\n" +
				`mcpguard.yaml:7: auth.providers[1].role_map.eng[0]: unknown role "root" (defined roles: admin, developer, viewer)`},
		{"replaced roles leave default tool_permissions dangling", "roles:\n  ops: {permissions: [\"tools:call:*\"]}\nrate_limit:\n  tools: {}\n",
			`mcpguard.yaml: tool_permissions.delete_users.roles[0]: unknown role "admin" (defined roles: ops); tool_permissions is not in the file, so the built-in default applies: define tool_permissions for your roles` + "\n" +
				`mcpguard.yaml: tool_permissions.describe_table.roles[0]: unknown role "viewer" (defined roles: ops); tool_permissions is not in the file, so the built-in default applies: define tool_permissions for your roles` + "\n" +
				`mcpguard.yaml: tool_permissions.drop_table.roles[0]: unknown role "admin" (defined roles: ops); tool_permissions is not in the file, so the built-in default applies: define tool_permissions for your roles` + "\n" +
				`mcpguard.yaml: tool_permissions.execute_sql.roles[0]: unknown role "developer" (defined roles: ops); tool_permissions is not in the file, so the built-in default applies: define tool_permissions for your roles` + "\n" +
				`mcpguard.yaml: tool_permissions.list_tables.roles[0]: unknown role "viewer" (defined roles: ops); tool_permissions is not in the file, so the built-in default applies: define tool_permissions for your roles` + "\n" +
				`mcpguard.yaml: tool_permissions.query.roles[0]: unknown role "viewer" (defined roles: ops); tool_permissions is not in the file, so the built-in default applies: define tool_permissions for your roles`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse("mcpguard.yaml", []byte(tt.yaml), nil)
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if cfg != nil {
				t.Error("Parse returned a config along with an error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "mcpguard.yaml" {
				t.Errorf("errors.As(*FieldError) = %+v", fe)
			}
		})
	}
}

func TestValidFilesAccepted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		check      func(*Config) error
	}{
		{"jwks over http on loopback", "auth:\n  jwt:\n    enabled: true\n    issuer: i\n    audiences: [a]\n    jwks_url: http://127.0.0.1:8081/jwks\n", nil},
		{"jwks over http on localhost", "auth:\n  jwt:\n    jwks_url: http://localhost/jwks\n", nil},
		{"jwt only", "auth:\n  api_keys: {enabled: false}\n  jwt:\n    enabled: true\n    issuer: https://idp.example.com\n    audiences: [mcpguard]\n    keys: [{kid: k, alg: PS384, public_key: env:PUB}]\n", nil},
		{"port zero and empty host", "server:\n  addr: \":0\"\n", nil},
		{"ipv6 addr", "server:\n  addr: \"[::1]:8080\"\n", nil},
		{"origin with port", "server:\n  allowed_origins: [\"http://localhost:3000\", \"https://app.example.com\"]\n", nil},
		{"permission with uri target", "roles:\n  viewer: {permissions: [\"resources:read:file:///tmp/x\", \"tools:*:*\"]}\n  developer: {}\n  admin: {}\n", nil},
		{"null section keeps defaults", "server:\nroles:\n", func(c *Config) error {
			if !reflect.DeepEqual(c, Default()) {
				return errors.New("null sections changed the config")
			}
			return nil
		}},
		{"struct fields merge with defaults", "server:\n  addr: 0.0.0.0:9000\n", func(c *Config) error {
			if c.Server.Addr != "0.0.0.0:9000" || c.Server.Path != "/mcp" || c.Server.ReadTimeout != 30*time.Second {
				return fmt.Errorf("server = %+v", c.Server)
			}
			return nil
		}},
		{"maps replace defaults", "roles:\n  ops:\n    permissions: [\"tools:call:*\"]\ntool_permissions:\n  drop_table: {roles: [ops], scopes: [db.admin]}\nrate_limit:\n  tools: {}\n", func(c *Config) error {
			if got := slices.Sorted(maps.Keys(c.Roles)); !slices.Equal(got, []string{"ops"}) {
				return fmt.Errorf("roles = %v", got)
			}
			if got := slices.Sorted(maps.Keys(c.ToolPermissions)); !slices.Equal(got, []string{"drop_table"}) {
				return fmt.Errorf("tool_permissions = %v", got)
			}
			if len(c.RateLimit.Tools) != 0 {
				return fmt.Errorf("rate_limit.tools = %v", c.RateLimit.Tools)
			}
			if got := c.ToolPermissions["drop_table"]; !slices.Equal(got.Scopes, []string{"db.admin"}) {
				return fmt.Errorf("drop_table = %+v", got)
			}
			return nil
		}},
		{"lists replace defaults", "audit:\n  argument_fields: [table, schema]\n", func(c *Config) error {
			if !slices.Equal(c.Audit.ArgumentFields, []string{"table", "schema"}) {
				return fmt.Errorf("argument_fields = %v", c.Audit.ArgumentFields)
			}
			return nil
		}},
		{"aliases", "users:\n  a: &r [viewer]\n  b: *r\n", func(c *Config) error {
			if !slices.Equal(c.Users["b"], []string{"viewer"}) {
				return fmt.Errorf("users = %v", c.Users)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse("mcpguard.yaml", []byte(tt.yaml), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.check != nil {
				if err := tt.check(cfg); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestMultipleErrorsReportedTogether(t *testing.T) {
	t.Parallel()
	yaml := `server:
  path: mcp
  bogus: 1
rate_limit:
  requests_per_minute: abc
  burst: -2
auth:
  jwt:
    enabled: true
audit:
  log: ""
`
	_, err := Parse("mcpguard.yaml", []byte(yaml), envMap(map[string]string{"MCPGUARD_SERVER_MAX_BODY_BYTES": "lots"}))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not Errors", err)
	}
	want := []string{
		"mcpguard.yaml:2: server.path: must start with /",
		"mcpguard.yaml:3: server.bogus: unknown field (valid fields here: addr, path, allowed_origins, max_body_bytes, max_header_bytes, read_header_timeout, read_timeout, idle_timeout, session_timeout, public_url, tls, session_ttl, max_sessions_per_principal, max_connections, allowed_hosts, max_streams_per_principal)",
		"mcpguard.yaml:5: rate_limit.requests_per_minute: must be an integer",
		"mcpguard.yaml:6: rate_limit.burst: must not be negative",
		"mcpguard.yaml:8: auth.jwt.issuer: required when auth.jwt.enabled is true",
		"mcpguard.yaml:8: auth.jwt.audiences: at least one audience is required when auth.jwt.enabled is true",
		"mcpguard.yaml:8: auth.jwt: auth.jwt.enabled is true but neither keys nor jwks_url is set",
		`mcpguard.yaml:11: audit.log: must not be empty (use "-" for stderr)`,
		"environment MCPGUARD_SERVER_MAX_BODY_BYTES: must be an integer",
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() does not join the problems by line")
	}
	if errs[0].Line != 2 || errs[0].Field != "server.path" || errs[0].File != "mcpguard.yaml" {
		t.Errorf("errs[0] = %+v", errs[0])
	}
}

func TestInheritanceCycles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, roles string
		want        []string
	}{
		{"self", "  a: {inherits: [a]}\n",
			[]string{"mcpguard.yaml:2: roles.a.inherits: inheritance cycle: a -> a"}},
		{"two", "  a: {inherits: [b]}\n  b: {inherits: [a]}\n",
			[]string{"mcpguard.yaml:2: roles.a.inherits: inheritance cycle: a -> b -> a"}},
		{"three behind a chain", "  top: {inherits: [x]}\n  x:\n    inherits: [y]\n  y: {inherits: [z]}\n  z: {inherits: [x, ok]}\n  ok: {}\n",
			[]string{"mcpguard.yaml:4: roles.x.inherits: inheritance cycle: x -> y -> z -> x"}},
		{"two separate cycles", "  a: {inherits: [a]}\n  b: {inherits: [c]}\n  c: {inherits: [b]}\n",
			[]string{
				"mcpguard.yaml:2: roles.a.inherits: inheritance cycle: a -> a",
				"mcpguard.yaml:3: roles.b.inherits: inheritance cycle: b -> c -> b",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			yaml := "roles:\n" + tt.roles + "tool_permissions: {}\n"
			_, err := Parse("mcpguard.yaml", []byte(yaml), nil)
			if err == nil {
				t.Fatal("cycle not detected")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
	// A diamond is not a cycle.
	yaml := "roles:\n  base: {}\n  l: {inherits: [base]}\n  r: {inherits: [base]}\n  top: {inherits: [l, r]}\ntool_permissions: {}\n"
	if _, err := Parse("mcpguard.yaml", []byte(yaml), nil); err != nil {
		t.Errorf("diamond: %v", err)
	}
}

func TestInlineSecretsNeverEchoed(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Value-9f8e7d"
	tests := []struct {
		name, key, want string
	}{
		{"plain", "{kid: k, alg: HS256, secret: " + secret + "}",
			"inline secrets are not allowed; use env:NAME or file:/path"},
		{"on asymmetric key", "{kid: k, alg: RS256, public_key: file:/k.pem, secret: " + secret + "}",
			"inline secrets are not allowed; use env:NAME or file:/path"},
		{"with unsupported alg", "{kid: k, alg: XX, secret: " + secret + "}",
			"inline secrets are not allowed; use env:NAME or file:/path"},
		{"malformed env reference", "{kid: k, alg: HS256, secret: \"env:" + secret + " x\"}",
			"malformed reference; use env:NAME (a valid variable name) or file:/path"},
		{"empty file reference", "{kid: k, alg: HS256, secret: \"file:\"}",
			"malformed reference; use env:NAME (a valid variable name) or file:/path"},
		{"secret as public key", "{kid: k, alg: ES512, public_key: " + secret + "}",
			"must be a reference, env:NAME or file:/path (inline PEM is not supported)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			yaml := "auth:\n  jwt:\n    keys:\n      - " + tt.key + "\n"
			_, err := Parse("mcpguard.yaml", []byte(yaml), nil)
			if err == nil {
				t.Fatal("inline secret accepted")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
				t.Errorf("error reveals the secret: %v", err)
			}
			if !strings.Contains(err.Error(), "mcpguard.yaml:4: auth.jwt.keys[0].") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	file := "server:\n  addr: 127.0.0.1:7000\n  read_timeout: 5s\nauth:\n  jwt:\n    audiences: [file]\n"
	tests := []struct {
		name  string
		env   map[string]string
		check func(*Config) bool
	}{
		{"string", map[string]string{"MCPGUARD_SERVER_ADDR": "0.0.0.0:9000"},
			func(c *Config) bool { return c.Server.Addr == "0.0.0.0:9000" }},
		{"nested string", map[string]string{"MCPGUARD_AUTH_JWT_ISSUER": "https://idp.example.com"},
			func(c *Config) bool { return c.Auth.JWT.Issuer == "https://idp.example.com" }},
		{"top-level string", map[string]string{"MCPGUARD_DATA_DIR": "/var/lib/mcpguard", "MCPGUARD_DATABASE": "/srv/app.db"},
			func(c *Config) bool { return c.DataDir == "/var/lib/mcpguard" && c.Database == "/srv/app.db" }},
		{"int", map[string]string{"MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE": " 250 "},
			func(c *Config) bool { return c.RateLimit.RequestsPerMinute == 250 }},
		{"int64", map[string]string{"MCPGUARD_SERVER_MAX_BODY_BYTES": "2097152"},
			func(c *Config) bool { return c.Server.MaxBodyBytes == 2<<20 }},
		{"duration overrides file", map[string]string{"MCPGUARD_SERVER_READ_TIMEOUT": "1m30s"},
			func(c *Config) bool { return c.Server.ReadTimeout == 90*time.Second }},
		{"nested duration", map[string]string{"MCPGUARD_RATE_LIMIT_LOCKOUT_DURATION": "1h"},
			func(c *Config) bool { return c.RateLimit.Lockout.Duration == time.Hour }},
		{"bool", map[string]string{"MCPGUARD_RATE_LIMIT_ENABLED": "false", "MCPGUARD_AUTH_API_KEYS_ENABLED": "true"},
			func(c *Config) bool { return !c.RateLimit.Enabled && c.Auth.APIKeys.Enabled }},
		{"list replaces file list", map[string]string{"MCPGUARD_AUTH_JWT_AUDIENCES": "a, b,,c "},
			func(c *Config) bool { return slices.Equal(c.Auth.JWT.Audiences, []string{"a", "b", "c"}) }},
		{"empty list", map[string]string{"MCPGUARD_AUDIT_ARGUMENT_FIELDS": ""},
			func(c *Config) bool { return c.Audit.ArgumentFields != nil && len(c.Audit.ArgumentFields) == 0 }},
		{"unset variables change nothing", map[string]string{"MCPGUARD_ROLES": "x", "OTHER": "y"},
			func(c *Config) bool {
				return c.Server.Addr == "127.0.0.1:7000" && c.Server.ReadTimeout == 5*time.Second &&
					slices.Equal(c.Auth.JWT.Audiences, []string{"file"}) && len(c.Roles) == 3
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse("mcpguard.yaml", []byte(file), envMap(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(cfg) {
				t.Errorf("override not applied: %+v", cfg)
			}
		})
	}
}

func TestEnvBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE", "abc-sekrit", "environment MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE: must be an integer"},
		{"MCPGUARD_SERVER_MAX_HEADER_BYTES", "99999999999999999999", "environment MCPGUARD_SERVER_MAX_HEADER_BYTES: must be an integer"},
		{"MCPGUARD_RATE_LIMIT_ENABLED", "sekrit", "environment MCPGUARD_RATE_LIMIT_ENABLED: must be a boolean (true or false)"},
		{"MCPGUARD_SERVER_IDLE_TIMEOUT", "30sekrit", "environment MCPGUARD_SERVER_IDLE_TIMEOUT: must be a duration such as 30s or 5m"},
		// Values that parse but fail validation point at the variable too.
		{"MCPGUARD_SERVER_PATH", "sekrit", "environment MCPGUARD_SERVER_PATH: server.path: must start with /"},
		{"MCPGUARD_RATE_LIMIT_BURST", "-1", "environment MCPGUARD_RATE_LIMIT_BURST: rate_limit.burst: must not be negative"},
		{"MCPGUARD_SERVER_ALLOWED_ORIGINS", "https://ok.example.com,sekrit", "environment MCPGUARD_SERVER_ALLOWED_ORIGINS: server.allowed_origins[1]: must be an origin such as https://app.example.com (scheme://host[:port], nothing after)"},
		{"MCPGUARD_AUTH_JWT_JWKS_URL", "http://sekrit.example.com", "environment MCPGUARD_AUTH_JWT_JWKS_URL: auth.jwt.jwks_url: must use https (http is allowed only for a loopback host)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The file sets the same setting: the environment wins, so the
			// error must point at the variable, not the file.
			file := "server:\n  path: /mcp\nrate_limit:\n  burst: 1\n"
			_, err := Parse("mcpguard.yaml", []byte(file), envMap(map[string]string{tt.name: tt.value}))
			if err == nil {
				t.Fatal("bad value accepted")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("error echoes the value: %v", err)
			}
		})
	}
}

func TestEnvVars(t *testing.T) {
	t.Parallel()
	names := EnvVars()
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("EnvVars not sorted and unique: %v", names)
	}
	for _, want := range []string{
		"MCPGUARD_SERVER_ADDR", "MCPGUARD_SERVER_ALLOWED_ORIGINS", "MCPGUARD_DATA_DIR", "MCPGUARD_DATABASE",
		"MCPGUARD_AUTH_API_KEYS_ENABLED", "MCPGUARD_AUTH_JWT_ISSUER", "MCPGUARD_AUTH_JWT_AUDIENCES",
		"MCPGUARD_AUTH_JWT_CLAIMS_SCOPES", "MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE",
		"MCPGUARD_RATE_LIMIT_LOCKOUT_WINDOW", "MCPGUARD_AUDIT_LOG", "MCPGUARD_AUDIT_ARGUMENT_FIELDS",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvVars lacks %s", want)
		}
	}
	for _, fileOnly := range []string{"MCPGUARD_ROLES", "MCPGUARD_USERS", "MCPGUARD_TOOL_PERMISSIONS", "MCPGUARD_RATE_LIMIT_TOOLS", "MCPGUARD_AUTH_JWT_KEYS"} {
		if slices.Contains(names, fileOnly) {
			t.Errorf("EnvVars includes file-only %s", fileOnly)
		}
	}
	// Every variable must actually be applied: setting each to a value of
	// the right kind must change the configuration.
	for _, name := range names {
		env := envMap(map[string]string{name: "7"})
		cfg, _ := Parse("", nil, env)
		if cfg != nil && reflect.DeepEqual(cfg, Default()) {
			t.Errorf("%s=7 had no effect", name)
		}
	}
}

func TestAliasExpansionBounded(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("x: &perms [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"tools:call:x"`)
	}
	b.WriteString("]\nroles:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "  r%d: {permissions: *perms}\n", i)
	}
	start := time.Now()
	_, err := Parse("mcpguard.yaml", []byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "document too large or too deeply aliased") {
		t.Errorf("alias expansion not bounded: %.200v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestTooManyErrorsCapped(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("users:\n")
	for i := range 500 {
		fmt.Fprintf(&b, "  u%d: {}\n", i)
	}
	_, err := Parse("mcpguard.yaml", []byte(b.String()), nil)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v", err)
	}
	if len(errs) != maxDecodeErrors+1 || errs[len(errs)-1].Msg != "too many errors; stopped decoding" {
		t.Errorf("got %d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

func TestSecretRefStringNeverRevealsInlineValue(t *testing.T) {
	t.Parallel()
	const secret = "inline-secret-4711"
	key := JWTKey{KID: "k", Alg: "HS256", Secret: SecretRef(secret)}
	for _, s := range []string{
		key.Secret.String(),
		fmt.Sprintf("%v", key), fmt.Sprintf("%+v", key), fmt.Sprintf("%#v", key), fmt.Sprint(key.Secret),
	} {
		if strings.Contains(s, secret) {
			t.Errorf("formatted value reveals the secret: %s", s)
		}
	}
	if js, err := json.Marshal(key); err != nil || strings.Contains(string(js), secret) {
		t.Errorf("json reveals the secret: %s %v", js, err)
	}
	for _, ref := range []SecretRef{"env:JWT_SECRET", "file:/etc/mcpguard/jwt.key", ""} {
		if ref.String() != string(ref) {
			t.Errorf("String(%q) = %q", string(ref), ref.String())
		}
	}
}

func TestSecretRefResolveEnv(t *testing.T) {
	t.Parallel()
	env := envMap(map[string]string{"JWT_SECRET": "topsecret", "EMPTY": ""})
	got, err := SecretRef("env:JWT_SECRET").Resolve(env)
	if err != nil || string(got) != "topsecret" {
		t.Errorf("Resolve = %q, %v", got, err)
	}
	tests := []struct {
		ref  SecretRef
		want string
	}{
		{"env:MISSING", "config: secret env:MISSING: environment variable MISSING is not set"},
		{"env:EMPTY", "config: secret env:EMPTY: environment variable EMPTY is empty"},
		{"topsecret", "config: secret is not a reference; use env:NAME, file:/path or secret:NAME"},
		{"", "config: secret is not a reference; use env:NAME, file:/path or secret:NAME"},
	}
	for _, tt := range tests {
		_, err := tt.ref.Resolve(env)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Resolve(%q) error = %v, want %s", tt.ref.String(), err, tt.want)
		}
	}
}

func TestSecretRefResolveFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const content = "file-secret-xyz"
	tests := []struct {
		name    string
		path    string
		want    string // resolved value, when wantErr is empty
		wantErr []string
	}{
		{"0600 ok, newline trimmed", write("ok", content+"\n", 0o600), content, nil},
		{"0400 ok", write("ro", content, 0o400), content, nil},
		{"0644 refused", write("world", content, 0o644), "", []string{"world", "mode 0644", "chmod 600 " + filepath.Join(dir, "world")}},
		{"0640 refused", write("group", content, 0o640), "", []string{"mode 0640", "chmod 600"}},
		{"0602 refused", write("otherw", content, 0o602), "", []string{"chmod 600"}},
		{"empty", write("empty", "\n", 0o600), "", []string{"file is empty"}},
		{"missing", filepath.Join(dir, "nope"), "", []string{"nope", "no such file"}},
		{"directory", dir, "", []string{"not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := SecretRef("file:" + tt.path).Resolve(nil)
			if tt.wantErr == nil {
				if err != nil || string(got) != tt.want {
					t.Errorf("Resolve = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve succeeded with %q", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), content) {
				t.Errorf("error reveals the file's contents: %v", err)
			}
		})
	}
}

func TestRefResolveAllowsReadablePublicKey(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "jwt.pub")
	const pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
	if err := os.WriteFile(p, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Ref("file:" + p).Resolve(nil)
	if err != nil || string(got) != strings.TrimRight(pem, "\n") {
		t.Errorf("Ref.Resolve = %q, %v", got, err)
	}
	got, err = Ref("env:PUB").Resolve(envMap(map[string]string{"PUB": pem}))
	if err != nil || string(got) != pem {
		t.Errorf("Ref.Resolve(env) = %q, %v", got, err)
	}
}

func TestObservabilityValidation(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ yaml, want string }{
		"metrics addr":       {"metrics:\n  addr: nonsense\n", "mcpguard.yaml:2: metrics.addr: must be host:port"},
		"metrics role typo":  {"metrics:\n  roles: [admn]\n", `metrics.roles[0]: unknown role "admn"`},
		"admin empty roles":  {"admin:\n  roles: []\n", "admin.roles: must name at least one role"},
		"tracing needs file": {"tracing:\n  enabled: true\n", "tracing.file: is required when tracing is enabled"},
	} {
		_, err := Parse("mcpguard.yaml", []byte(tc.yaml), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to contain %q", name, err, tc.want)
		}
	}
	// Replacing the roles without an admin role keeps the default admin
	// and metrics settings valid: they are then open to no one.
	if _, err := Parse("mcpguard.yaml", []byte("roles:\n  ops: {permissions: [\"tools:call:*\"]}\ntool_permissions: {}\n"), nil); err != nil {
		t.Fatalf("roles without admin: %v", err)
	}
}

func TestSecretStoreReferences(t *testing.T) {
	t.Parallel()
	ref := SecretRef("secret:github-token")
	if !ref.Valid() || ref.String() != "secret:github-token" {
		t.Fatalf("%q", ref.String())
	}
	for _, bad := range []SecretRef{"secret:", "secret:../x", "secret:a b"} {
		if bad.Valid() {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ref.Resolve(nil); err == nil || !strings.Contains(err.Error(), "MCPGUARD_MASTER_KEY") {
		t.Fatalf("without the store: %v", err)
	}
	v, err := ref.ResolveWith(Resolver{Secret: func(name string) ([]byte, error) {
		if name != "github-token" {
			return nil, errors.New("no such secret")
		}
		return []byte("tok"), nil
	}})
	if err != nil || string(v) != "tok" {
		t.Fatalf("ResolveWith: %q %v", v, err)
	}
	_, err = SecretRef("secret:missing").ResolveWith(Resolver{Secret: func(string) ([]byte, error) { return nil, errors.New("no such secret") }})
	if err == nil || !strings.Contains(err.Error(), "secret:missing") {
		t.Fatalf("missing secret: %v", err)
	}
	if _, err := Parse("m.yaml", []byte("secrets:\n  master_key: secret:x\n"), nil); err == nil {
		t.Fatal("a master key in the store it unlocks was accepted")
	}
}

// A dump shows references, never what they resolve to, and redacts a
// malformed reference that might be an inline secret.
func TestDumpRedacts(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.Audit.HMACKey = "env:AUDIT_KEY"
	cfg.OAuth.SessionKey = "hunter2-inline-secret"
	var b strings.Builder
	if err := Dump(&b, cfg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "env:AUDIT_KEY") || strings.Contains(out, "hunter2") || !strings.Contains(out, "[REDACTED]") || !strings.Contains(out, "public_url") {
		t.Fatalf("dump:\n%s", out)
	}
}

// The store and Redis URLs print without their passwords, and the dumped
// configuration keeps the rest of them.
func TestDumpRedactsURLPasswords(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.Store = "postgres://mcpguard:pg-s3cret@db:5432/mcpguard?sslmode=require"
	cfg.Redis.URL = "redis://:redis-s3cret@cache:6379/0"
	var b strings.Builder
	if err := Dump(&b, cfg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "mcpguard:xxxxx@db:5432/mcpguard") || !strings.Contains(out, "cache:6379") {
		t.Fatalf("dump:\n%s", out)
	}
	if cfg.Store != "postgres://mcpguard:pg-s3cret@db:5432/mcpguard?sslmode=require" {
		t.Fatal("Dump changed the configuration it printed")
	}
}
