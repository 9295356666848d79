package policy

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mcpguard/mcpguard/guard"
)

// FuzzPolicyAndArguments compiles arbitrary policy text and decides a call
// with arbitrary arguments under it: nothing may panic, a text that does
// not compile is an error (never a partial set), and a call that is
// allowed must be listed (the list's partial evaluation may not hide a
// tool some call can use).
func FuzzPolicyAndArguments(f *testing.F) {
	f.Add(seedPolicies, `{"schema":"analytics","ids":[1,2],"user":"vera"}`)
	f.Add(`permit(principal, action, resource) when { context.arguments.a.b.c == 1 };`, `{"a":{"b":{"c":1}}}`)
	f.Add(`forbid(principal, action, resource) when { context.sizes.x > 1 };`, `{"x":"ab"}`)
	f.Add(`@id("x") permit(principal, action, resource);`, `{"n":1e400,"m":-0.00001,"d":12345678901234567890}`)
	f.Add(`permit(`, `[]`)
	f.Fuzz(func(t *testing.T, text, args string) {
		if len(text) > 8<<10 || len(args) > 8<<10 {
			return
		}
		e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "f.cedar", Data: []byte(text)}}})
		if err != nil {
			if e != nil {
				t.Fatal("an engine with an error")
			}
			return
		}
		p := &guard.Principal{Subject: "vera", Method: guard.MethodAPIKey, Roles: []string{"viewer"}, Groups: []string{"g"}}
		a := guard.Action{Method: "tools/call", Target: "query", Arguments: json.RawMessage(args), Request: &guard.RequestInfo{Time: weekdayNoon, ClientIP: "10.0.0.1"}}
		call := e.Authorize(context.Background(), p, a)
		a.Listing, a.Arguments = true, nil
		listed := e.Authorize(context.Background(), p, a)
		if call.Allowed && !listed.Allowed {
			t.Fatalf("call allowed (%v) but hidden from the list (%v)", call.Policies, listed.Policies)
		}
	})
}
