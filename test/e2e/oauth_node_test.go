package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The official TypeScript SDK client (test/e2e/node, installed with
// `npm ci` there) against `mcpguard serve`'s built-in authorization server:
// discovery from the 401, registration (DCR, or a Client ID Metadata
// Document), login and consent, PKCE, step-up on 403 insufficient_scope,
// refresh-token rotation and reuse detection.

const (
	oauthUser     = "alice"
	oauthPassword = "correct horse battery staple 42"
)

// nodeClient returns the node binary and the directory of the TypeScript
// client, or skips (loudly) when they are not installed outside CI.
func nodeClient(t *testing.T) (node, dir string) {
	t.Helper()
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	why := ""
	node, err = exec.LookPath("node")
	if err != nil {
		why = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		why = "test/e2e/node/node_modules is missing (run: cd test/e2e/node && npm ci)"
	}
	if why == "" {
		return node, dir
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("TypeScript SDK OAuth test cannot run in CI: %s", why)
	}
	msg := fmt.Sprintf("!!! SKIPPING the TypeScript SDK OAuth end-to-end test: %s !!!", why)
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return "", ""
}

// runInput runs an mcpguard command in dir with stdin as its input.
func runInput(t *testing.T, dir string, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// oauthServer prepares a directory with a configuration and the user alice
// (admin), and starts `mcpguard serve --demo` there.
func oauthServer(t *testing.T, env []string) *server {
	t.Helper()
	return oauthServerWith(t, env, "")
}

// oauthServerWith is oauthServer with more settings under oauth: (YAML
// lines indented by two spaces).
func oauthServerWith(t *testing.T, env []string, oauthYAML string) *server {
	t.Helper()
	dir := t.TempDir()
	cfg := "oauth:\n  allow_private_metadata_urls: true\n" + oauthYAML + "audit:\n  log: ./mcpguard-audit.log\n"
	if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runInput(t, dir, env, oauthPassword+"\n", "--config", "cfg.yaml", "users", "add", oauthUser, "--role", "admin", "--password-stdin"); err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	return start(t, dir, env, "--demo", "--config", "cfg.yaml")
}

// tsResult is what oauth-client.mjs prints.
type tsResult struct {
	Mode           string `json:"mode"`
	ClientIDIsURL  bool   `json:"clientIdIsURL"`
	Issuer         string `json:"issuer"`
	Resource       string `json:"resource"`
	FirstScope     string `json:"firstScope"`
	Tools          []string
	ListTables     string `json:"list_tables"`
	ExecuteSQL     string `json:"execute_sql"`
	StepUp         string `json:"stepUp"`
	StepUpSDKError string `json:"stepUpSdkError"`
	AdminCall      string `json:"adminCall"`
	StepUpScope    string `json:"stepUpScope"`
	Authorizations []struct {
		Scope         string   `json:"scope"`
		Resource      string   `json:"resource"`
		ClientIDIsURL bool     `json:"clientIdIsURL"`
		PKCE          string   `json:"pkce"`
		Pages         []string `json:"pages"`
		Iss           bool     `json:"iss"`
	} `json:"authorizations"`
	Refresh              string `json:"refresh"`
	RefreshedTokenStatus int    `json:"refreshedTokenStatus"`
	ReplayStatus         int    `json:"replayStatus"`
	Replay               string `json:"replay"`
	FamilyRevoked        bool   `json:"familyRevoked"`
}

var tokenLike = []*regexp.Regexp{
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}`),          // a JWT
	regexp.MustCompile(`mcp_[0-9a-f]{16}_`),             // an mcpguard API key
	regexp.MustCompile(`[A-Za-z0-9_-]{40,}`),            // any long opaque secret
	regexp.MustCompile(`(?i)(access|refresh)_token"?:`), // a token field
}

// runTSClient runs oauth-client.mjs and decodes its result.
func runTSClient(t *testing.T, s *server, env []string, args ...string) tsResult {
	t.Helper()
	node, dir := nodeClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"oauth-client.mjs", s.url}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"MCP_USERNAME=" + oauthUser, "MCP_PASSWORD=" + oauthPassword}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	began := time.Now()
	err := cmd.Run()
	t.Logf("node oauth-client.mjs %s (%s):\n%s", strings.Join(args, " "), time.Since(began).Round(time.Millisecond), stderr.String())
	if err != nil {
		t.Fatalf("TypeScript client failed: %v\nstdout:\n%s\nstderr:\n%s\nmcpguard output:\n%s", err, stdout.String(), stderr.String(), s.output)
	}
	all := stdout.String() + stderr.String()
	if strings.Contains(all, oauthPassword) {
		t.Errorf("the client's output contains the password")
	}
	for _, re := range tokenLike {
		if m := re.FindString(all); m != "" {
			t.Errorf("the client's output contains something token-like: %.12q…", m)
		}
	}
	var res tsResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		t.Fatalf("client output is not one JSON object: %v\n%s", err, stdout.String())
	}
	t.Logf("result: %s", bytes.TrimSpace(stdout.Bytes()))
	return res
}

// checkFlow asserts what every successful run of the client shows.
func checkFlow(t *testing.T, s *server, r tsResult) {
	t.Helper()
	base := strings.TrimSuffix(s.url, "/mcp")
	if r.Issuer != base {
		t.Errorf("issuer = %q, want %q", r.Issuer, base)
	}
	if r.Resource != s.url {
		t.Errorf("protected resource = %q, want %q", r.Resource, s.url)
	}
	for _, tool := range []string{"list_tables", "query", "execute_sql"} {
		if !slices.Contains(r.Tools, tool) {
			t.Errorf("tools/list = %v, lacks %s", r.Tools, tool)
		}
	}
	if !strings.Contains(r.ListTables, "users") {
		t.Errorf("list_tables = %q, want the users table", r.ListTables)
	}
	if strings.Contains(r.FirstScope, "mcp:admin") {
		t.Errorf("first token's scope %q already has mcp:admin: no step-up was needed", r.FirstScope)
	}
	switch r.StepUp {
	case "sdk-transparent", "sdk-redirect", "sdk-refresh-dead-end-then-redirect":
		t.Logf("step-up handled as %q %s", r.StepUp, r.StepUpSDKError)
	default:
		t.Errorf("stepUp = %q", r.StepUp)
	}
	if r.AdminCall == "" {
		t.Errorf("delete_users after step-up returned nothing")
	}
	if len(r.Authorizations) != 2 {
		t.Fatalf("%d authorizations, want 2 (sign-in, step-up): %+v", len(r.Authorizations), r.Authorizations)
	}
	first, up := r.Authorizations[0], r.Authorizations[1]
	if first.Scope != "mcp:read mcp:tools" {
		t.Errorf("first authorization asked for scope %q, want the 401 challenge's %q", first.Scope, "mcp:read mcp:tools")
	}
	if !slices.Contains(strings.Fields(up.Scope), "mcp:admin") {
		t.Errorf("step-up authorization asked for scope %q, want mcp:admin in it", up.Scope)
	}
	if !slices.Contains(strings.Fields(r.StepUpScope), "mcp:admin") && r.StepUpScope != "" {
		t.Errorf("step-up token's scope = %q", r.StepUpScope)
	}
	for i, a := range r.Authorizations {
		if a.Resource != s.url {
			t.Errorf("authorization %d: resource = %q, want %q", i, a.Resource, s.url)
		}
		if a.PKCE != "S256" {
			t.Errorf("authorization %d: code_challenge_method = %q", i, a.PKCE)
		}
		if !a.Iss {
			t.Errorf("authorization %d: the redirect lacks iss (RFC 9207)", i)
		}
		if !slices.Contains(a.Pages, "consent") {
			t.Errorf("authorization %d went through %v, want a consent page (new scopes)", i, a.Pages)
		}
		if a.ClientIDIsURL != (r.Mode == "cimd") {
			t.Errorf("authorization %d: client_id is a URL = %v in mode %s", i, a.ClientIDIsURL, r.Mode)
		}
	}
	if !slices.Contains(first.Pages, "login") {
		t.Errorf("first authorization went through %v, want the login page", first.Pages)
	}
	if r.Refresh != "ok" || r.RefreshedTokenStatus != 200 {
		t.Errorf("refresh = %q, refreshed token's initialize = %d", r.Refresh, r.RefreshedTokenStatus)
	}
	if r.ReplayStatus != 400 || r.Replay != "invalid_grant" {
		t.Errorf("replay = %d %q, want 400 invalid_grant", r.ReplayStatus, r.Replay)
	}
	if !r.FamilyRevoked {
		t.Errorf("the newest refresh token still works after a replay")
	}
}

func isAlice(r map[string]any) bool {
	u, _ := r["user"].(string)
	return u == oauthUser || strings.HasSuffix(u, ":"+oauthUser) || strings.HasPrefix(u, oauthUser+"@")
}

func TestTypeScriptSDKOAuth(t *testing.T) {
	nodeClient(t)

	t.Run("DCR", func(t *testing.T) {
		s := oauthServer(t, nil)
		r := runTSClient(t, s, nil, "dcr")
		if r.ClientIDIsURL {
			t.Errorf("DCR run used a URL client_id")
		}
		checkFlow(t, s, r)

		// The 403 that asked for step-up, and the call it then allowed.
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["decision"] == "DENIED" && r["method"] == "tools/call" && r["target"] == "delete_users" && isAlice(r) && strings.Contains(reason, "step-up")
		})
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["decision"] == "ALLOWED" && r["method"] == "tools/call" && r["target"] == "delete_users" && isAlice(r)
		})
		// The authorization server's own records.
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["method"] == "oauth/token" && r["decision"] == "ALLOWED"
		})
		rec := waitAudit(t, s.auditLg, func(r map[string]any) bool {
			reason, _ := r["reason"].(string)
			return r["method"] == "oauth/token" && (r["decision"] == "DENIED" || r["decision"] == "AUTH_FAILED") &&
				regexp.MustCompile(`(?i)reuse|replay`).MatchString(reason)
		})
		t.Logf("replay audit record: %v", rec)
		methods := map[string]int{}
		for _, r := range auditLines(t, s.auditLg) {
			if m, _ := r["method"].(string); strings.HasPrefix(m, "oauth/") {
				methods[m+" "+fmt.Sprint(r["decision"])]++
			}
		}
		if len(methods) == 0 {
			t.Errorf("no oauth/* audit records")
		}
		t.Logf("oauth audit records: %v", methods)
	})

	t.Run("CIMD", func(t *testing.T) {
		const redirect = "http://127.0.0.1:53683/callback"
		var hits atomic.Int32
		var ts *httptest.Server
		ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/client.json" {
				http.NotFound(w, r)
				return
			}
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"client_id":                  ts.URL + "/client.json",
				"client_name":                "CIMD e2e",
				"redirect_uris":              []string{redirect},
				"grant_types":                []string{"authorization_code", "refresh_token"},
				"response_types":             []string{"code"},
				"token_endpoint_auth_method": "none",
			})
		}))
		defer ts.Close()
		certFile := filepath.Join(t.TempDir(), "cimd-ca.pem")
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		s := oauthServer(t, []string{"SSL_CERT_FILE=" + certFile})
		r := runTSClient(t, s, []string{"MCP_REDIRECT_URI=" + redirect}, "cimd", ts.URL+"/client.json")
		if !r.ClientIDIsURL {
			t.Errorf("CIMD run did not use the metadata document URL as client_id")
		}
		checkFlow(t, s, r)
		if n := hits.Load(); n < 1 {
			t.Errorf("mcpguard never fetched the client metadata document")
		} else {
			t.Logf("client metadata document fetched %d times", n)
		}
	})
}
