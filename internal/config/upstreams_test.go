package config

import (
	"strings"
	"testing"
	"time"
)

func TestUpstreams(t *testing.T) {
	yaml := `
gateway:
  separator: "."
upstreams:
  - name: github
    command: [npx, -y, server-github]
    env: {GITHUB_TOKEN: "env:GH", LOG_LEVEL: debug}
    isolation: per-user
    timeout: 5s
  - name: docs
    url: https://docs.example.com/mcp
    headers: {Authorization: "secret:docs-token"}
    namespace: "false"
    pinning: flag
`
	cfg, err := Parse("mcpguard.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Upstreams) != 2 || cfg.Gateway.Separator != "." || cfg.Gateway.IdleTimeout != 10*time.Minute {
		t.Fatalf("got %+v %+v", cfg.Upstreams, cfg.Gateway)
	}
	gh, docs := cfg.Upstreams[0], cfg.Upstreams[1]
	if gh.Prefix() != "github" || docs.Prefix() != "" || gh.Timeout != 5*time.Second || gh.Env["LOG_LEVEL"] != "debug" {
		t.Fatalf("github %+v docs %+v", gh, docs)
	}
	// namespace: false (a YAML boolean) also means no prefix.
	cfg, err = Parse("mcpguard.yaml", []byte("upstreams:\n  - {name: a, command: [x], namespace: false}\n"), nil)
	if err != nil || cfg.Upstreams[0].Prefix() != "" {
		t.Fatalf("namespace false: %v %+v", err, cfg)
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"upstreams:\n  - name: a\n", "mcpguard.yaml:2: upstreams[0]: set exactly one of command"},
		{"upstreams:\n  - {name: a, command: [x], url: 'https://x/mcp'}\n", "upstreams[0]: set exactly one of command"},
		{"upstreams:\n  - {name: a, command: [x]}\n  - {name: a, command: [y]}\n", "mcpguard.yaml:3: upstreams[1].name: duplicate upstream name \"a\""},
		{"upstreams:\n  - {name: a, url: 'http://example.com/mcp'}\n", "upstreams[0].url: must be https"},
		{"upstreams:\n  - {name: a, url: 'https://u:p@example.com/mcp'}\n", "upstreams[0].url: must not contain credentials"},
		{"upstreams:\n  - name: a\n    url: https://example.com/mcp\n    headers: {Authorization: Bearer hunter2}\n", "mcpguard.yaml:4: upstreams[0].headers.Authorization: inline secrets are not allowed"},
		{"upstreams:\n  - {name: a, command: [x], isolation: pooled}\n", "upstreams[0].isolation: must be shared or per-user"},
		{"upstreams:\n  - {name: a, command: [x], pinning: maybe}\n", "upstreams[0].pinning: must be block, flag or off"},
		{"upstreams:\n  - {name: 'a b', command: [x]}\n", "upstreams[0].name: must be 1-63"},
		{"auth:\n  anonymous: {enabled: true, roles: [viewer]}\nserver: {addr: '0.0.0.0:8080'}\n", "server.addr: must be a loopback address"},
		{"upstreams:\n  - {name: a, command: [x], user_env: {T: 'secret:t.{user}'}}\n", "upstreams[0].user_env: needs isolation: per-user"},
		{"upstreams:\n  - {name: a, command: [x], isolation: per-user, user_env: {T: 'secret:t'}}\n", "upstreams[0].user_env.T: must be a reference containing {user}"},
		{"upstreams:\n  - {name: a, command: [x], isolation: per-user, user_headers: {T: 'secret:t.{user}'}}\n", "upstreams[0].user_headers: only applies to a url upstream"},
		{"auth:\n  anonymous: {enabled: true, roles: [nobody]}\n", "auth.anonymous.roles[0]: unknown role"},
	}
	for _, tt := range tests {
		_, err := Parse("mcpguard.yaml", []byte(tt.yaml), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.yaml, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error echoes an inline secret: %v", err)
		}
	}
	if _, err := Parse("mcpguard.yaml", []byte("auth:\n  anonymous: {enabled: true, roles: [viewer]}\n"), nil); err != nil {
		t.Errorf("anonymous on the default loopback addr: %v", err)
	}
}
