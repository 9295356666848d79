// Package config loads and validates mcpguard's YAML configuration
// (mcpguard.yaml).
//
// # Layers
//
// A configuration is built in three layers, each on top of the previous one:
//
//  1. Default: built-in defaults that are secure and useful on their own
//     (API keys on, three roles viewer < developer < admin, a requirement for
//     each built-in database tool, rate limiting on).
//  2. The YAML file. Settings the file leaves out keep their defaults; a
//     setting given explicitly as null (for example "roles:" with nothing
//     after it) also keeps its default. A map (roles, users,
//     tool_permissions, rate_limit.tools) or list given in the file REPLACES
//     the default entirely: a file that defines roles gets exactly its own
//     roles, none of the built-in ones.
//  3. Environment variables. Every scalar and string-list setting can be set
//     as MCPGUARD_<PATH>, the YAML path upper-cased and joined by "_", e.g.
//     MCPGUARD_SERVER_ADDR, MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE,
//     MCPGUARD_AUTH_JWT_AUDIENCES=a,b (lists are comma-separated). Maps and
//     lists of structures (roles, users, tool_permissions, rate_limit.tools,
//     auth.jwt.keys) can only be set in the file. EnvVars lists every name.
//
// # Decoding and errors
//
// Decoding is strict: unknown fields, wrong types, duplicate keys and
// multiple YAML documents are errors. Every problem found is reported, not
// just the first, as an Errors value whose entries name the file, line and
// field, for example:
//
//	mcpguard.yaml:12: rate_limit.requests_per_minute: must be a positive integer
//	mcpguard.yaml:7: auth.jwt.keys[0].secret: inline secrets are not allowed; use env:NAME or file:/path
//	environment MCPGUARD_RATE_LIMIT_REQUESTS_PER_MINUTE: must be an integer
//
// # Secrets
//
// Secrets never appear in the file: secret fields hold a SecretRef
// ("env:NAME" or "file:/path") that is resolved only when needed, and an
// inline value is refused without being echoed in the error.
package config

import (
	_ "embed"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Example is a documented example configuration file. It passes Check and
// refers to secrets only through env:/file: references.
//
//go:embed example.yaml
var Example []byte

// Config is mcpguard's complete configuration.
type Config struct {
	// Server configures the HTTP listener that serves MCP.
	Server ServerConfig `yaml:"server"`
	// DataDir is the directory that holds mcpguard's own store
	// (mcpguard.db). Default "./mcpguard-data".
	DataDir string `yaml:"data_dir"`
	// Store is where mcpguard keeps its state: empty for the SQLite file in
	// data_dir (the default), or a postgres:// URL to share one PostgreSQL
	// database between replicas. Keep the password out of the file: use
	// PGPASSWORD, a passfile, or MCPGUARD_STORE.
	Store string `yaml:"store"`
	// Redis, when its URL is set, makes rate limits and lockout global
	// across replicas and fans revocations out to them.
	Redis RedisConfig `yaml:"redis"`
	// Database is the path of the SQLite database the built-in tools work
	// on. Empty turns the built-in tools off (--demo sets it).
	Database string `yaml:"database"`
	// Auth configures how callers authenticate.
	Auth AuthConfig `yaml:"auth"`
	// Roles maps a role name to its definition. Given in the file, it
	// replaces the default roles entirely. File only.
	Roles map[string]Role `yaml:"roles"`
	// Users maps a subject (for example a JWT "sub") to roles granted in
	// addition to those the credential itself carries. File only.
	Users map[string][]string `yaml:"users"`
	// ToolPermissions maps a tool name (or a glob over tool names) to what
	// calling it requires. Given in the file, it replaces the default
	// requirements entirely. File only.
	ToolPermissions map[string]ToolRequirement `yaml:"tool_permissions"`
	// RateLimit configures request rate limiting and failed-auth lockout.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
	// Audit configures the audit log.
	Audit AuditConfig `yaml:"audit"`
	// Metrics configures the Prometheus endpoint.
	Metrics MetricsConfig `yaml:"metrics"`
	// Tracing configures OpenTelemetry tracing.
	Tracing TracingConfig `yaml:"tracing"`
	// Admin configures the read-only admin page at /admin/.
	Admin AdminConfig `yaml:"admin"`
	// OAuth configures the built-in OAuth 2.1 authorization server.
	OAuth OAuthConfig `yaml:"oauth"`
	// Secrets configures the encrypted secret store.
	Secrets SecretsConfig `yaml:"secrets"`
	// Policies configures the Cedar policies evaluated with the roles.
	Policies PoliciesConfig `yaml:"policies"`
	// Gateway configures gateway mode as a whole.
	Gateway GatewayConfig `yaml:"gateway"`
	// Upstreams are existing MCP servers mcpguard fronts (gateway mode).
	// File only.
	Upstreams []UpstreamConfig `yaml:"upstreams"`
}

// RedisConfig configures the Redis (or Valkey) server that replicas share.
type RedisConfig struct {
	// URL is redis://[user[:password]@]host:port/db, rediss://… for TLS,
	// or unix:///path; empty turns Redis off.
	URL string `yaml:"url"`
	// OnFailure is what rate limiting does while Redis is unreachable:
	// "closed" (default) refuses requests with 503; "local" falls back to
	// each replica's own in-memory limits.
	OnFailure string `yaml:"on_failure"`
}

// StoreLocation is what app.OpenStore opens: Store when set, else DataDir.
func (c *Config) StoreLocation() string {
	if c.Store != "" {
		return c.Store
	}
	return c.DataDir
}

// PoliciesConfig configures the Cedar policy engine (package policy). The
// roles, users and tool requirements above are compiled into Cedar and
// evaluated together with the hand-written policies of Dir.
type PoliciesConfig struct {
	// Dir holds the *.cedar policy files. Default "./policies"; the
	// default may be missing (no hand-written policies), a configured
	// directory must exist.
	Dir string `yaml:"dir"`
	// TimeZone is the zone of context.time (an IANA name such as
	// "Europe/Paris"). Default "UTC".
	TimeZone string `yaml:"time_zone"`
	// Tags maps a tool, resource or prompt name, or a glob over names, to
	// tags that policies read as resource.tags. File only.
	Tags map[string][]string `yaml:"tags"`
	// ReloadInterval is how often Dir is checked for changed files, which
	// are then compiled and put in force atomically (a file that does not
	// compile keeps the previous set and is logged). 0 turns watching off;
	// SIGHUP always reloads. Default 2s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// SecretsConfig configures mcpguard's encrypted secret store, from which
// secret:NAME references are resolved.
type SecretsConfig struct {
	// MasterKey wraps the secrets' data keys: 32 bytes as hex or base64,
	// as a reference (env:NAME or file:/path). Default
	// env:MCPGUARD_MASTER_KEY.
	MasterKey SecretRef `yaml:"master_key"`
	// PreviousMasterKeys still open secrets wrapped before a rotation
	// (`mcpguard secrets rotate-master`), so that servers keep working
	// while the rotation rolls out.
	PreviousMasterKeys []SecretRef `yaml:"previous_master_keys"`
}

// ServerConfig configures the HTTP server.
type ServerConfig struct {
	// Addr is the host:port to listen on. Default "127.0.0.1:8080".
	Addr string `yaml:"addr"`
	// Path is the URL path of the MCP endpoint. Default "/mcp".
	Path string `yaml:"path"`
	// AllowedOrigins lists the exact Origin header values (such as
	// "https://app.example.com") accepted on browser requests. Requests
	// without an Origin header are allowed; requests with any other Origin
	// are refused.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxBodyBytes caps the size of a request body. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxHeaderBytes caps the size of the request headers. Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout bounds reading the request headers. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout bounds how long an idle keep-alive connection is kept.
	// Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// SessionTimeout is how long an idle MCP session is kept. Default 30m.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// PublicURL is the scheme://host[:port] clients reach mcpguard at
	// (behind a proxy, the proxy's). It is the OAuth issuer and, with Path,
	// the canonical resource URL tokens must be issued for. Empty means
	// http://<addr>.
	PublicURL string `yaml:"public_url"`
	// TLS serves HTTPS, and configures mutual TLS, when Cert and Key are
	// set.
	TLS TLSConfig `yaml:"tls"`
	// SessionTTL is the absolute lifetime of an MCP session, however
	// active. Default 24h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// MaxSessionsPerPrincipal caps the live MCP sessions of one principal;
	// a new session evicts the oldest. Default 16.
	MaxSessionsPerPrincipal int `yaml:"max_sessions_per_principal"`
	// MaxConnections caps the concurrent connections to the listener;
	// further connections wait for a free slot. Default 1024.
	MaxConnections int `yaml:"max_connections"`
	// AllowedHosts are Host header values (names or IPs; ports ignored)
	// accepted besides loopback names, public_url's host and addr's host.
	// When addr listens on all interfaces and public_url is empty, Host is
	// not checked unless this is set.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// MaxStreamsPerPrincipal caps the concurrent requests (streams) of one
	// principal on the MCP endpoint; more get 429. Default 32.
	MaxStreamsPerPrincipal int `yaml:"max_streams_per_principal"`
}

// TLSConfig configures HTTPS and mutual TLS. The files are re-read when
// they change and on SIGHUP.
type TLSConfig struct {
	// Cert and Key are PEM files: the server certificate (with its chain)
	// and its private key.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is a PEM file of the CAs client certificates must chain
	// to; setting it enables mutual TLS.
	ClientCA string `yaml:"client_ca"`
	// ClientAuth is how client certificates combine with tokens: "mtls"
	// (certificate only), "mtls+token" (both must pass; the principal is
	// the token's) or "either" (a token when sent, else the certificate).
	// Default "either" when ClientCA is set.
	ClientAuth string `yaml:"client_auth"`
	// PinnedFingerprints, when set, are the only client certificates
	// accepted (SHA-256, hex).
	PinnedFingerprints []string `yaml:"pinned_fingerprints"`
	// Identities map client certificates to principals; a certificate
	// matching none is refused.
	Identities []CertIdentity `yaml:"identities"`
	// ReloadInterval is how often the files are checked for changes.
	// Default 5s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Enabled reports whether HTTPS is configured.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" }

// CertIdentity maps client certificates to a principal: exactly one of
// CommonName, DNSName, URI (such as a SPIFFE ID) and Fingerprint selects
// them.
type CertIdentity struct {
	// Subject is the principal's name; empty means the matched value.
	Subject string `yaml:"subject"`
	// CommonName matches the certificate subject's CN.
	CommonName string `yaml:"common_name"`
	// DNSName matches one of the certificate's DNS SANs.
	DNSName string `yaml:"dns_name"`
	// URI matches one of the certificate's URI SANs, such as a SPIFFE ID.
	URI string `yaml:"uri"`
	// Fingerprint matches the certificate's SHA-256 fingerprint (hex).
	Fingerprint string `yaml:"fingerprint"`
	// Roles are the principal's roles.
	Roles []string `yaml:"roles"`
}

// AuthConfig configures authentication. At least one method must be
// enabled.
type AuthConfig struct {
	// APIKeys configures API-key authentication.
	APIKeys APIKeysConfig `yaml:"api_keys"`
	// JWT configures bearer-token (JWT) authentication.
	JWT JWTConfig `yaml:"jwt"`
	// Providers are external identity providers whose tokens are trusted:
	// JWTs verified with the provider's JWKS, or opaque tokens checked by
	// introspection (RFC 7662). File only.
	Providers []ProviderConfig `yaml:"providers"`
	// RevocationRecheck is how long a verified API key or JWT is trusted
	// from mcpguard's cache before the store is asked again whether it was
	// revoked: a revocation made by another process (mcpguard keys revoke,
	// tokens revoke) takes effect within this time. Default 1s; 0s checks
	// the store on every request.
	RevocationRecheck time.Duration `yaml:"revocation_recheck"`
	// Anonymous admits requests without credentials as one identity with
	// the given roles; only with a loopback server.addr. Default off.
	Anonymous AnonymousConfig `yaml:"anonymous"`
}

// APIKeysConfig configures API-key authentication.
type APIKeysConfig struct {
	// Enabled turns API-key authentication on. Default true.
	Enabled bool `yaml:"enabled"`
}

// JWTConfig configures JWT bearer-token authentication.
type JWTConfig struct {
	// Enabled turns JWT authentication on. Default false. When true,
	// Issuer, Audiences and at least one of Keys or JWKSURL are required.
	Enabled bool `yaml:"enabled"`
	// Issuer is the required "iss" claim.
	Issuer string `yaml:"issuer"`
	// Audiences lists accepted "aud" values; a token must name at least
	// one of them.
	Audiences []string `yaml:"audiences"`
	// Leeway is the clock skew tolerated on exp/nbf/iat. Default 30s.
	Leeway time.Duration `yaml:"leeway"`
	// JWKSURL is where to fetch verification keys. It must be https (http
	// only on a loopback host). Empty means static Keys only.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSCacheTTL is how long fetched JWKS keys are cached. Default 10m.
	JWKSCacheTTL time.Duration `yaml:"jwks_cache_ttl"`
	// JWKSMinRefreshInterval is the least time between two JWKS fetches
	// triggered by tokens naming an unknown key id, so that a flood of
	// made-up key ids cannot turn into a flood of fetches. Default 30s.
	JWKSMinRefreshInterval time.Duration `yaml:"jwks_min_refresh_interval"`
	// Keys are static verification keys, each pinned to one algorithm.
	// File only.
	Keys []JWTKey `yaml:"keys"`
	// Claims names the token claims mcpguard reads.
	Claims ClaimsConfig `yaml:"claims"`
}

// ProviderConfig is one trusted external identity provider. Exactly one of
// JWKSURL (JWT access tokens) and IntrospectionURL (opaque tokens) is set.
type ProviderConfig struct {
	// Name identifies the provider in messages.
	Name string `yaml:"name"`
	// Issuer is the provider's issuer identifier: the "iss" its tokens
	// carry, and what protected-resource metadata advertises.
	Issuer string `yaml:"issuer"`
	// Audiences lists accepted "aud" values. Default: the canonical
	// resource URL (server.public_url + server.path), so that a token
	// issued for another service is refused (RFC 8707).
	Audiences []string `yaml:"audiences"`
	// JWKSURL is the provider's JWK Set (https; http only on loopback).
	JWKSURL string `yaml:"jwks_url"`
	// IntrospectionURL is the provider's RFC 7662 endpoint.
	IntrospectionURL string `yaml:"introspection_url"`
	// ClientID and ClientSecret authenticate mcpguard to the introspection
	// endpoint; the secret is a reference (env:NAME or file:/path).
	ClientID     string    `yaml:"client_id"`
	ClientSecret SecretRef `yaml:"client_secret"`
	// Claims names the claims carrying roles, scopes and permissions.
	Claims ClaimsConfig `yaml:"claims"`
	// RoleMap maps a value of the roles claim (a group, say) to mcpguard
	// roles; when set, unmapped values grant nothing.
	RoleMap map[string][]string `yaml:"role_map"`
}

// OAuthConfig configures mcpguard's built-in OAuth 2.1 authorization
// server, through which MCP clients that know only the server URL
// discover, register, sign a person in and get tokens.
type OAuthConfig struct {
	// Enabled runs the authorization server. Default true; set false when
	// an external identity provider (auth.providers) issues the tokens.
	Enabled bool `yaml:"enabled"`
	// AccessTokenTTL is the lifetime of access tokens. Default 15m.
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// RefreshTokenTTL is the lifetime of a refresh token (each rotation
	// issues a new one). Default 720h.
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	// CodeTTL is the lifetime of authorization codes, at most 60s.
	// Default 60s.
	CodeTTL time.Duration `yaml:"code_ttl"`
	// DynamicRegistration allows RFC 7591 client registration. Default
	// true.
	DynamicRegistration bool `yaml:"dynamic_registration"`
	// MaxDynamicClients bounds dynamically registered clients. Default
	// 1000.
	MaxDynamicClients int `yaml:"max_dynamic_clients"`
	// RegistrationsPerHour bounds dynamic registrations from one source
	// address. Default 10.
	RegistrationsPerHour int `yaml:"registrations_per_hour"`
	// ClientIDMetadataDocuments accepts https URLs as client ids (Client ID
	// Metadata Documents). Default true.
	ClientIDMetadataDocuments bool `yaml:"client_id_metadata_documents"`
	// AllowPrivateMetadataURLs lets metadata documents be fetched from
	// loopback and private addresses. Default false: only for tests.
	AllowPrivateMetadataURLs bool `yaml:"allow_private_metadata_urls"`
	// Scopes maps each scope to the role it grants (when the user holds
	// it). Given in the file, it replaces the default entirely. File only.
	Scopes map[string]OAuthScope `yaml:"scopes"`
	// DefaultScopes are granted when a client asks for none, and named in
	// 401 challenges. Default [mcp:read, mcp:tools].
	DefaultScopes []string `yaml:"default_scopes"`
	// LoginMaxFailures locks a user out after this many failed password or
	// MFA attempts in a row. Default 5.
	LoginMaxFailures int `yaml:"login_max_failures"`
	// LoginLockout is how long the lockout lasts. Default 15m.
	LoginLockout time.Duration `yaml:"login_lockout"`
	// SessionKey seals the login cookies (at least 32 bytes), as a
	// reference. Empty means <data_dir>/oauth-session.key, created on
	// first start.
	SessionKey SecretRef `yaml:"session_key"`
}

// OAuthScope is one OAuth scope.
type OAuthScope struct {
	// Role is the role the scope grants, if the user holds it.
	Role string `yaml:"role"`
	// Description is shown on the consent page.
	Description string `yaml:"description"`
}

// JWTKey is one static JWT verification key, pinned to one algorithm.
type JWTKey struct {
	// KID is the key ID matched against a token's "kid" header. Key IDs
	// must be unique.
	KID string `yaml:"kid"`
	// Alg is the only algorithm this key verifies: HS256/384/512,
	// RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA.
	Alg string `yaml:"alg"`
	// Secret is the HMAC key for HS* algorithms, as a reference
	// (env:NAME or file:/path); inline secrets are refused.
	Secret SecretRef `yaml:"secret"`
	// PublicKey is the PEM public key for asymmetric algorithms, as a
	// reference (env:NAME or file:/path).
	PublicKey Ref `yaml:"public_key"`
}

// ClaimsConfig names the JWT claims that carry authorization data. An
// empty name turns that mapping off.
type ClaimsConfig struct {
	// Roles is the claim holding the principal's roles. Default "roles".
	Roles string `yaml:"roles"`
	// Scopes are the claims holding scopes (a space-separated string or a
	// list), read in order. Default [scope, scp].
	Scopes []string `yaml:"scopes"`
	// Permissions is the claim holding direct permission patterns.
	// Default "permissions".
	Permissions string `yaml:"permissions"`
}

// Role is a named set of permission patterns plus the roles it inherits.
type Role struct {
	// Inherits lists roles whose permissions this role also has.
	Inherits []string `yaml:"inherits"`
	// Permissions are patterns of the form <kind>:<verb>:<target>, kind
	// one of tools, resources, prompts, e.g. "tools:call:query"; '*' is a
	// glob wildcard.
	Permissions []string `yaml:"permissions"`
}

// ToolRequirement is what calling one tool takes: any one of Roles (after
// inheritance; empty means any authenticated principal) and every one of
// Scopes.
type ToolRequirement struct {
	// Roles lists roles of which the caller needs at least one.
	Roles []string `yaml:"roles"`
	// Scopes lists scopes the caller needs all of.
	Scopes []string `yaml:"scopes"`
}

// RateLimitConfig configures rate limiting.
type RateLimitConfig struct {
	// Enabled turns rate limiting on. Default true.
	Enabled bool `yaml:"enabled"`
	// RequestsPerMinute is the sustained rate allowed per identity.
	// Default 100; must be positive when Enabled.
	RequestsPerMinute int `yaml:"requests_per_minute"`
	// Burst is the bucket size per identity; 0 means RequestsPerMinute.
	Burst int `yaml:"burst"`
	// PerKeyRequestsPerMinute limits each API key separately; 0 is off.
	PerKeyRequestsPerMinute int `yaml:"per_key_requests_per_minute"`
	// Tools sets limits per identity per tool name. Given in the file, it
	// replaces the default entirely. File only.
	Tools map[string]ToolRateLimit `yaml:"tools"`
	// Lockout configures the lockout after repeated failed authentication.
	Lockout LockoutConfig `yaml:"lockout"`
}

// ToolRateLimit is a per-identity limit for one tool.
type ToolRateLimit struct {
	// RequestsPerMinute is the sustained rate; must be positive.
	RequestsPerMinute int `yaml:"requests_per_minute"`
	// Burst is the bucket size; 0 means RequestsPerMinute.
	Burst int `yaml:"burst"`
}

// LockoutConfig configures the lockout after failed authentication.
type LockoutConfig struct {
	// MaxFailures is how many failures within Window trigger a lockout;
	// 0 turns lockout off. Default 10.
	MaxFailures int `yaml:"max_failures"`
	// Window is the period over which failures are counted. Default 1m.
	Window time.Duration `yaml:"window"`
	// Duration is how long a lockout lasts. Default 5m.
	Duration time.Duration `yaml:"duration"`
}

// AuditConfig configures the audit log.
type AuditConfig struct {
	// Log is the audit log file; "-" or "stderr" means stderr and
	// "stdout" means stdout (not with serve --stdio, whose stdout carries
	// the protocol). Default "./mcpguard-audit.log".
	Log string `yaml:"log"`
	// ArgumentFields lists tool argument names logged in clear; every
	// other argument is logged only as a SHA-256 digest. Default [table].
	ArgumentFields []string `yaml:"argument_fields"`
	// HMACKey authenticates every line of the log, as a reference
	// (env:NAME or file:/path, at least 32 bytes). Empty means a key
	// generated on first start in the data directory (audit-hmac.key,
	// mode 0600).
	HMACKey SecretRef `yaml:"hmac_key"`
	// PreviousHMACKeys are keys that signed earlier lines, as references.
	// After a key rotation they keep the chain verifiable; new lines are
	// always authenticated with HMACKey.
	PreviousHMACKeys []SecretRef `yaml:"previous_hmac_keys"`
	// SigningKey is the Ed25519 key (PEM file) that signs checkpoints so
	// that a holder of the public key (the same path + ".pub") can check
	// the chain. Empty means <data_dir>/audit-signing.pem, created on
	// first start.
	SigningKey string `yaml:"signing_key"`
	// Durable makes every request wait until its record is on disk
	// (fsync; records of concurrent requests share one). When false, a
	// crash may lose up to FlushInterval of records. Default true.
	Durable bool `yaml:"durable"`
	// FlushInterval is how often records are written when Durable is
	// false. Default 5ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// BlockWhenFull makes a request wait for room when the audit queue is
	// full instead of being refused (the default, fail closed).
	BlockWhenFull bool `yaml:"block_when_full"`
	// CheckpointEvery writes a signed checkpoint after this many records
	// (and at least every minute). Default 1000.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// MaxBytes rotates the log when it grows past this size; 0 is off.
	// The chain continues across files.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge rotates the log when it is older than this; 0 is off.
	MaxAge time.Duration `yaml:"max_age"`
	// MinFreeBytes is a reserve of free disk space for the log: below it
	// mcpguard stops running requests (and refuses them, audited, into the
	// reserve) instead of running one it then cannot record. 0 is off.
	// Default 16 MiB.
	MinFreeBytes int64 `yaml:"min_free_bytes"`
}

// MetricsConfig configures Prometheus metrics.
type MetricsConfig struct {
	// Enabled serves metrics. Default true.
	Enabled bool `yaml:"enabled"`
	// Addr, when set, serves /metrics on a separate listener without
	// authentication, for a loopback or internal scrape network (e.g.
	// "127.0.0.1:9090"). When empty, /metrics is served on the main
	// listener and requires a credential whose principal holds one of
	// Roles (Prometheus sends it with `authorization: credentials_file`).
	Addr string `yaml:"addr"`
	// Roles may read /metrics on the main listener. Default [admin].
	Roles []string `yaml:"roles"`
}

// TracingConfig configures OpenTelemetry tracing: a span per request and
// per pipeline stage.
type TracingConfig struct {
	// Enabled turns tracing on. Default false.
	Enabled bool `yaml:"enabled"`
	// File receives spans as JSON lines (the OpenTelemetry stdout
	// exporter); "-" means stderr. Required when Enabled.
	File string `yaml:"file"`
}

// AdminConfig configures the read-only admin page.
type AdminConfig struct {
	// Enabled serves the admin page at /admin/. Default true.
	Enabled bool `yaml:"enabled"`
	// Roles may sign in to the admin page. Default [admin].
	Roles []string `yaml:"roles"`
}

// DefaultPolicyDir is the default policies.dir.
const DefaultPolicyDir = "./policies"

// Default returns the built-in configuration: what `mcpguard serve` runs
// with when there is no file. It is valid, and returns a fresh value on
// every call.
func Default() *Config {
	return &Config{
		Server: ServerConfig{
			Addr:              "127.0.0.1:8080",
			Path:              "/mcp",
			AllowedOrigins:    []string{},
			MaxBodyBytes:      1 << 20,
			MaxHeaderBytes:    64 << 10,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       120 * time.Second,
			SessionTimeout:    30 * time.Minute,
			SessionTTL:        24 * time.Hour,
			TLS:               TLSConfig{ReloadInterval: 5 * time.Second, PinnedFingerprints: []string{}, Identities: []CertIdentity{}},
			AllowedHosts:      []string{},

			MaxSessionsPerPrincipal: 16,
			MaxConnections:          1024,
			MaxStreamsPerPrincipal:  32,
		},
		DataDir:  "./mcpguard-data",
		Redis:    RedisConfig{OnFailure: "closed"},
		Database: "",
		Policies: PoliciesConfig{Dir: DefaultPolicyDir, TimeZone: "UTC", Tags: map[string][]string{}, ReloadInterval: 2 * time.Second},
		Auth: AuthConfig{
			RevocationRecheck: time.Second,
			APIKeys:           APIKeysConfig{Enabled: true},
			Providers:         []ProviderConfig{},
			Anonymous:         AnonymousConfig{Roles: []string{}},
			JWT: JWTConfig{
				Enabled:                false,
				Audiences:              []string{},
				Leeway:                 30 * time.Second,
				JWKSCacheTTL:           10 * time.Minute,
				JWKSMinRefreshInterval: 30 * time.Second,
				Keys:                   []JWTKey{},
				Claims: ClaimsConfig{
					Roles:       "roles",
					Scopes:      []string{"scope", "scp"},
					Permissions: "permissions",
				},
			},
		},
		Roles: map[string]Role{
			"viewer": {Permissions: []string{
				"tools:call:list_tables",
				"tools:call:describe_table",
				"tools:call:query",
			}},
			"developer": {
				Inherits:    []string{"viewer"},
				Permissions: []string{"tools:call:execute_sql"},
			},
			"admin": {
				Inherits:    []string{"developer"},
				Permissions: []string{"tools:call:*", "resources:read:*", "prompts:get:*"},
			},
		},
		Users: map[string][]string{},
		ToolPermissions: map[string]ToolRequirement{
			"delete_users":   {Roles: []string{"admin"}},
			"drop_table":     {Roles: []string{"admin"}},
			"execute_sql":    {Roles: []string{"developer"}},
			"query":          {Roles: []string{"viewer"}},
			"list_tables":    {Roles: []string{"viewer"}},
			"describe_table": {Roles: []string{"viewer"}},
		},
		RateLimit: RateLimitConfig{
			Enabled:           true,
			RequestsPerMinute: 100,
			Tools: map[string]ToolRateLimit{
				"execute_sql": {RequestsPerMinute: 20},
			},
			Lockout: LockoutConfig{MaxFailures: 10, Window: time.Minute, Duration: 5 * time.Minute},
		},
		Audit: AuditConfig{
			Log:             "./mcpguard-audit.log",
			ArgumentFields:  []string{"table"},
			Durable:         true,
			FlushInterval:   5 * time.Millisecond,
			CheckpointEvery: 1000,
			MinFreeBytes:    16 << 20,
		},
		Metrics: MetricsConfig{Enabled: true, Roles: []string{"admin"}},
		Admin:   AdminConfig{Enabled: true, Roles: []string{"admin"}},
		OAuth: OAuthConfig{
			Enabled:                   true,
			AccessTokenTTL:            15 * time.Minute,
			RefreshTokenTTL:           720 * time.Hour,
			CodeTTL:                   60 * time.Second,
			DynamicRegistration:       true,
			MaxDynamicClients:         1000,
			RegistrationsPerHour:      10,
			ClientIDMetadataDocuments: true,
			Scopes: map[string]OAuthScope{
				"mcp:read":  {Role: "viewer", Description: "List tables and run read-only queries"},
				"mcp:tools": {Role: "developer", Description: "Run SQL that changes data"},
				"mcp:admin": {Role: "admin", Description: "Administer: delete users, drop tables, read every resource"},
			},
			DefaultScopes:    []string{"mcp:read", "mcp:tools"},
			LoginMaxFailures: 5,
			LoginLockout:     15 * time.Minute,
		},
		Secrets:   SecretsConfig{MasterKey: "env:MCPGUARD_MASTER_KEY", PreviousMasterKeys: []SecretRef{}},
		Gateway:   GatewayConfig{Separator: "__", IdleTimeout: 10 * time.Minute},
		Upstreams: []UpstreamConfig{},
	}
}

// ResourceURL is the canonical URL of the MCP endpoint: the audience
// tokens must be issued for (RFC 8707).
func (c *Config) ResourceURL() string { return c.BaseURL() + c.Server.Path }

// BaseURL is server.public_url, or http(s)://<server.addr> when it is
// empty, without a trailing slash.
func (c *Config) BaseURL() string {
	if c.Server.PublicURL != "" {
		return strings.TrimSuffix(c.Server.PublicURL, "/")
	}
	if c.Server.TLS.Enabled() {
		return "https://" + c.Server.Addr
	}
	return "http://" + c.Server.Addr
}

// Load reads the configuration file at path, decodes it strictly on top of
// Default, applies MCPGUARD_* environment overrides from the process
// environment and validates the result. Load("") uses the defaults and the
// environment only. A decoding or validation failure is returned as Errors.
func Load(path string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load for a configuration already in memory: name is the file
// name used in messages, data the YAML (empty means defaults only) and env
// looks up environment variables (nil means no environment overrides).
// A decoding or validation failure is returned as Errors listing every
// problem found.
func Parse(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	cfg := Default()
	d := newDecoder(name)
	d.decodeDocument(data, cfg)
	envSrc := map[string]string{}
	var errs Errors
	errs = append(errs, d.errs...)
	if env != nil {
		errs = append(errs, applyEnv(cfg, env, envSrc)...)
	}
	for _, p := range validate(cfg) {
		errs = append(errs, d.locate(p, envSrc))
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return cfg, nil
}

// Check loads and validates the configuration file at path, for
// `mcpguard config check FILE`. It returns nil when the file is valid.
func Check(path string) error {
	if _, err := Load(path); err != nil {
		return err
	}
	return nil
}

// Dump writes cfg as YAML. Secret settings are references (env:NAME,
// file:/path, secret:NAME) and print as such; a malformed one, which might
// be an inline secret, prints as [REDACTED].
func Dump(w io.Writer, cfg *Config) error {
	// The store and Redis URLs may carry a password (from the
	// environment): print them without it.
	c := *cfg
	c.Store, c.Redis.URL = redactURL(c.Store), redactURL(c.Redis.URL)
	cfg = &c
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return fmt.Errorf("config: dump: %w", err)
	}
	return enc.Close()
}

// redactURL returns raw with any password replaced by [REDACTED]; a URL
// that does not parse prints as [REDACTED] whole.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[REDACTED]"
	}
	return u.Redacted()
}
