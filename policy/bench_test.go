package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/guard"
)

// manyPolicies writes n policies, each about its own tool: a role permit
// with an argument condition for most, a time-window forbid for every
// tenth, as a deployment with many tools would have.
func manyPolicies(n int) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i%10 == 9 {
			fmt.Fprintf(&b, "@id(\"f%d\") forbid(principal, action == Action::\"tools/call\", resource == Tool::\"tool%d\") unless { context.time.hour >= 8 && context.time.hour < 20 };\n", i, i-1)
			continue
		}
		fmt.Fprintf(&b, "@id(\"p%d\") permit(principal in Role::\"developer\", action == Action::\"tools/call\", resource == Tool::\"tool%d\") when { context.arguments has limit && context.arguments.limit <= 100 };\n", i, i)
	}
	return []byte(b.String())
}

// benchDecision measures one decision by a developer with n policies
// besides the seed role model, after checking it is allowed.
func benchDecision(b *testing.B, n int, a guard.Action) {
	e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "many.cedar", Data: manyPolicies(n)}}})
	if err != nil {
		b.Fatal(err)
	}
	p := &guard.Principal{Subject: "dan", Method: guard.MethodAPIKey, Roles: []string{"developer"}}
	if d := e.Authorize(context.Background(), p, a); !d.Allowed {
		b.Fatalf("not allowed: %s %v", d.Reason, d.Policies)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Authorize(context.Background(), p, a)
	}
}

var benchRequest = &guard.RequestInfo{Time: weekdayNoon, ClientIP: "127.0.0.1", Transport: "http"}

// BenchmarkDecision measures a tools/call allowed by an argument
// condition and checked against a time window, with 10, 1,000 and 10,000
// hand-written policies.
func BenchmarkDecision(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			benchDecision(b, n, guard.Action{Method: "tools/call", Target: "tool8", Arguments: []byte(`{"limit":10,"q":"x"}`), Request: benchRequest})
		})
	}
}

// BenchmarkDecisionRoleOnly is the common case: a tools/call a role
// permits, with no conditions on its arguments, among 10,000 policies
// about other tools.
func BenchmarkDecisionRoleOnly(b *testing.B) {
	benchDecision(b, 10000, guard.Action{Method: "tools/call", Target: "describe_table", Arguments: []byte(`{"table":"orders"}`), Request: benchRequest})
}

// BenchmarkListItem measures deciding whether one tool is listed (its
// arguments unknown), with 10,000 policies.
func BenchmarkListItem(b *testing.B) {
	benchDecision(b, 10000, guard.Action{Method: "tools/call", Target: "tool8", Listing: true, Request: benchRequest})
}
