package guard_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/mcptest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkPipelineToolsCall measures one tools/call through the whole MCP
// pipeline (authenticate in band, rate limit, authorize, audit, execute) over
// go-sdk's in-memory transport, with the audit record kept in memory, or
// written to a hash-chained file durably (fsync per batch) or asynchronously.
// The difference between the variants is the audit log's cost per request.
func BenchmarkPipelineToolsCall(b *testing.B) {
	key := make([]byte, 32)
	b.Run("no-guard", func(b *testing.B) {
		server := newServer(nil, guard.MCPOptions{})
		benchCalls(b, server)
	})
	for name, open := range map[string]func(b *testing.B) guard.AuditSink{
		"audit=memory": func(b *testing.B) guard.AuditSink { return &memSink{} },
		"audit=file-durable": func(b *testing.B) guard.AuditSink {
			l, err := audit.Open(filepath.Join(b.TempDir(), "a.log"), audit.Options{HMACKey: key, WaitForSync: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Close() })
			return l
		},
		"audit=file-async": func(b *testing.B) guard.AuditSink {
			l, err := audit.Open(filepath.Join(b.TempDir(), "a.log"), audit.Options{HMACKey: key})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Close() })
			return l
		},
	} {
		b.Run(name, func(b *testing.B) {
			sink := open(b)
			g := &guard.Guard{
				Authenticator: keyAuth{"k": {Subject: "bench", Roles: []string{"developer"}}},
				Authorizer:    rbac(b), Audit: sink, ArgumentFields: []string{"table"},
			}
			if m, ok := sink.(*memSink); ok {
				b.Cleanup(func() { m.recs = nil })
			}
			benchCalls(b, newServer(g, guard.MCPOptions{Transport: "stdio", Credential: &guard.Credential{Kind: guard.Bearer, Secret: "k"}}))
		})
	}
}

// benchCalls connects a client to server in memory and times tools/call.
func benchCalls(b *testing.B, server *mcp.Server) {
	ctx := context.Background()
	cs := mcptest.ConnectInMemory(b, server)
	params := &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"table": "users"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cs.CallTool(ctx, params); err != nil {
			b.Fatal(err)
		}
	}
}
