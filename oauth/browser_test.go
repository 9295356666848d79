package oauth_test

import (
	"bytes"
	"context"
	"github.com/mcpguard/mcpguard/internal/browsertest"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mcpguard/mcpguard/authn/totp"
)

// TestBrowserSignInMFAConsent drives headless Chromium through the sign-in,
// MFA and consent pages with real typing and clicks, checks the pages raise
// no console error (a CSP violation would), checks the consent page's
// screenshot, and ends on the client's redirect URI with a code.
func TestBrowserSignInMFAConsent(t *testing.T) {
	bctx := browsertest.Context(t, 900, 900, 90*time.Second)
	e := newEnv(t, nil)
	var got url.Values
	var mu sync.Mutex
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.URL.Query()
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html lang="en"><head><link rel="icon" href="data:,"><title>Done</title></head><body><h1 id="done">Signed in</h1></body></html>`))
	}))
	defer cb.Close()
	cid := e.register(cb.URL + "/callback")

	var consoleErrs []string
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				consoleErrs = append(consoleErrs, "console.error")
			}
		case *runtime.EventExceptionThrown:
			consoleErrs = append(consoleErrs, "exception: "+ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				consoleErrs = append(consoleErrs, string(ev.Entry.Source)+": "+ev.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("browser: %v at %s:\n%s", err, loc, body)
		}
	}
	_, challenge := pkce()
	authURL := e.ts.URL + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {cid}, "redirect_uri": {cb.URL + "/callback"}, "state": {"browser-state"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "resource": {e.resource}, "scope": {"mcp:read mcp:admin"},
	}.Encode()

	if _, err := chromedp.Call(bctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	do(chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("username")))
	do(chromedp.SendKeys(chromedp.ID("username"), "mfa"), chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("sign-in")), chromedp.WaitVisible(chromedp.ID("code")))
	code, _ := totp.GenerateCode(e.mfaKey, e.now)
	do(chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("allow")))
	consentText, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	do(chromedp.Click(chromedp.ID("allow")), chromedp.WaitVisible(chromedp.ID("done")))

	for _, want := range []string{"Allow access?", "Test client", "mcp:admin", "mcp:read", "Signed in as mfa", "127.0.0.1"} {
		if !strings.Contains(consentText, want) {
			t.Errorf("the consent page lacks %q:\n%s", want, consentText)
		}
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
		t.Fatalf("screenshot of %v", b)
	}
	// The page is rendered, not blank: its pixels are not all one colour.
	colours := map[uint32]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 7 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 7 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|b>>8] = true
		}
	}
	if len(colours) < 4 {
		t.Fatalf("the screenshot has %d colours: the page did not render (CSS blocked?)", len(colours))
	}
	dir := os.Getenv("MCPGUARD_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	os.WriteFile(filepath.Join(dir, "mcpguard-oauth-consent.png"), shot, 0o644)

	mu.Lock()
	defer mu.Unlock()
	if got.Get("code") == "" || got.Get("state") != "browser-state" || got.Get("iss") != e.ts.URL {
		t.Fatalf("the client received %v", got)
	}
	if status, tok := e.exchangeAt(cid, got.Get("code"), cb.URL+"/callback"); status != 200 || tok["scope"] != "mcp:read mcp:admin" {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if len(consoleErrs) > 0 {
		t.Fatalf("console errors: %q", consoleErrs)
	}
}
