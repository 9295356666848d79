// Command unsecured is the bench's baseline: a plain go-sdk streamable-HTTP
// MCP server with mcpguard's built-in demo tools and no security pipeline
// at all (no authentication, rate limit, authorization or audit). It
// listens only on loopback addresses and exists to be measured against.
//
// Usage:
//
//	unsecured [-addr 127.0.0.1:0] [-db demo.db]
//
// It prints "Server ready on http://ADDR/mcp" once it is listening and
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/mcpguard/mcpguard/internal/netx"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpguard/mcpguard/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback host:port to listen on")
	db := flag.String("db", "demo.db", "demo SQLite database (created and seeded when missing)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *db, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "unsecured:", err)
		stop()
		os.Exit(1)
	}
}

// run serves the demo tools on addr until ctx is done.
func run(ctx context.Context, addr, dbPath string, status io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: an unsecured server listens only on a loopback IP address", addr)
	}
	if _, err := tools.SeedDemo(ctx, dbPath); err != nil {
		return fmt.Errorf("demo database: %w", err)
	}
	db, err := tools.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("open tools: %w", err)
	}
	defer db.Close()

	server := mcp.NewServer(&mcp.Implementation{Name: "unsecured", Version: "1"}, nil)
	tools.Register(server, db)
	// The same session timeout and body bound as mcpguard's defaults, so
	// that the two differ only by the security pipeline.
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{SessionTimeout: 30 * time.Minute, MaxRequestBodyBytes: 1 << 20})
	mux := http.NewServeMux()
	mux.Handle("/mcp", handler)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	fmt.Fprintf(status, "Server ready on http://%s/mcp\n", ln.Addr())
	return netx.Serve(ctx, srv, ln)
}
