package proxy_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/mcpguard/mcpguard/proxy"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkProxyCall measures the proxy alone: a tools/call to the fixture
// over stdio directly, and through a Gateway reached over an in-memory
// transport (no HTTP, no guard). The difference is what forwarding costs.
func BenchmarkProxyCall(b *testing.B) {
	ctx := context.Background()
	loop := func(b *testing.B, cs *mcp.ClientSession, name string) {
		for b.Loop() {
			if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name}); err != nil || res.IsError {
				b.Fatal(err, res)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).
			Connect(ctx, &mcp.CommandTransport{Command: exec.Command(fixture)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		loop(b, cs, "test_simple_text")
	})
	b.Run("proxied", func(b *testing.B) {
		gw, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Name: "fx", Prefix: "fx", Command: []string{fixture}}}})
		if err != nil {
			b.Fatal(err)
		}
		so := &mcp.ServerOptions{}
		gw.Configure(so)
		server := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, so)
		if err := gw.Start(ctx, server); err != nil {
			b.Fatal(err)
		}
		defer gw.Close()
		loop(b, mcptest.ConnectInMemory(b, server), "fx__test_simple_text")
	})
}
