// Package e2e tests the mcpguard binary as a user runs it: built with
// `go build`, started as a process, and driven over real HTTP and stdio by
// the go-sdk MCP client.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

var binary string

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" { // a helper process of client_test.go
		os.Exit(runRole(role))
	}
	dir, err := os.MkdirTemp("", "mcpguard-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mcpguard")
	build := exec.Command("go", "build", "-o", binary, "github.com/mcpguard/mcpguard/cmd/mcpguard")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mcpguard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer = mcptest.SyncBuffer

// server is a running `mcpguard serve`.
type server struct {
	url     string
	dir     string // working directory: data dir and audit log live here
	output  *syncBuffer
	keys    map[string]string // demo identities' keys, when --demo printed them
	auditLg string
	// kill stops the server with SIGKILL and waits for it.
	kill func()
	// proc is the server's process.
	proc *os.Process
}

// run runs an mcpguard command in dir to completion.
func run(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var readyRE = regexp.MustCompile(`Server ready on (https?://\S+)`)
var demoKeyRE = regexp.MustCompile(`(?m)^\s+(admin|developer|viewer)\s+(mcp_[0-9a-f]{16}_[A-Za-z0-9_-]{43})$`)

// start runs `mcpguard serve --addr 127.0.0.1:0 args...` in dir (a new
// temporary directory when empty) and waits until it is ready.
func start(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { cancel(); cmd.Wait() }) }
	t.Cleanup(kill)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := readyRE.FindStringSubmatch(out.String()); m != nil {
			s := &server{url: m[1], dir: dir, output: out, keys: map[string]string{}, auditLg: filepath.Join(dir, "mcpguard-audit.log"), kill: kill, proc: cmd.Process}
			for _, k := range demoKeyRE.FindAllStringSubmatch(out.String(), -1) {
				s.keys[k[1]] = k[2]
			}
			return s
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mcpguard did not become ready; output:\n%s", out.String())
	return nil
}

var (
	connect = mcptest.Connect
	bearer  = mcptest.Bearer
	text    = mcptest.Text
)

func mustConnect(t *testing.T, url string, h http.Header) *mcp.ClientSession {
	t.Helper()
	cs, err := connect(t, url, h)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return cs
}

// post sends one raw JSON-RPC message and returns the response.
func post(t *testing.T, url string, h http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// auditLines reads the audit log's records as generic maps.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := jsonUnmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line is not one JSON object: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// waitAudit polls the audit log until match finds a record or time runs out.
func waitAudit(t *testing.T, path string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, r := range auditLines(t, path) {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching audit record in %s", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
