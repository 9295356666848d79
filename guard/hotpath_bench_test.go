package guard_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/audit"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/ratelimit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// nopSink is an AuditSink that keeps nothing, to measure the pipeline alone.
type nopSink struct{}

func (nopSink) Record(context.Context, *guard.Record) error { return nil }

// BenchmarkHotPath measures the pipeline's own work for one allowed
// tools/call, without go-sdk's transport and JSON-RPC handling: the request
// is handed straight to MCPMiddleware, the credential's principal comes from
// a map (what an authentication cache hit yields), and the tool is a no-op.
// Each iteration authenticates, rate limits (a real ratelimit.Local with
// identity and per-tool buckets), authorizes (a real authz.RBAC), summarizes
// the arguments and writes one audit record.
//
// The sinks: "nop" keeps nothing (the pipeline alone); "audit-async" is a
// hash-chained, HMAC'd file logger in the asynchronous mode, whose writer
// goroutine seals and writes lines concurrently.
func BenchmarkHotPath(b *testing.B) {
	ctx := context.Background()
	// A real server session, so that the request looks like one go-sdk
	// hands to its middleware.
	st, ct := mcp.NewInMemoryTransports()
	ss, err := newServer(nil, guard.MCPOptions{}).Connect(ctx, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "b", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })

	for _, sink := range []string{"nop", "audit-async"} {
		b.Run("sink="+sink, func(b *testing.B) {
			var s guard.AuditSink = nopSink{}
			if sink == "audit-async" {
				l, err := audit.Open(filepath.Join(b.TempDir(), "a.log"), audit.Options{
					HMACKey: make([]byte, 32), BlockWhenFull: true,
				})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { l.Close() })
				s = l
			}
			lim, err := ratelimit.New(ratelimit.Config{
				Identity: ratelimit.Rule{Requests: 1 << 30, Per: time.Second},
				Tools:    map[string]ratelimit.Rule{ratelimit.AnyTool: {Requests: 1 << 30, Per: time.Second}},
			})
			if err != nil {
				b.Fatal(err)
			}
			g := &guard.Guard{
				Authenticator:  keyAuth{"k": {Subject: "bench", Issuer: "mcpguard", Method: guard.MethodAPIKey, KeyID: "0123456789abcdef", Roles: []string{"developer"}}},
				Limiter:        lim,
				Authorizer:     rbac(b),
				Audit:          s,
				ArgumentFields: []string{"table"},
			}
			result := &mcp.CallToolResult{}
			next := func(context.Context, string, mcp.Request) (mcp.Result, error) { return result, nil }
			h := g.MCPMiddleware(guard.MCPOptions{Transport: "stdio", Credential: &guard.Credential{Kind: guard.Bearer, Secret: "k"}})(next)
			req := &mcp.CallToolRequest{Session: ss, Params: &mcp.CallToolParamsRaw{
				Name:      "query",
				Arguments: json.RawMessage(`{"table":"users","limit":10,"where":{"id":[1,2,3]}}`),
			}}
			if res, err := h(ctx, "tools/call", req); err != nil || res != result {
				b.Fatalf("tools/call = %v, %v; want the tool's result", res, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h(ctx, "tools/call", req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
