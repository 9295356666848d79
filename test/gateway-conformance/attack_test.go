package gatewaytest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpguard/mcpguard/internal/mcptest"
)

// TestTokenPassthroughAttack checks both halves of the MCP specification's
// ban on token passthrough, through the gateway: a credential that was
// issued for an upstream (not for mcpguard) is refused at mcpguard's door
// and audited, and nothing the caller sends to authenticate itself (its
// bearer token, cookies, API-key and proxy headers) reaches the upstream,
// which receives only the credential configured for it.
func TestTokenPassthroughAttack(t *testing.T) {
	dir := t.TempDir()
	webURL := startFixtureHTTP(t)
	cfg := baseConfig(dir) + `roles:
  dev:
    permissions: ["tools:call:web__*"]
upstreams:
  - name: web
    url: ` + webURL + `
    headers: {Authorization: "env:WEB_AUTH"}
`
	writeConfig(t, dir, cfg)
	alice := createKey(t, dir, "alice", "dev")
	const upstreamCred = "Bearer web-upstream-secret"
	gw := startGateway(t, dir, cfg, []string{"WEB_AUTH=" + upstreamCred})

	// The upstream's own credential, presented to mcpguard, opens nothing.
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"attacker","version":"1"}}}`
	req, _ := http.NewRequest(http.MethodPost, gw.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", upstreamCred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("the upstream's credential at mcpguard: %d %q, want 401 with a Bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	rec := waitAudit(t, dir, func(r map[string]any) bool { return r["decision"] == "AUTH_FAILED" })
	if b, _ := json.Marshal(rec); strings.Contains(string(b), "web-upstream-secret") {
		t.Errorf("the audit record holds the presented credential: %s", b)
	}

	// The caller's own credentials stay with mcpguard.
	h := mcptest.Bearer(alice)
	h.Set("Cookie", "session=caller-cookie")
	h.Set("X-Api-Key", "caller-x-api-key")
	h.Set("Proxy-Authorization", "Basic Y2FsbGVyOnNlY3JldA==")
	cs, err := mcptest.Connect(t, gw.url, h)
	if err != nil {
		t.Fatal(err)
	}
	text, isErr := callText(t, cs, "web__fixture_headers", nil)
	if isErr {
		t.Fatalf("web__fixture_headers: %s", text)
	}
	var got http.Header
	if err := json.Unmarshal([]byte(text), &got); err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	if a := got.Values("Authorization"); len(a) != 1 || a[0] != upstreamCred {
		t.Errorf("upstream Authorization = %q, want only its configured credential", a)
	}
	for _, name := range []string{"Cookie", "X-Api-Key", "Proxy-Authorization"} {
		if v := got.Values(name); len(v) > 0 {
			t.Errorf("upstream received the caller's %s: %q", name, v)
		}
	}
	for _, secret := range []string{alice, "caller-cookie", "caller-x-api-key", "Y2FsbGVyOnNlY3JldA"} {
		if strings.Contains(text, secret) {
			t.Errorf("upstream received the caller's secret %q: %s", secret, text)
		}
	}
	waitAudit(t, dir, func(r map[string]any) bool {
		return r["target"] == "web__fixture_headers" && r["decision"] == "ALLOWED" && r["user"] == "alice"
	})
}

// TestUpstreamHangs checks an upstream that never answers, over stdio and
// over HTTP, and ignores cancellation: every call ends with a clear timeout
// error within the upstream's timeout (not a hang), is audited, and the
// gateway's goroutines (its own go_goroutines metric) come back down
// afterwards, round after round: nothing leaks per hung call.
func TestUpstreamHangs(t *testing.T) {
	dir := t.TempDir()
	webURL := startFixtureHTTP(t)
	metricsAddr := freePort(t)
	cfg := strings.Replace(baseConfig(dir), "metrics:\n  enabled: false\n",
		"metrics:\n  enabled: true\n  addr: "+metricsAddr+"\n", 1) + `roles:
  user:
    permissions: ["tools:call:*"]
upstreams:
  - name: fx
    command: [` + fixtureBin + `]
    timeout: 1s
  - name: web
    url: ` + webURL + `
    timeout: 1s
`
	writeConfig(t, dir, cfg)
	alice := createKey(t, dir, "alice", "user")
	gw := startGateway(t, dir, cfg, nil)
	metricsURL := "http://" + metricsAddr + "/metrics"

	const perUpstream = 10
	round := func(n int) {
		cs := connect(t, gw.url, alice)
		defer cs.Close()
		// Both upstreams answer normally first.
		for _, name := range []string{"fx__test_simple_text", "web__test_simple_text"} {
			if _, isErr := callText(t, cs, name, nil); isErr {
				t.Fatalf("round %d: %s failed", n, name)
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 2*perUpstream)
		for i := 0; i < 2*perUpstream; i++ {
			name := "fx__fixture_hang"
			if i%2 == 1 {
				name = "web__fixture_hang"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name})
				if err == nil || !strings.Contains(err.Error(), "did not answer within 1s") {
					errs <- fmt.Errorf("%s: %v, want a timeout error", name, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", n, err)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("round %d: %d hung calls took %s to end; the timeout is 1s", n, 2*perUpstream, d)
		}
		// Both upstreams still answer.
		for _, name := range []string{"fx__test_simple_text", "web__test_simple_text"} {
			if _, isErr := callText(t, cs, name, nil); isErr {
				t.Fatalf("round %d: %s failed after the hung calls", n, name)
			}
		}
	}

	round(0) // warms up connections, caches and worker goroutines
	base := settledGoroutines(t, metricsURL, -1)
	round(1)
	after1 := settledGoroutines(t, metricsURL, base)
	round(2)
	round(3)
	after3 := settledGoroutines(t, metricsURL, base)
	t.Logf("gateway goroutines: %d after warm-up, %d after 20 hung calls, %d after 60", base, after1, after3)
	// Each round leaves 20 hung calls behind at the upstreams; a leak of
	// even one goroutine per call would show as 20 or more per round.
	if after3-base > 10 {
		t.Errorf("goroutines grew from %d to %d over 60 hung upstream calls", base, after3)
	}

	hung := 0
	for _, r := range auditRecords(t, dir) {
		if t, _ := r["target"].(string); strings.HasSuffix(t, "__fixture_hang") && r["decision"] == "ALLOWED" {
			hung++
		}
	}
	if want := 4 * 2 * perUpstream; hung != want {
		t.Errorf("%d audit records of hung calls, want %d", hung, want)
	}
}

// settledGoroutines reads the go_goroutines gauge from metricsURL until it
// stops falling (or, with target ≥ 0, until it is at most target + 2), and
// returns it.
func settledGoroutines(t *testing.T, metricsURL string, target int) int {
	t.Helper()
	read := func() int {
		resp, err := http.Get(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return int(n)
			}
		}
		t.Fatal("no go_goroutines in " + metricsURL)
		return 0
	}
	last, stable := read(), 0
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		n := read()
		switch {
		case target >= 0 && n <= target+2:
			return n
		case n >= last:
			stable++
		default:
			stable = 0
		}
		last = n
		if target < 0 && stable >= 8 {
			return n
		}
	}
	return last
}
