package admin_test

import (
	"context"
	"github.com/mcpguard/mcpguard/internal/browsertest"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mcpguard/mcpguard/admin"
	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store/sqlite"
)

// leadScreenshot is where a copy of the screenshot is left for people to
// look at.
const leadScreenshot = "/tmp/mcpguard-admin.png"

// TestBrowserLogin drives a real headless Chromium through the sign-in form
// to the dashboard and saves full-page screenshots.
func TestBrowserLogin(t *testing.T) {
	bctx := browsertest.Context(t, 1440, 1000, 90*time.Second)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	recs := browserRecords(now)
	if err := st.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	key, _, err := apikey.Create(ctx, st, apikey.CreateOptions{Name: "admin", Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := admin.New(admin.Options{
		Store:         st,
		Authenticator: apikey.New(st, nil),
		SessionKey:    []byte("0123456789abcdef0123456789abcdef"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("browser: %v", err)
		}
	}
	text := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(bctx, a)
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		return v
	}
	screenshot := func() []byte {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("browser: screenshot: %v", err)
		}
		return png
	}

	// An unauthenticated visit lands on the sign-in form.
	do(chromedp.Navigate(srv.URL+"/admin/"), chromedp.WaitVisible(chromedp.ID("credential")))
	loginURL := text(chromedp.Location())
	loginShot := screenshot()
	// A person types the key and signs in.
	do(chromedp.SendKeys(chromedp.ID("credential"), key), chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("denials")))
	dashURL := text(chromedp.Location())
	denials := text(chromedp.Text(chromedp.ID("denials")))
	decisions := text(chromedp.Text(chromedp.ID("decisions")))
	who := text(chromedp.Text(chromedp.CSS(".who")))
	shot := screenshot()

	if !strings.HasSuffix(loginURL, "/admin/login") {
		t.Errorf("unauthenticated visit ended at %s, want the sign-in page", loginURL)
	}
	if dashURL != srv.URL+"/admin/" {
		t.Errorf("after sign-in the browser is at %s, want %s/admin/", dashURL, srv.URL)
	}
	if !strings.Contains(who, "admin") {
		t.Errorf("header %q does not name the signed-in admin", who)
	}
	for _, want := range []string{"DENIED", "delete_users", "tool delete_users requires role admin", "AUTH_FAILED", "RATE_LIMITED", "203.0.113.50"} {
		if !strings.Contains(denials, want) {
			t.Errorf("denials section lacks %q:\n%s", want, denials)
		}
	}
	if strings.Contains(denials, "ALLOWED") {
		t.Errorf("denials section lists an allowed call:\n%s", denials)
	}
	if !strings.Contains(decisions, "ALLOWED") || !strings.Contains(decisions, "list_tables") {
		t.Errorf("decisions section lacks the allowed calls:\n%s", decisions)
	}
	if strings.Contains(denials+decisions, key) {
		t.Error("the page shows the API key")
	}

	dir := os.Getenv("MCPGUARD_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	for path, png := range map[string][]byte{
		filepath.Join(dir, "mcpguard-admin-login.png"): loginShot,
		filepath.Join(dir, "mcpguard-admin.png"):       shot,
		leadScreenshot:                                 shot,
	} {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Errorf("save screenshot: %v", err)
			continue
		}
		t.Logf("screenshot saved to %s (%d bytes)", path, len(png))
	}
	if len(shot) < 8 || string(shot[1:4]) != "PNG" {
		t.Error("screenshot is not a PNG")
	}
}

// browserRecords is a small, realistic audit history ending at now.
func browserRecords(now time.Time) []guard.Record {
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	r := func(d time.Duration, user, roles, method, target string, decision guard.Outcome, reason, client string) guard.Record {
		rec := guard.Record{Time: at(d), Subject: user, Method: method, Target: target, Decision: decision, Reason: reason, ClientAddr: client, Transport: "http"}
		if roles != "" {
			rec.Roles = strings.Split(roles, ",")
		}
		return rec
	}
	return []guard.Record{
		r(58*time.Minute, "viewer", "viewer", "tools/list", "", guard.Allowed, "", "127.0.0.1"),
		r(55*time.Minute, "viewer", "viewer", "tools/call", "list_tables", guard.Allowed, "tool list_tables requires role viewer: held", "127.0.0.1"),
		r(47*time.Minute, "developer", "developer", "tools/call", "query", guard.Allowed, "tool query requires role viewer: held", "10.1.4.22"),
		r(41*time.Minute, "developer", "developer", "tools/call", "delete_users", guard.Denied, "tool delete_users requires role admin", "10.1.4.22"),
		r(33*time.Minute, "", "", "tools/call", "query", guard.AuthFailed, "api key: unknown key id 9a0c51d2e77f0b13", "203.0.113.50"),
		r(27*time.Minute, "developer", "developer", "tools/call", "execute_sql", guard.Allowed, "tool execute_sql requires role developer: held", "10.1.4.22"),
		r(19*time.Minute, "viewer", "viewer", "tools/call", "drop_table", guard.Denied, "tool drop_table requires role admin", "127.0.0.1"),
		r(12*time.Minute, "developer", "developer", "tools/call", "query", guard.RateLimited, "rate limit exceeded (identity); retry after 4s", "10.1.4.22"),
		r(6*time.Minute, "admin", "admin", "tools/call", "describe_table", guard.Allowed, "tool describe_table requires role viewer: held", "127.0.0.1"),
		r(2*time.Minute, "admin", "admin", "tools/call", "drop_table", guard.Allowed, "tool drop_table requires role admin: held", "127.0.0.1"),
	}
}
