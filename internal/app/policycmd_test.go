package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/internal/config"
)

func policyConfig(t *testing.T, policies string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(policies), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Policies.Dir = dir
	return cfg
}

func TestPolicyTestPrintsTheDecision(t *testing.T) {
	cfg := policyConfig(t, `@id("mfa-delete") @step_up_mfa("300")
forbid(principal, action == Action::"tools/call", resource == Tool::"delete_users") unless { principal.mfa_age <= 300 };`)
	var out bytes.Buffer
	o := PolicyTestOptions{Subject: "ann", Method: "oauth", Roles: []string{"admin"}, Action: "tools/call", Resource: "delete_users",
		Context: `{"arguments":{"ids":[1]},"ip":"10.0.0.1","time":"2026-11-23T10:00:00Z"}`, MFAAge: -1, Expect: "deny"}
	if err := PolicyTest(&out, cfg, o); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"decision: DENY", "determined by: mfa-delete (" + filepath.Join(cfg.Policies.Dir, "p.cedar") + ":1)", "step-up: a second factor within 5m0s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	o.MFAAge, o.Expect = 60e9, "deny"
	out.Reset()
	err := PolicyTest(&out, cfg, o)
	if err == nil || !strings.Contains(err.Error(), "expected deny, got allow") || !strings.Contains(out.String(), "decision: ALLOW") {
		t.Fatalf("fresh MFA: err=%v\n%s", err, out.String())
	}
	o.Context = `{"argumentz":{}}`
	if err := PolicyTest(&out, cfg, o); err == nil || !strings.Contains(err.Error(), "--context") {
		t.Fatalf("unknown context field: %v", err)
	}
}

func TestPolicyCheckReportsTypos(t *testing.T) {
	cfg := policyConfig(t, `@id("ok") forbid(principal, action == Action::"tools/call", resource == Tool::"delete_users") when { context.sizes has ids && context.sizes.ids > 10 };
@id("typo") forbid(principal, action == Action::"tools/call", resource == Tool::"execute_sql") unless { context.arguments has sequel };`)
	var out bytes.Buffer
	err := PolicyCheck(context.Background(), &out, cfg, noEnv)
	if err == nil || !strings.Contains(out.String(), `policy typo: reads argument "sequel", which no tool declares`) || strings.Contains(out.String(), "policy ok") {
		t.Fatalf("err=%v\n%s", err, out.String())
	}
}

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }
