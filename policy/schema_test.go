package policy

import (
	"strings"
	"testing"
)

var seedTools = []Tool{
	{Name: "execute_sql", InputSchema: []byte(`{"type":"object","properties":{"schema":{"type":"string"},"sql":{"type":"string"}}}`)},
	{Name: "delete_users", InputSchema: []byte(`{"type":"object","properties":{"ids":{"type":"array","items":{"type":"integer"}}}}`)},
	{Name: "query", InputSchema: []byte(`{"type":"object","properties":{"table":{"type":"string"},"limit":{"type":"integer"}}}`)},
	{Name: "update_profile", InputSchema: []byte(`{"type":"object","properties":{"user":{"type":"string"},"bio":{"type":"string"}}}`)},
	{Name: "odd", InputSchema: []byte(`{"type":"object","properties":{"limit":{"type":"string"},"blob":{}}}`)},
}

func TestCheckAcceptsTheSeedPolicies(t *testing.T) {
	e := newSeedEngine(t)
	problems, skipped, err := e.Check(seedTools)
	if len(skipped) != 2 {
		t.Errorf("skipped = %q, want the untyped blob and the conflicting limit", skipped)
	}
	if err != nil {
		text, _ := Schema(seedTools)
		t.Fatalf("schema:\n%s\nerror: %v", text, err)
	}
	for _, p := range problems {
		t.Errorf("unexpected problem: %v", p)
	}
}

func TestCheckFindsTypos(t *testing.T) {
	for _, tc := range []struct{ name, policy, want string }{
		{"argument typo", `@id("typo") forbid(principal, action == Action::"tools/call", resource == Tool::"execute_sql") unless { context.arguments has shema && context.arguments.shema == "analytics" };`, `reads argument "shema"`},
		{"principal attribute typo", `@id("p") permit(principal, action == Action::"tools/call", resource) when { principal.mfa_agee < 60 };`, "mfa_agee"},
		{"type error", `@id("t") permit(principal, action == Action::"tools/call", resource) when { context.time.hour == "nine" };`, "policy t"},
		{"unknown entity type", `@id("u") permit(principal in Team::"x", action, resource);`, "Team"},
		{"unguarded optional argument", `@id("g") permit(principal, action == Action::"tools/call", resource) when { context.arguments.schema == "a" };`, "policy g"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "p.cedar", Data: []byte(tc.policy)}}})
			if err != nil {
				t.Fatal(err)
			}
			problems, _, err := e.Check(seedTools)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != 1 || !strings.Contains(problems[0].Error(), tc.want) || !strings.Contains(problems[0].Error(), "p.cedar:1") {
				t.Fatalf("problems = %v, want one naming %q at p.cedar:1", problems, tc.want)
			}
		})
	}
}
