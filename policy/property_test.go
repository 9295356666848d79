package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
)

var (
	propTools = []string{"list_tables", "describe_table", "query", "execute_sql", "drop_table", "delete_users",
		"deploy_api", "deploy_docs", "read_secrets", "update_profile", "anything_new", "github__get_issue", "github__create_issue"}
	propArgs = []string{"", `{}`, `{"schema":"analytics"}`, `{"schema":"billing"}`, `{"table":"products"}`, `{"table":"users"}`,
		`{"ids":[1,2]}`, `{"ids":[1,2,3,4,5,6,7,8,9,10,11,12]}`, `{"user":"SUBJECT"}`, `{"user":"someone-else"}`}
	propIPs = []string{"", "127.0.0.1", "10.9.8.7", "203.0.113.5", "2001:db8::1"}
)

func randomPrincipal(rng *rand.Rand, now time.Time) *guard.Principal {
	pick := func(from []string) []string {
		var out []string
		for _, s := range from {
			if rng.IntN(3) == 0 {
				out = append(out, s)
			}
		}
		return out
	}
	p := &guard.Principal{
		Subject:      []string{"vera", "dan", "carol", "ann", "otto"}[rng.IntN(5)],
		Method:       []guard.AuthMethod{guard.MethodAPIKey, guard.MethodJWT, guard.MethodOAuth}[rng.IntN(3)],
		Roles:        pick([]string{"viewer", "developer", "admin", "ops", "unknown-role"}),
		Scopes:       pick([]string{"secrets:read", "mcp:tools"}),
		Groups:       pick([]string{"engineering", "sales"}),
		Permissions:  pick([]string{"tools:call:list_*", "tools:call:*", "prompts:get:*"}),
		ScopeLimited: rng.IntN(2) == 0,
	}
	if rng.IntN(2) == 0 {
		p.MFATime = now.Add(-time.Duration(rng.IntN(900)) * time.Second)
	}
	return p
}

// TestListAndCallAgree is the property that the list shows exactly what
// can be called: over random principals, tools, times and addresses, a
// tool the list hides is refused whatever its arguments, and a tool the
// list shows is allowed for some arguments.
func TestListAndCallAgree(t *testing.T) {
	e := newSeedEngine(t)
	rng := rand.New(rand.NewPCG(1, 2))
	shown, hidden := 0, 0
	for i := 0; i < 3000; i++ {
		now := weekdayNoon.Add(time.Duration(rng.IntN(7*24)) * time.Hour)
		p := randomPrincipal(rng, now)
		tool := propTools[rng.IntN(len(propTools))]
		ip := propIPs[rng.IntN(len(propIPs))]
		info := &guard.RequestInfo{Time: now, ClientIP: ip, Transport: "http"}
		listed := e.Authorize(context.Background(), p, guard.Action{Method: "tools/call", Target: tool, Listing: true, Request: info})
		var allowedWith []string
		for _, args := range propArgs {
			if args == `{"user":"SUBJECT"}` {
				args = fmt.Sprintf(`{"user":%q}`, p.Subject)
			}
			a := guard.Action{Method: "tools/call", Target: tool, Request: info}
			if args != "" {
				a.Arguments = []byte(args)
			}
			if e.Authorize(context.Background(), p, a).Allowed {
				allowedWith = append(allowedWith, args)
			}
		}
		switch {
		case !listed.Allowed && len(allowedWith) > 0:
			t.Fatalf("%+v, %s at %v from %q: hidden from the list (%s, %v) but callable with %v", p, tool, now, ip, listed.Reason, listed.Policies, allowedWith)
		case listed.Allowed && len(allowedWith) == 0:
			t.Fatalf("%+v, %s at %v from %q: listed (%s, %v) but no call is allowed", p, tool, now, ip, listed.Reason, listed.Policies)
		case listed.Allowed:
			shown++
		default:
			hidden++
		}
	}
	if shown < 100 || hidden < 100 {
		t.Fatalf("the sample is lopsided: %d shown, %d hidden", shown, hidden)
	}
}

// TestCompiledRBACMatchesRBAC checks the translation of the YAML role
// model into Cedar against authz.RBAC, over random role models,
// principals and actions.
func TestCompiledRBACMatchesRBAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"a", "ab", "abc", "b", "x_y", "x_z"}
	perms := []string{"tools:call:a", "tools:call:a*", "tools:call:*", "tools:*", "*", "resources:read:file:///*", "prompts:get:b", "tools:call:x_*"}
	for round := 0; round < 300; round++ {
		pol := authz.Policy{Roles: map[string]authz.Role{}, Users: map[string][]string{}, Tools: map[string]authz.Requirement{}}
		roles := []string{"r0", "r1", "r2", "r3"}
		for i, r := range roles {
			role := authz.Role{}
			if i > 0 && rng.IntN(2) == 0 {
				role.Inherits = []string{roles[rng.IntN(i)]}
			}
			for _, p := range perms {
				if rng.IntN(4) == 0 {
					role.Permissions = append(role.Permissions, p)
				}
			}
			pol.Roles[r] = role
		}
		pol.Users["u1"] = []string{roles[rng.IntN(4)]}
		for _, pattern := range []string{"a", "ab*", "x_*", "b"} {
			if rng.IntN(2) == 0 {
				req := authz.Requirement{}
				if rng.IntN(2) == 0 {
					req.Roles = []string{roles[rng.IntN(4)]}
				}
				if rng.IntN(2) == 0 {
					req.Scopes = []string{"s1"}
				}
				pol.Tools[pattern] = req
			}
		}
		rbac, err := authz.NewRBAC(pol)
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(Options{RBAC: pol})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 40; i++ {
			p := &guard.Principal{Subject: []string{"u1", "u2"}[rng.IntN(2)], Method: guard.MethodJWT, ScopeLimited: rng.IntN(3) == 0}
			for _, r := range roles {
				if rng.IntN(3) == 0 {
					p.Roles = append(p.Roles, r)
				}
			}
			if rng.IntN(2) == 0 {
				p.Scopes = []string{"s1"}
			}
			if rng.IntN(4) == 0 {
				p.Permissions = []string{perms[rng.IntN(len(perms))]}
			}
			method := []string{"tools/call", "tools/call", "resources/read", "prompts/get"}[rng.IntN(4)]
			target := names[rng.IntN(len(names))]
			if method == "resources/read" {
				target = "file:///" + target
			}
			a := guard.Action{Method: method, Target: target}
			want := rbac.Authorize(context.Background(), p, a)
			got := e.Authorize(context.Background(), p, a)
			if got.Allowed != want.Allowed {
				t.Fatalf("policy %+v\nprincipal %+v, %s %s: cedar allowed=%v (%s %v), rbac allowed=%v (%s)",
					pol, p, method, target, got.Allowed, got.Reason, got.Policies, want.Allowed, want.Reason)
			}
			listed := e.Authorize(context.Background(), p, guard.Action{Method: method, Target: target, Listing: true})
			if listed.Allowed != want.Allowed {
				t.Fatalf("principal %+v, %s %s: listing says %v, rbac %v", p, method, target, listed.Allowed, want.Allowed)
			}
		}
	}
}
