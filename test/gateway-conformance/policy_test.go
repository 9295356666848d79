package gatewaytest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPoliciesSeeUpstreams checks that Cedar policies see which upstream
// serves a tool: a forbid on `resource in Upstream::"web"` hides and
// refuses every tool of that upstream, whatever the roles grant, and
// leaves the other upstream's tools alone; resource.upstream names it.
func TestPoliciesSeeUpstreams(t *testing.T) {
	dir := t.TempDir()
	webURL := startFixtureHTTP(t)
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	policy := `@id("no-web") forbid(principal, action, resource in Upstream::"web");
@id("fx-env-off") forbid(principal, action == Action::"tools/call", resource) when { resource.upstream == "fx" && resource.name like "*_env" };`
	if err := os.WriteFile(filepath.Join(dir, "policies", "up.cedar"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(dir) + `roles:
  dev:
    permissions: ["tools:call:*"]
policies:
  dir: ` + filepath.Join(dir, "policies") + `
upstreams:
  - name: fx
    command: [` + fixtureBin + `]
  - name: web
    url: ` + webURL + `
`
	writeConfig(t, dir, cfg)
	alice := createKey(t, dir, "alice", "dev")
	gw := startGateway(t, dir, cfg, nil)
	cs := connect(t, gw.url, alice)
	names := toolNames(t, cs)
	if !slices.Contains(names, "fx__test_simple_text") || slices.Contains(names, "fx__fixture_env") {
		t.Fatalf("fx tools listed: %v", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "web__") {
			t.Fatalf("a tool of the forbidden upstream is listed: %s", n)
		}
	}
	text, isErr := callText(t, cs, "web__fixture_headers", map[string]any{})
	if !isErr || !strings.Contains(text, "Denied by: no-web") {
		t.Fatalf("web__fixture_headers: %v %q", isErr, text)
	}
	text, isErr = callText(t, cs, "fx__fixture_env", map[string]any{})
	if !isErr || !strings.Contains(text, "Denied by: fx-env-off") {
		t.Fatalf("fx__fixture_env: %v %q", isErr, text)
	}
	if _, isErr := callText(t, cs, "fx__test_simple_text", map[string]any{}); isErr {
		t.Fatal("fx__test_simple_text was refused")
	}

	// policy check types policies against the upstreams' tools too.
	out := run(t, dir, nil, "--config", filepath.Join(dir, "mcpguard.yaml"), "policy", "schema")
	if !strings.Contains(out, "entity Tool") {
		t.Fatalf("policy schema:\n%s", out)
	}
	out = run(t, dir, nil, "--config", filepath.Join(dir, "mcpguard.yaml"), "policy", "check")
	if !strings.Contains(out, "no problems") {
		t.Fatalf("policy check:\n%s", out)
	}
	var n int
	if _, err := fmt.Sscanf(out[strings.LastIndex(out, "checked against"):], "checked against %d tools", &n); err != nil || n <= 6 {
		t.Fatalf("policy check did not count the upstreams' tools: %q", out)
	}
}
