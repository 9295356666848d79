package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// `mcpguard login` and `mcpguard connect` against `mcpguard serve`'s own
// authorization server, with this test binary as the browser ($BROWSER, the
// "browser" role in client_roles_test.go) that submits the sign-in and
// consent forms as alice.

// clientSide is one user's client machine: a token directory and the
// environment that makes the scripted browser sign in as alice.
type clientSide struct {
	tokens  string // --token-dir
	browser string // the browser's log: one line per sign-in
	env     []string
}

func newClientSide(t *testing.T) *clientSide {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &clientSide{tokens: filepath.Join(dir, "tokens"), browser: filepath.Join(dir, "browser.log")}
	c.env = []string{"BROWSER=" + self, roleEnv + "=browser", "MCPGUARD_BROWSER_LOG=" + c.browser,
		"MCP_USERNAME=" + oauthUser, "MCP_PASSWORD=" + oauthPassword, "MCPGUARD_TOKEN_KEY=", "MCPGUARD_CLIENT_SECRET="}
	return c
}

// signIns returns the browser's log lines.
func (c *clientSide) signIns(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(c.browser)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// login runs `mcpguard login URL`.
func (c *clientSide) login(t *testing.T, serverURL string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"login", "--token-dir", c.tokens, serverURL}, args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mcpguard login: %v\n%s", err, out)
	}
	return string(out)
}

// record reads the one stored login.
func (c *clientSide) record(t *testing.T) map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(c.tokens, "*.json"))
	if len(files) != 1 {
		t.Fatalf("%d token files in %s, want 1", len(files), c.tokens)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// connect starts `mcpguard connect URL args...` and the go-sdk client on
// its stdio.
func (c *clientSide) connect(ctx context.Context, serverURL string, args ...string) (*mcp.ClientSession, *syncBuffer, error) {
	cmd := exec.Command(binary, append([]string{"connect", "--token-dir", c.tokens, serverURL}, args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e-connect", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
	return cs, stderr, err
}

func (c *clientSide) mustConnect(t *testing.T, serverURL string, args ...string) *mcp.ClientSession {
	t.Helper()
	cs, stderr, err := c.connect(context.Background(), serverURL, args...)
	if err != nil {
		t.Fatalf("connect: %v\nstderr:\n%s", err, stderr)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	lt, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("tools/list through connect: %v", err)
	}
	var names []string
	for _, tool := range lt.Tools {
		names = append(names, tool.Name)
	}
	return names
}

func TestLoginAndConnect(t *testing.T) {
	s := oauthServer(t, nil)
	c := newClientSide(t)

	out := c.login(t, s.url)
	if got := c.signIns(t); len(got) != 1 || got[0] != "signin err=<nil>" {
		t.Fatalf("browser sign-ins = %q, want one successful", got)
	}
	for _, want := range []string{"signed in to " + s.url, "Claude Desktop", "VS Code", `"connect"`, `"` + s.url + `"`, `"--token-dir"`} {
		if !strings.Contains(out, want) {
			t.Errorf("login output lacks %q:\n%s", want, out)
		}
	}
	rec := c.record(t)
	at, _ := rec["access_token"].(string)
	rt, _ := rec["refresh_token"].(string)
	if at == "" || rt == "" {
		t.Fatalf("stored login lacks tokens: access %v, refresh %v", at != "", rt != "")
	}
	if strings.Contains(out, at) || strings.Contains(out, rt) {
		t.Errorf("login printed a token")
	}
	if rec["server"] != s.url {
		t.Errorf("stored server = %v", rec["server"])
	}
	// Permissions: the directory 0700, the file 0600.
	if fi, err := os.Stat(c.tokens); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("token dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	files, _ := filepath.Glob(filepath.Join(c.tokens, "*.json"))
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	// A second login with a working stored login opens no browser.
	if out := c.login(t, s.url); !strings.Contains(out, "already signed in") {
		t.Errorf("second login: %s", out)
	}
	if n := len(c.signIns(t)); n != 1 {
		t.Errorf("second login opened the browser: %d sign-ins", n)
	}

	t.Run("connect relays as alice", func(t *testing.T) {
		cs := c.mustConnect(t, s.url)
		names := toolNames(t, cs)
		for _, want := range []string{"list_tables", "query", "execute_sql"} {
			if !slices.Contains(names, want) {
				t.Errorf("tools/list = %v, lacks %s", names, want)
			}
		}
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_tables", Arguments: map[string]any{}})
		if err != nil || res.IsError || !strings.Contains(text(res), "users") {
			t.Fatalf("list_tables through connect: %v %q", err, text(res))
		}
		waitAudit(t, s.auditLg, func(r map[string]any) bool {
			return r["decision"] == "ALLOWED" && r["method"] == "tools/call" && r["target"] == "list_tables" && isAlice(r)
		})
	})

	t.Run("ignore-tool", func(t *testing.T) {
		cs := c.mustConnect(t, s.url, "--ignore-tool", "execute_*", "--header", "X-Trace=e2e")
		names := toolNames(t, cs)
		if slices.Contains(names, "execute_sql") || !slices.Contains(names, "list_tables") {
			t.Errorf("tools/list with --ignore-tool execute_* = %v", names)
		}
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "execute_sql", Arguments: map[string]any{"sql": "select 1"}})
		if err == nil || !strings.Contains(err.Error(), "not available") {
			t.Errorf("calling an ignored tool: %v", err)
		}
	})

	t.Run("no login", func(t *testing.T) {
		other := newClientSide(t)
		_, stderr, err := other.connect(context.Background(), s.url)
		if err == nil || !strings.Contains(err.Error(), "run `mcpguard login "+s.url+"`") {
			t.Errorf("connect without a login: %v\nstderr:\n%s", err, stderr)
		}
		if n := len(other.signIns(t)); n != 0 {
			t.Errorf("connect without --login opened the browser")
		}
	})
}

// Two `connect --login` processes start together with no stored login:
// one signs in, the other waits on the lock and uses that login.
func TestConnectSharesOneLogin(t *testing.T) {
	s := oauthServer(t, nil)
	c := newClientSide(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	tools := make([][]string, 2)
	for i := range 2 {
		wg.Go(func() {
			cs, stderr, err := c.connect(context.Background(), s.url, "--login")
			if err != nil {
				errs[i] = err
				t.Logf("connect %d stderr:\n%s", i, stderr)
				return
			}
			defer cs.Close()
			lt, err := cs.ListTools(context.Background(), nil)
			if err != nil {
				errs[i] = err
				return
			}
			for _, tool := range lt.Tools {
				tools[i] = append(tools[i], tool.Name)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("connect %d: %v", i, err)
		} else if !slices.Contains(tools[i], "list_tables") {
			t.Errorf("connect %d: tools %v", i, tools[i])
		}
	}
	if got := c.signIns(t); len(got) != 1 {
		t.Errorf("%d browser sign-ins for two concurrent connects, want 1: %q", len(got), got)
	}
	c.record(t) // exactly one token file
}

// With short-lived access tokens, connect refreshes the stored login before
// it expires (and stores the rotated refresh token) without a browser.
func TestConnectRefreshesBeforeExpiry(t *testing.T) {
	s := oauthServerWith(t, nil, "  access_token_ttl: 64s\n")
	c := newClientSide(t)
	c.login(t, s.url)
	before := c.record(t)
	exp, err := time.Parse(time.RFC3339Nano, before["expiry"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// The refresh margin is 60s: wait until the token is inside it.
	if d := time.Until(exp.Add(-60 * time.Second)); d > 0 {
		time.Sleep(d + 500*time.Millisecond)
	}
	cs := c.mustConnect(t, s.url)
	if names := toolNames(t, cs); !slices.Contains(names, "list_tables") {
		t.Fatalf("tools after refresh: %v", names)
	}
	after := c.record(t)
	if after["access_token"] == before["access_token"] {
		t.Errorf("the access token was not refreshed")
	}
	if after["refresh_token"] == before["refresh_token"] {
		t.Errorf("the rotated refresh token was not stored")
	}
	if n := len(c.signIns(t)); n != 1 {
		t.Errorf("%d browser sign-ins, want only the login's", n)
	}
	waitAudit(t, s.auditLg, func(r map[string]any) bool {
		reason, _ := r["reason"].(string)
		return r["method"] == "oauth/token" && r["decision"] == "ALLOWED" && strings.Contains(reason, "refresh")
	})
}

// A revoked login makes connect fail with a message that says what to do.
func TestConnectRevokedLogin(t *testing.T) {
	s := oauthServer(t, nil)
	c := newClientSide(t)
	c.login(t, s.url)
	rec := c.record(t)
	base := strings.TrimSuffix(s.url, "/mcp")
	for _, tok := range []string{rec["refresh_token"].(string), rec["access_token"].(string)} {
		resp, err := http.PostForm(base+"/oauth/revoke", url.Values{"token": {tok}, "client_id": {rec["client_id"].(string)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
	}
	// The resource server rechecks a cached token's revocation once a
	// second (jwt.Config.RevocationRecheck); the login's probe cached it.
	time.Sleep(1200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, stderr, err := c.connect(ctx, s.url)
	if err == nil {
		// mcpguard lets initialize through unauthenticated; the first
		// guarded request is where the login is refused.
		defer cs.Close()
		_, err = cs.ListTools(ctx, nil)
		t.Logf("tools/list: %v", err)
		if err == nil {
			t.Fatal("tools/list worked with a revoked login")
		}
	}
	t.Logf("the error the MCP client sees: %v", err)
	want := "run `mcpguard login " + s.url + "` again"
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "refused the stored refresh token") {
		t.Errorf("error = %v\nwant it to contain %q", err, want)
	}
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("connect's stderr lacks %q:\n%s", want, stderr)
	}
	if n := len(c.signIns(t)); n != 1 {
		t.Errorf("connect opened the browser")
	}
}

// delete_users needs mcp:admin, which the first login (mcp:read mcp:tools,
// as the 401 asks) lacks: connect without --login says which login to run;
// that login adds the scope; connect --login steps up by itself.
func TestConnectStepUp(t *testing.T) {
	s := oauthServer(t, nil)
	c := newClientSide(t)
	c.login(t, s.url)
	if sc := c.record(t)["scopes"]; !sameScopes(sc, "mcp:read", "mcp:tools") {
		t.Fatalf("first login's scopes = %v", sc)
	}
	adminCall := func(cs *mcp.ClientSession) (*mcp.CallToolResult, error) {
		return cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_users", Arguments: map[string]any{"ids": []int{999999}}})
	}

	cs := c.mustConnect(t, s.url)
	_, err := adminCall(cs)
	want := "run `mcpguard login " + s.url + " --scope mcp:admin` again"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("admin call without the scope: %v\nwant %q", err, want)
	}
	t.Logf("the error the MCP client sees: %v", err)

	out := c.login(t, s.url, "--scope", "mcp:admin")
	if strings.Contains(out, "already signed in") {
		t.Fatalf("login --scope kept the old login:\n%s", out)
	}
	if sc := fmt.Sprint(c.record(t)["scopes"]); !strings.Contains(sc, "mcp:admin") || !strings.Contains(sc, "mcp:tools") {
		t.Errorf("scopes after login --scope = %v", sc)
	}
	cs2 := c.mustConnect(t, s.url)
	if res, err := adminCall(cs2); err != nil || res.IsError {
		t.Fatalf("admin call after login --scope: %v %v", err, text(res))
	}

	t.Run("connect --login steps up itself", func(t *testing.T) {
		c := newClientSide(t)
		c.login(t, s.url)
		cs := c.mustConnect(t, s.url, "--login")
		if res, err := adminCall(cs); err != nil || res.IsError {
			t.Fatalf("admin call with --login: %v %v", err, text(res))
		}
		if n := len(c.signIns(t)); n != 2 {
			t.Errorf("%d browser sign-ins, want 2 (login, step-up)", n)
		}
		if sc := fmt.Sprint(c.record(t)["scopes"]); !strings.Contains(sc, "mcp:admin") {
			t.Errorf("stored scopes after step-up = %v", sc)
		}
	})
}

// With MCPGUARD_TOKEN_KEY the token file is sealed: no token in it, and
// connect without the key cannot use it.
func TestSealedTokenStore(t *testing.T) {
	s := oauthServer(t, nil)
	c := newClientSide(t)
	key := "MCPGUARD_TOKEN_KEY=" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	c.env = append(c.env, key)
	c.login(t, s.url)
	files, _ := filepath.Glob(filepath.Join(c.tokens, "*.json"))
	if len(files) != 1 {
		t.Fatalf("%d token files", len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if json.Valid(raw) || strings.Contains(string(raw), "token") || strings.Contains(string(raw), "eyJ") {
		t.Errorf("the sealed token file is readable: %.80q", raw)
	}
	cs := c.mustConnect(t, s.url)
	if names := toolNames(t, cs); !slices.Contains(names, "list_tables") {
		t.Errorf("tools through a sealed login: %v", names)
	}
	c.env = append(c.env, "MCPGUARD_TOKEN_KEY=") // the key is gone
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, _, err = c.connect(ctx, s.url)
	if err == nil {
		_, err = cs.ListTools(ctx, nil)
		cs.Close()
		if err == nil {
			t.Fatal("connect used the sealed login without the key")
		}
	}
	if !strings.Contains(err.Error(), "is encrypted: set MCPGUARD_TOKEN_KEY") {
		t.Errorf("without the key: %v", err)
	}
}

// sameScopes reports whether a stored scope list (JSON-decoded) holds
// exactly want, in any order.
func sameScopes(got any, want ...string) bool {
	list, _ := got.([]any)
	var names []string
	for _, v := range list {
		s, _ := v.(string)
		names = append(names, s)
	}
	slices.Sort(names)
	slices.Sort(want)
	return slices.Equal(names, want)
}
