package authz

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/guard"
)

// oldAuthorize is Authorize as it was before decisions were precomputed by
// NewRBAC (formatting its reasons and building its slices on every call). It
// is the oracle that the precomputed decisions must equal.
func (r *RBAC) oldAuthorize(p *guard.Principal, a guard.Action) guard.Decision {
	if p == nil {
		return guard.Decision{Reason: "not authenticated"}
	}
	held := r.Roles(p)
	if a.Method == "tools/call" {
		if t := r.requirement(a.Target); t != nil {
			req, rule := t.req, t.pattern
			policy := []string{"tool:" + rule}
			if len(req.Roles) > 0 && !slices.ContainsFunc(req.Roles, func(role string) bool { return r.hasRole(held, role) }) {
				return guard.Decision{
					Reason:        fmt.Sprintf("tool %s requires role %s", a.Target, strings.Join(req.Roles, " or ")),
					RequiredRoles: slices.Clone(req.Roles),
					Policies:      policy,
				}
			}
			var missing []string
			for _, scope := range req.Scopes {
				if !slices.Contains(p.Scopes, scope) {
					missing = append(missing, scope)
				}
			}
			if len(missing) > 0 {
				return guard.Decision{
					Reason:        fmt.Sprintf("tool %s requires scope %s", a.Target, missing[0]),
					RequiredRoles: slices.Clone(req.Roles),
					Policies:      policy,
					MissingScopes: missing,
				}
			}
			reason := fmt.Sprintf("tool %s requirement met", a.Target)
			if len(req.Roles) > 0 {
				reason = fmt.Sprintf("tool %s requires role %s: held", a.Target, strings.Join(req.Roles, " or "))
			}
			return guard.Decision{Allowed: true, Reason: reason, Policies: policy}
		}
	}
	perm := a.Permission()
	for _, role := range held {
		for _, pattern := range r.grants[role] {
			if Match(pattern, perm) {
				return guard.Decision{Allowed: true, Reason: fmt.Sprintf("role %s grants %s", role, pattern), Policies: []string{"role:" + role}}
			}
		}
	}
	for _, pattern := range p.Permissions {
		if Match(pattern, perm) {
			return guard.Decision{Allowed: true, Reason: "credential grants " + pattern, Policies: []string{"credential"}}
		}
	}
	return guard.Decision{
		Reason:        "no rule grants " + perm,
		RequiredRoles: r.rolesGranting(perm),
		Policies:      []string{"default-deny"},
	}
}

// oraclePolicy exercises inheritance, the Users map, exact and glob tool
// rules with and without roles and scopes, and role grants.
func oraclePolicy() Policy {
	return Policy{
		Roles: map[string]Role{
			"viewer":    {Permissions: []string{"prompts:get:help"}},
			"developer": {Inherits: []string{"viewer"}, Permissions: []string{"resources:read:file:///src/*"}},
			"admin":     {Inherits: []string{"developer"}, Permissions: []string{"tools:call:*", "resources:read:*", "prompts:get:*"}},
			"auditor":   {Permissions: []string{"resources:read:audit://*", "custom/method:*"}},
			"ops":       {Inherits: []string{"auditor", "viewer"}},
		},
		Users: map[string][]string{"carol": {"admin"}, "dave": {"auditor", "viewer"}},
		Tools: map[string]Requirement{
			"delete_users":   {Roles: []string{"admin"}},
			"execute_sql":    {Roles: []string{"developer", "ops"}},
			"query":          {Roles: []string{"viewer"}},
			"open":           {},
			"github__*":      {Roles: []string{"developer"}},
			"github__admin*": {Roles: []string{"admin"}},
			"open_*":         {Scopes: []string{"x"}},
			"scoped":         {Roles: []string{"viewer"}, Scopes: []string{"db:write", "db:read"}},
		},
	}
}

func TestAuthorizeMatchesOracle(t *testing.T) {
	t.Parallel()
	r, err := NewRBAC(oraclePolicy())
	if err != nil {
		t.Fatal(err)
	}
	var principals []*guard.Principal
	for _, subject := range []string{"", "carol", "dave"} {
		for _, roles := range [][]string{nil, {"viewer"}, {"developer"}, {"admin"}, {"auditor"}, {"ops"}, {"ghost"}, {"viewer", "auditor"}} {
			for _, scopes := range [][]string{nil, {"db:write"}, {"db:write", "db:read", "x"}} {
				for _, perms := range [][]string{nil, {"tools:call:*"}, {"resources:read:file:///pub/*"}} {
					principals = append(principals, &guard.Principal{Subject: subject, Roles: roles, Scopes: scopes, Permissions: perms})
				}
			}
		}
	}
	principals = append(principals, nil)
	var actions []guard.Action
	for _, tool := range []string{"delete_users", "execute_sql", "query", "open", "open_door", "github__x", "github__admin_rm", "scoped", "mystery", "", strings.Repeat("t", 300)} {
		actions = append(actions, guard.Action{Method: "tools/call", Target: tool})
	}
	for _, uri := range []string{"file:///src/a.go", "file:///pub/b", "audit://log", "file:///etc/passwd", ""} {
		actions = append(actions, guard.Action{Method: "resources/read", Target: uri})
	}
	actions = append(actions,
		guard.Action{Method: "prompts/get", Target: "help"},
		guard.Action{Method: "prompts/get", Target: "other"},
		guard.Action{Method: "custom/method", Target: "x"},
		guard.Action{Method: "other", Target: "x"},
	)
	ctx := context.Background()
	for _, p := range principals {
		for _, a := range actions {
			got, want := r.Authorize(ctx, p, a), r.oldAuthorize(p, a)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Authorize(%+v, %+v)\n got %+v\nwant %+v", p, a, got, want)
			}
		}
	}
}

// TestDecisionSlicesShared checks that appending to a Decision's shared
// slices cannot change later decisions.
func TestDecisionSlicesShared(t *testing.T) {
	t.Parallel()
	r, err := NewRBAC(oraclePolicy())
	if err != nil {
		t.Fatal(err)
	}
	p := &guard.Principal{Roles: []string{"admin"}}
	for _, a := range []guard.Action{{Method: "tools/call", Target: "query"}, {Method: "tools/call", Target: "mystery"}} {
		d := r.Authorize(context.Background(), p, a)
		_ = append(d.Policies, "extra")
		if again := r.Authorize(context.Background(), p, a); !reflect.DeepEqual(again, d) {
			t.Errorf("%+v: decision changed after an append: %+v, then %+v", a, d, again)
		}
	}
}

func TestAuthorizeAllowAllocs(t *testing.T) {
	r, err := NewRBAC(oraclePolicy())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		p    guard.Principal
		a    guard.Action
		max  float64
		name string
	}{
		{guard.Principal{Roles: []string{"admin"}}, guard.Action{Method: "tools/call", Target: "query"}, 0, "exact requirement"},
		{guard.Principal{Roles: []string{"admin"}}, guard.Action{Method: "tools/call", Target: "mystery"}, 0, "role grant"},
		{guard.Principal{Roles: []string{"developer"}}, guard.Action{Method: "tools/call", Target: "github__x"}, 1, "glob requirement"},
	} {
		if n := testing.AllocsPerRun(100, func() { r.Authorize(ctx, &tc.p, tc.a) }); n > tc.max {
			t.Errorf("%s: %v allocations, want at most %v", tc.name, n, tc.max)
		}
	}
}
