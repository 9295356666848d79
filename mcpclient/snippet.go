package mcpclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ParseHeaders turns "Name=Value" (or "Name: Value") strings into a header,
// refusing names that are not valid header tokens, values with line breaks,
// and Authorization (which comes from the login).
func ParseHeaders(kvs []string) (http.Header, error) {
	h := http.Header{}
	for _, kv := range kvs {
		i := strings.IndexAny(kv, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("header %q: want Name=Value", printable(kv, 40))
		}
		name, value := strings.TrimSpace(kv[:i]), strings.TrimSpace(kv[i+1:])
		if !validToken(name) {
			return nil, fmt.Errorf("header name %q is not valid", printable(name, 40))
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("header %s: the value has a line break", name)
		}
		if strings.EqualFold(name, "Authorization") {
			return nil, fmt.Errorf("header Authorization is set from the stored login; do not pass it with --header")
		}
		h.Add(name, value)
	}
	return h, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= 0x20 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// ConfigSnippets returns what to paste into Claude Desktop's
// claude_desktop_config.json and VS Code's .vscode/mcp.json to run
// `exe connect serverURL args...` as a stdio server.
func ConfigSnippets(exe, serverURL string, args []string) string {
	name := "remote"
	if u, err := url.Parse(serverURL); err == nil && u.Hostname() != "" {
		name = strings.ReplaceAll(u.Hostname(), ".", "-")
	}
	full := append([]string{"connect", serverURL}, args...)
	claude, _ := json.MarshalIndent(map[string]any{"mcpServers": map[string]any{name: map[string]any{"command": exe, "args": full}}}, "", "  ")
	vscode, _ := json.MarshalIndent(map[string]any{"servers": map[string]any{name: map[string]any{"type": "stdio", "command": exe, "args": full}}}, "", "  ")
	return fmt.Sprintf("Claude Desktop (claude_desktop_config.json):\n%s\n\nVS Code (.vscode/mcp.json):\n%s\n", claude, vscode)
}
