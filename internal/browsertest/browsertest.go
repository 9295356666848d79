// Package browsertest starts Debian's headless Chromium for page tests,
// driven by chromedp.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// Context returns a chromedp context on a fresh headless Chromium that ends
// with the test, bounded by timeout. Without Chromium the test is skipped
// loudly, or fails when CI=true; in -short mode it is skipped.
func Context(t *testing.T, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is missing (%v): install it with `apt-get install -y chromium`", ChromiumPath, err)
		}
		t.Skipf("SKIPPING THE BROWSER TEST: %s not found. Install it with `apt-get update && apt-get install -y chromium` to run it.", ChromiumPath)
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	bctx, cancelTimeout := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	return bctx
}
