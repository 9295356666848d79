package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSecretsNeverLeak runs mcpguard with every kind of secret it handles
// (a master key, secrets from the encrypted store used as a JWT key and the
// audit HMAC key, API keys, a rotated API key, JWTs valid and forged) and
// then scans everything it wrote: the server's output, the audit log, the
// CLI's output and a configuration dump. None may contain a secret.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	rnd := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	master := rnd(32)
	jwtKey := "jwt-hmac-" + rnd(24)
	auditKey := "audit-hmac-" + rnd(24)
	env := []string{"MCPGUARD_MASTER_KEY=" + master}
	var outputs []string
	cli := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runInput(t, dir, env, stdin, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		outputs = append(outputs, out)
		return out
	}
	cli(jwtKey+"\n", "secrets", "set", "jwt-hmac")
	cli(auditKey+"\n", "secrets", "set", "audit-hmac")
	if out := cli("", "secrets", "list"); !strings.Contains(out, "jwt-hmac") || !strings.Contains(out, "audit-hmac") {
		t.Fatalf("secrets list:\n%s", out)
	}
	if out := cli("", "secrets", "get", "jwt-hmac"); out != jwtKey {
		t.Fatalf("secrets get returned %d bytes, not the stored value", len(out))
	}
	outputs = outputs[:len(outputs)-1] // printing the value is get's purpose
	cfg := `auth:
  jwt:
    enabled: true
    issuer: ` + issuer + `
    audiences: [` + audience + `]
    keys:
      - {kid: k1, alg: HS256, secret: secret:jwt-hmac}
audit:
  log: ./mcpguard-audit.log
  hmac_key: secret:audit-hmac
`
	if err := os.WriteFile(filepath.Join(dir, "mcpguard.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, env, "--demo", "--config", "mcpguard.yaml")
	if !strings.Contains(s.output.String(), "[OK] Secrets sealed with master key") || strings.Contains(s.output.String(), "No master key") {
		t.Fatalf("startup does not report the master key:\n%s", s.output.String())
	}
	ctx := context.Background()

	// A JWT signed with the key from the store works; a forged one does not.
	now := time.Now()
	good := sign(t, jose.HS256, "k1", []byte(jwtKey), claims{Claims: josejwt.Claims{Issuer: issuer, Subject: "jay", Audience: josejwt.Audience{audience},
		Expiry: josejwt.NewNumericDate(now.Add(time.Hour)), ID: "jti-" + rnd(4)}, Roles: []string{"viewer"}})
	forged := sign(t, jose.HS256, "k1", []byte("not-the-key-0123456789abcdef0123456789"), claims{Claims: josejwt.Claims{Issuer: issuer, Subject: "mallory",
		Audience: josejwt.Audience{audience}, Expiry: josejwt.NewNumericDate(now.Add(time.Hour))}, Roles: []string{"admin"}})
	cs := mustConnect(t, s.url, bearer(good))
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_tables", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("JWT signed with the stored key: %v %v", err, res)
	}
	if _, err := connect(t, s.url, bearer(forged)); err == nil {
		t.Fatal("a forged JWT was accepted")
	}

	// API keys, including one rotated with a grace period: both secrets
	// work, and the old one's use is marked in the audit log.
	oldKey := s.keys["developer"]
	id := regexp.MustCompile(`^mcp_([0-9a-f]{16})_`).FindStringSubmatch(oldKey)[1]
	newKey := regexp.MustCompile(`mcp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`).FindString(cli("", "keys", "rotate", id, "--grace", "1h"))
	if newKey == "" || newKey == oldKey {
		t.Fatal("keys rotate printed no new key")
	}
	for _, k := range []string{newKey, oldKey} {
		c := mustConnect(t, s.url, bearer(k))
		if res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT 1"}}); err != nil || res.IsError {
			t.Fatalf("rotated key: %v %v", err, res)
		}
	}
	waitAudit(t, s.auditLg, func(r map[string]any) bool { return r["key_previous_secret"] == true && r["key_id"] == id })
	post(t, s.url, bearer("mcp_"+id+"_"+strings.Repeat("A", 43)), initBody)

	dump := cli("", "config", "show")
	if !strings.Contains(dump, "secret:jwt-hmac") || !strings.Contains(dump, "env:MCPGUARD_MASTER_KEY") {
		t.Fatalf("config show does not show the references:\n%s", dump)
	}
	s.kill()

	audit, err := os.ReadFile(s.auditLg)
	if err != nil {
		t.Fatal(err)
	}
	everything := map[string]string{
		"server output": s.output.String(),
		"audit log":     string(audit),
		"cli output":    strings.Join(outputs, "\n"),
	}
	// The CLI prints each API key once, on purpose (creation, rotation):
	// exclude those lines, and nothing else.
	everything["cli output"] = regexp.MustCompile(`(?m)^\s*mcp_[0-9a-f]{16}_\S+\s*$`).ReplaceAllString(everything["cli output"], "")
	everything["server output"] = demoKeyRE.ReplaceAllString(everything["server output"], "")
	secrets := map[string]string{
		"master key": master, "JWT HMAC key": jwtKey, "audit HMAC key": auditKey,
		"valid JWT": good, "forged JWT": forged, "JWT signature": good[strings.LastIndex(good, ".")+1:],
		"old API key secret": oldKey[len("mcp_")+17:], "new API key secret": newKey[len("mcp_")+17:],
	}
	for where, text := range everything {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s contains the %s", where, what)
			}
		}
	}
	if !strings.Contains(string(audit), `"decision":"AUTH_FAILED"`) {
		t.Fatal("the forged credentials were not audited (the scan would prove little)")
	}
}
