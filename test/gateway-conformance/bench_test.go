package gatewaytest

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkToolCall measures one tools/call of the fixture's
// test_simple_text: directly over stdio and over streamable HTTP (the
// baselines), and through mcpguard (HTTP in, authenticate, rate limit,
// authorize, audit, then stdio to the upstream), with the audit log's
// default durable writes (an fsync shared by concurrent requests) and
// without. The gateway's overhead is the difference to direct/stdio.
func BenchmarkToolCall(b *testing.B) {
	ctx := context.Background()
	call := func(b *testing.B, cs *mcp.ClientSession, name string) {
		b.Helper()
		b.ResetTimer()
		for b.Loop() {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name})
			if err != nil || res.IsError {
				b.Fatalf("call: %v %v", err, res)
			}
		}
	}
	b.Run("direct/stdio", func(b *testing.B) {
		client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: exec.Command(fixtureBin)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		call(b, cs, "test_simple_text")
	})
	b.Run("direct/http", func(b *testing.B) {
		url := startFixtureHTTP(b)
		cs, err := mcptest.Connect(b, url, http.Header{})
		if err != nil {
			b.Fatal(err)
		}
		call(b, cs, "test_simple_text")
	})
	for _, durable := range []bool{true, false} {
		name := "gateway/durable-audit"
		if !durable {
			name = "gateway/buffered-audit"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			cfg := baseConfig(dir) + `roles:
  user:
    permissions: ["tools:call:*"]
rate_limit:
  requests_per_minute: 100000000
  tools: {}
upstreams:
  - name: fx
    command: [` + fixtureBin + `]
`
			if !durable {
				cfg = strings.Replace(cfg, "audit:\n", "audit:\n  durable: false\n", 1)
			}
			writeConfig(b, dir, cfg)
			key := createKey(b, dir, "bench", "user")
			gw := startGateway(b, dir, cfg, nil)
			cs, err := mcptest.Connect(b, gw.url, mcptest.Bearer(key))
			if err != nil {
				b.Fatal(err)
			}
			call(b, cs, "fx__test_simple_text")
		})
	}
}
