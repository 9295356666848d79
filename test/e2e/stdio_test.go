package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioSession spawns `mcpguard serve --stdio --demo` in dir with env and
// connects the go-sdk client to it.
func stdioSession(t *testing.T, dir string, env []string) (*mcp.ClientSession, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--stdio", "--demo")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-stdio", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("stdio connect: %v\nstderr:\n%s", err, stderr)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, stderr
}

func TestStdio(t *testing.T) {
	dir := t.TempDir()
	// The first HTTP demo run prints the identities' keys.
	s := start(t, dir, nil, "--demo")
	devKey := s.keys["developer"]
	ctx := context.Background()

	t.Run("api key from MCP_API_KEY", func(t *testing.T) {
		cs, stderr := stdioSession(t, dir, []string{"MCP_API_KEY=" + devKey, "MCP_AUTH_TOKEN="})
		lt, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(lt.Tools) != 4 {
			t.Errorf("developer sees %d tools over stdio, want 4", len(lt.Tools))
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "drop_table", Arguments: map[string]any{"table": "users"}})
		if err != nil || !res.IsError || !strings.Contains(text(res), "Required role: admin\nYour role: developer") {
			t.Fatalf("drop_table as developer over stdio: %v %q", err, text(res))
		}
		res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_tables", Arguments: map[string]any{}})
		if err != nil || res.IsError || !strings.Contains(text(res), "users") {
			t.Fatalf("list_tables: %v %q", err, text(res))
		}
		// The startup report goes to stderr (stdout carries only the
		// protocol, or the client above could not have talked to it).
		if !strings.Contains(stderr.String(), "[OK] API key authentication enabled") || !strings.Contains(stderr.String(), "Server ready on stdio") {
			t.Errorf("stderr lacks the startup report:\n%s", stderr)
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["transport"] == "stdio" && r["decision"] == "DENIED" && r["target"] == "drop_table"
		})
	})

	t.Run("api key from MCP_AUTH_TOKEN", func(t *testing.T) {
		cs, _ := stdioSession(t, dir, []string{"MCP_API_KEY=", "MCP_AUTH_TOKEN=" + s.keys["viewer"]})
		lt, err := cs.ListTools(ctx, nil)
		if err != nil || len(lt.Tools) != 3 {
			t.Fatalf("viewer over stdio: %v %v", err, lt)
		}
	})

	for name, env := range map[string][]string{
		"no credential":      {"MCP_API_KEY=", "MCP_AUTH_TOKEN="},
		"invalid credential": {"MCP_API_KEY=mcp_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "MCP_AUTH_TOKEN="},
	} {
		t.Run(name, func(t *testing.T) {
			cs, _ := stdioSession(t, dir, env) // initialize works unauthenticated
			if err := cs.Ping(ctx, nil); err != nil {
				t.Fatalf("ping: %v", err)
			}
			_, err := cs.ListTools(ctx, nil)
			var rpcErr *jsonrpc.Error
			if !errors.As(err, &rpcErr) || rpcErr.Code != -32001 {
				t.Fatalf("tools/list without a valid credential: %v", err)
			}
		})
	}
}
