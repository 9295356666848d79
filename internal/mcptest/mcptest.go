// Package mcptest holds the MCP client helpers that mcpguard's tests share:
// connecting the go-sdk client over streamable HTTP with extra headers, and
// reading a tool result's text.
package mcptest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// HeaderTransport adds Header to every request it sends through Base.
type HeaderTransport struct {
	Header http.Header
	Base   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (rt HeaderTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range rt.Header {
		r.Header[k] = v
	}
	base := rt.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// Connect opens an MCP session to url with the go-sdk client, sending h on
// every request, without retries. The session is closed when the test ends.
func Connect(t testing.TB, url string, h http.Header) (*mcp.ClientSession, error) {
	t.Helper()
	return ConnectVersion(t, url, h, "")
}

// ConnectVersion is Connect asking for MCP protocol revision version
// ("": go-sdk's latest, the sessionless 2026-07-28; "2025-11-25" or
// "2025-06-18": a session-based revision).
func ConnectVersion(t testing.TB, url string, h http.Header, version string) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpguard-test", Version: "1"}, nil)
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: HeaderTransport{Header: h}}, MaxRetries: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// Bearer is an Authorization header carrying token.
func Bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// Text concatenates the text content of a tool result.
func Text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// ConnectInMemory connects the go-sdk client to server over an in-memory
// transport pair; both ends are closed when the test ends.
func ConnectInMemory(t testing.TB, server *mcp.Server) *mcp.ClientSession {
	t.Helper()
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(ctx, st, nil)
	if err != nil {
		t.Fatalf("server connect: %v", err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "mcpguard-test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatalf("client connect (initialize): %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// SyncBuffer collects a process's output while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Build compiles each Go package in pkgs (by import path) into dir, for
// tests that run programs as processes, and returns the binaries' paths
// by package.
func Build(dir string, pkgs ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, path.Base(pkg))
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, stderr.String())
		}
		out[pkg] = bin
	}
	return out, nil
}
