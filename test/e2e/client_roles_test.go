package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Helper roles of this test binary, for `mcpguard login` / `connect` tests.
// TestMain runs one instead of the tests when MCPGUARD_E2E_ROLE is set:
//
//   - "browser": the scripted browser that mcpguard opens through $BROWSER.
//     It fetches the authorization URL, submits mcpguard's sign-in and
//     consent forms (MCP_USERNAME, MCP_PASSWORD) or follows an
//     authorization server that redirects at once (the conformance suite's),
//     and delivers the final redirect to mcpguard's loopback listener, as a
//     person's browser would. Each run appends a line to
//     $MCPGUARD_BROWSER_LOG, so tests can count sign-ins.
//   - "conformance-client": the client command that the official MCP
//     conformance suite runs as `CMD SERVER_URL`. It starts
//     `mcpguard connect --login SERVER_URL` (with this binary as the
//     browser) and talks MCP to it over stdio with the go-sdk client:
//     tools/list, then tools/call test-tool, as the suite expects.
const roleEnv = "MCPGUARD_E2E_ROLE"

// conformanceCIMD is the client metadata document URL the conformance
// suite's basic-cimd scenario expects.
const conformanceCIMD = "https://conformance-test.local/client-metadata.json"

// runRole runs the helper role and returns the exit code.
func runRole(role string) int {
	var err error
	switch role {
	case "browser":
		err = scriptedBrowser(os.Args[len(os.Args)-1])
		if lg := os.Getenv("MCPGUARD_BROWSER_LOG"); lg != "" {
			if f, ferr := os.OpenFile(lg, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); ferr == nil {
				fmt.Fprintf(f, "signin err=%v\n", err)
				f.Close()
			}
		}
	case "conformance-client":
		err = conformanceClient(os.Args[len(os.Args)-1])
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

var (
	formRE   = regexp.MustCompile(`(?s)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
)

// scriptedBrowser plays a person's browser from authURL to the redirect.
func scriptedBrowser(authURL string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	method, target, form := "GET", authURL, url.Values(nil)
	for range 10 {
		var resp *http.Response
		var err error
		if method == "POST" {
			resp, err = c.PostForm(target, form)
		} else {
			resp, err = c.Get(target)
		}
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		u, _ := url.Parse(target)
		if u.Hostname() == "127.0.0.1" && u.Path == "/callback" {
			if resp.StatusCode != 200 {
				return fmt.Errorf("the loopback listener answered %d: %s", resp.StatusCode, body)
			}
			return nil
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			next, err := u.Parse(resp.Header.Get("Location"))
			if err != nil {
				return err
			}
			method, target, form = "GET", next.String(), nil
		case resp.StatusCode == 200:
			m := formRE.FindStringSubmatch(string(body))
			if m == nil {
				return fmt.Errorf("page without a form at %s: %.300s", u.Path, body)
			}
			action, err := u.Parse(html.UnescapeString(m[1]))
			if err != nil {
				return err
			}
			form = url.Values{}
			if h := hiddenRE.FindStringSubmatch(m[2]); h != nil {
				form.Set("csrf_token", html.UnescapeString(h[1]))
			}
			switch {
			case strings.HasSuffix(action.Path, "/oauth/login"):
				form.Set("username", os.Getenv("MCP_USERNAME"))
				form.Set("password", os.Getenv("MCP_PASSWORD"))
			case strings.HasSuffix(action.Path, "/oauth/consent"):
				form.Set("decision", "allow")
			default:
				return fmt.Errorf("unexpected form %s", action.Path)
			}
			method, target = "POST", action.String()
		default:
			return fmt.Errorf("%s answered %d: %.300s", u.Path, resp.StatusCode, body)
		}
	}
	return errors.New("too many steps")
}

// conformanceClient is the command the conformance suite runs.
func conformanceClient(serverURL string) error {
	var cctx map[string]any
	if v := os.Getenv("MCP_CONFORMANCE_CONTEXT"); v != "" {
		if err := json.Unmarshal([]byte(v), &cctx); err != nil {
			return fmt.Errorf("MCP_CONFORMANCE_CONTEXT: %w", err)
		}
	}
	tokens, err := os.MkdirTemp("", "mcpguard-conformance-tokens")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tokens)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"connect", "--login", "--token-dir", tokens, "--client-metadata-url", conformanceCIMD}
	env := append(os.Environ(), "BROWSER="+self, roleEnv+"=browser")
	if id, _ := cctx["client_id"].(string); id != "" {
		args = append(args, "--client-id", id)
		secret, _ := cctx["client_secret"].(string)
		env = append(env, "MCPGUARD_CLIENT_SECRET="+secret)
	}
	cmd := exec.Command(os.Getenv("MCPGUARD_BINARY"), append(args, serverURL)...)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpguard-conformance", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: time.Second}, nil)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer cs.Close()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	if !slices.ContainsFunc(lt.Tools, func(t *mcp.Tool) bool { return t.Name == "test-tool" }) {
		fmt.Fprintln(os.Stderr, "conformance-client: no test-tool listed; calling it anyway")
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test-tool", Arguments: map[string]any{}}); err != nil {
		return fmt.Errorf("tools/call test-tool: %w", err)
	}
	return nil
}
