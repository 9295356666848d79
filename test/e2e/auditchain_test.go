package e2e

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestAuditChainSurvivesKillAndCatchesTampering kills mcpguard with SIGKILL
// in the middle of a burst of audited calls, verifies the chain it left,
// then tampers with the log in the ways an insider would and checks that
// verify names each.
func TestAuditChainSurvivesKillAndCatchesTampering(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, nil, "--demo")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		cs := mustConnect(t, s.url, bearer(s.keys["admin"]))
		wg.Go(func() {
			for ctx.Err() == nil {
				cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_tables", Arguments: map[string]any{}})
			}
		})
	}
	waitAudit(t, s.auditLg, func(r map[string]any) bool { n, _ := r["seq"].(float64); return n >= 40 })
	s.kill() // SIGKILL mid-burst
	cancel()
	wg.Wait()

	out, err := run(t, dir, nil, "audit", "verify")
	if err != nil || !strings.Contains(out, "records verified") || !strings.Contains(out, "macs checked: true") || !strings.Contains(out, "signatures checked: true") {
		t.Fatalf("verify after kill -9: %v\n%s", err, out)
	}

	orig, err := os.ReadFile(s.auditLg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(orig), "\n")
	if len(lines) < 20 {
		t.Fatalf("only %d lines", len(lines))
	}
	for name, tc := range map[string]struct {
		tamper func([]string) []string
		want   string
	}{
		"field changed": {func(l []string) []string {
			l[10] = strings.Replace(l[10], `"user":"admin"`, `"user":"nobody"`, 1)
			return l
		}, "mac mismatch"},
		"record deleted": {func(l []string) []string { return append(l[:10:10], l[11:]...) }, "seq gap"},
		"records swapped": {func(l []string) []string {
			l[10], l[11] = l[11], l[10]
			return l
		}, "seq"},
		"forged record inserted": {func(l []string) []string {
			forged := strings.Replace(l[10], `"decision":"ALLOWED"`, `"decision":"DENIED"`, 1)
			return append(l[:11:11], append([]string{forged}, l[11:]...)...)
		}, ""},
		"truncated mid-line": {func(l []string) []string {
			last := len(l) - 1
			for last > 0 && l[last] == "" {
				last--
			}
			l[last] = l[last][:len(l[last])/2]
			return l[:last+1]
		}, "truncated"},
	} {
		t.Run(name, func(t *testing.T) {
			tampered := tc.tamper(append([]string(nil), lines...))
			if err := os.WriteFile(s.auditLg, []byte(strings.Join(tampered, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(s.auditLg, orig, 0o600)
			out, err := run(t, dir, nil, "audit", "verify")
			if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, tc.want) {
				t.Fatalf("verify accepted a %s log or did not say why: %v\n%s", name, err, out)
			}
			if !strings.Contains(out, "line") {
				t.Fatalf("verify did not name the record:\n%s", out)
			}
		})
	}
}

// TestAuditKeyRotation rotates the HMAC key between two runs and checks the
// chain still verifies with the new key and the previous one configured.
func TestAuditKeyRotation(t *testing.T) {
	dir := t.TempDir()
	k1 := "K1=" + strings.Repeat("1", 40)
	k2 := "K2=" + strings.Repeat("2", 40)
	first := writeConfig(t, dir, "audit:\n  hmac_key: env:K1\n")
	s := start(t, dir, []string{k1}, "--config", first, "--demo")
	post(t, s.url, bearer(s.keys["viewer"]), initBody)
	waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["user"] == "viewer" })
	s.kill()

	second := writeConfig(t, dir, "audit:\n  hmac_key: env:K2\n  previous_hmac_keys: [env:K1]\n")
	s = start(t, dir, []string{k1, k2}, "--config", second)
	post(t, s.url, http.Header{}, initBody) // an AUTH_FAILED record under the new key
	waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["decision"] == "AUTH_FAILED" })
	s.kill()

	out, err := run(t, dir, []string{k1, k2}, "--config", second, "audit", "verify")
	if err != nil || !strings.Contains(out, "records verified") {
		t.Fatalf("verify across a key rotation: %v\n%s", err, out)
	}
	// Without the previous key, the old lines cannot be checked.
	only := writeConfig(t, dir, "audit:\n  hmac_key: env:K2\n")
	out, err = run(t, dir, []string{k2}, "--config", only, "audit", "verify")
	if err == nil || !strings.Contains(out, "unknown key id") {
		t.Fatalf("verify without the previous key: %v\n%s", err, out)
	}
}
