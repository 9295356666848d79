package policy

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
)

// seedRBAC is the demo's role model: viewer < developer < admin.
var seedRBAC = authz.Policy{
	Roles: map[string]authz.Role{
		"viewer":    {Permissions: []string{"tools:call:list_tables", "tools:call:describe_table", "resources:read:mcpguard://docs/*"}},
		"developer": {Inherits: []string{"viewer"}, Permissions: []string{"tools:call:query", "tools:call:execute_sql", "prompts:get:*"}},
		"admin":     {Inherits: []string{"developer"}, Permissions: []string{"tools:call:*"}},
		"ops":       {},
	},
	Users: map[string][]string{"carol": {"developer"}},
	Tools: map[string]authz.Requirement{
		"drop_table":   {Roles: []string{"admin"}},
		"delete_users": {Roles: []string{"admin", "ops"}},
		"deploy_*":     {Roles: []string{"ops"}},
		"deploy_docs":  {Roles: []string{"developer"}},
		"read_secrets": {Scopes: []string{"secrets:read"}},
	},
}

// seedPolicies are the examples written in Cedar.
const seedPolicies = `
@id("sql-analytics-only")
@reason("execute_sql runs only on the analytics schema")
forbid(principal, action == Action::"tools/call", resource == Tool::"execute_sql")
unless { context.arguments has schema && context.arguments.schema == "analytics" };

@id("delete-at-most-10")
forbid(principal, action == Action::"tools/call", resource == Tool::"delete_users")
when { context.sizes has ids && context.sizes.ids > 10 };

@id("delete-needs-fresh-mfa")
@step_up_mfa("300")
forbid(principal, action == Action::"tools/call", resource == Tool::"delete_users")
unless { principal.mfa_age <= 300 };

@id("query-public-tables")
permit(principal in Role::"viewer", action == Action::"tools/call", resource == Tool::"query")
when { context.arguments has table && ["products", "orders"].contains(context.arguments.table) };

@id("business-hours-drop")
forbid(principal, action == Action::"tools/call", resource == Tool::"drop_table")
unless { context.time.weekday >= 1 && context.time.weekday <= 5 && context.time.hour >= 9 && context.time.hour < 17 };

@id("office-network-admin")
forbid(principal in Role::"admin", action == Action::"tools/call", resource)
unless { context has ip && (context.ip.isInRange(ip("10.0.0.0/8")) || context.ip.isLoopback()) };

@id("own-profile-only")
permit(principal, action == Action::"tools/call", resource == Tool::"update_profile")
when { context.arguments has user && context.arguments.user == principal.subject };

@id("github-readers")
permit(principal in Group::"engineering", action == Action::"tools/call", resource in Upstream::"github")
when { resource.tags.contains("read-only") };
`

func newSeedEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New(Options{
		RBAC:  seedRBAC,
		Files: []File{{Name: "seed.cedar", Data: []byte(seedPolicies)}},
		Tags:  map[string][]string{"github__get_*": {"read-only"}, "github__list_*": {"read-only"}},
		Upstream: func(_, name string) string {
			if up, _, ok := strings.Cut(name, "__"); ok {
				return up
			}
			return ""
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var (
	weekdayNoon = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) // a Monday
	saturday    = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
)

func call(tool, args string, at time.Time, ip string) guard.Action {
	a := guard.Action{Method: "tools/call", Target: tool, Request: &guard.RequestInfo{Time: at, ClientIP: ip, Transport: "http"}}
	if args != "" {
		a.Arguments = json.RawMessage(args)
	}
	return a
}

func TestSeedExamples(t *testing.T) {
	e := newSeedEngine(t)
	viewer := &guard.Principal{Subject: "vera", Method: guard.MethodAPIKey, Roles: []string{"viewer"}}
	dev := &guard.Principal{Subject: "dan", Method: guard.MethodAPIKey, Roles: []string{"developer"}}
	carol := &guard.Principal{Subject: "carol", Method: guard.MethodJWT, Issuer: "https://idp"}
	carolOAuth := &guard.Principal{Subject: "carol", Method: guard.MethodOAuth, Issuer: "https://as", ScopeLimited: true}
	admin := &guard.Principal{Subject: "ann", Method: guard.MethodAPIKey, Roles: []string{"admin"}}
	adminMFA := &guard.Principal{Subject: "ann", Method: guard.MethodOAuth, Roles: []string{"admin"}, MFATime: weekdayNoon.Add(-2 * time.Minute)}
	adminOldMFA := &guard.Principal{Subject: "ann", Method: guard.MethodOAuth, Roles: []string{"admin"}, MFATime: weekdayNoon.Add(-time.Hour)}
	ops := &guard.Principal{Subject: "otto", Method: guard.MethodAPIKey, Roles: []string{"ops"}, MFATime: weekdayNoon}
	scoped := &guard.Principal{Subject: "sam", Method: guard.MethodAPIKey, Scopes: []string{"secrets:read"}}
	cred := &guard.Principal{Subject: "bot", Method: guard.MethodJWT, Permissions: []string{"tools:call:list_*"}}
	eng := &guard.Principal{Subject: "eve", Method: guard.MethodJWT, Groups: []string{"engineering"}}
	ip := "127.0.0.1"
	manyIDs := `{"ids":[1,2,3,4,5,6,7,8,9,10,11]}`

	cases := []struct {
		name     string
		p        *guard.Principal
		a        guard.Action
		allow    bool
		policies []string // the determining policy ids, when checked
		roles    []string // RequiredRoles, when checked
		scopes   []string
		mfa      time.Duration
	}{
		// RBAC matrix and inheritance.
		{"viewer lists tables", viewer, call("list_tables", "", weekdayNoon, ip), true, []string{"role:viewer:tools:call:list_tables"}, nil, nil, 0},
		{"developer inherits viewer", dev, call("describe_table", "", weekdayNoon, ip), true, nil, nil, nil, 0},
		{"viewer cannot execute_sql", viewer, call("execute_sql", `{"schema":"analytics"}`, weekdayNoon, ip), false, []string{"default-deny"}, []string{"developer"}, nil, 0},
		{"users map grants carol developer", carol, call("query", `{"table":"users"}`, weekdayNoon, ip), true, nil, nil, nil, 0},
		{"users map never widens a scope-limited token", carolOAuth, call("query", `{"table":"users"}`, weekdayNoon, ip), false, nil, nil, nil, 0},
		{"admin wildcard", admin, call("anything_new", "", weekdayNoon, ip), true, []string{"role:admin:tools:call:*"}, nil, nil, 0},
		{"unknown tool denied by default", viewer, call("anything_new", "", weekdayNoon, ip), false, []string{"default-deny"}, []string{"admin"}, nil, 0},
		{"prompt glob", dev, guard.Action{Method: "prompts/get", Target: "summary"}, true, nil, nil, nil, 0},
		{"resource glob", viewer, guard.Action{Method: "resources/read", Target: "mcpguard://docs/intro"}, true, nil, nil, nil, 0},
		{"unknown method", admin, guard.Action{Method: "sampling/createMessage"}, false, nil, nil, nil, 0},
		// Per-tool requirements: priority and deny-overrides.
		{"requirement: admin may drop in business hours", admin, call("drop_table", "", weekdayNoon, ip), true, []string{"tool:drop_table", "role:admin:tools:call:*"}, nil, nil, 0},
		{"requirement refuses a developer", dev, call("drop_table", "", weekdayNoon, ip), false, []string{"tool:drop_table:unmet"}, []string{"admin"}, nil, 0},
		{"exact requirement beats glob", dev, call("deploy_docs", "", weekdayNoon, ip), true, nil, nil, nil, 0},
		{"glob requirement: ops only", ops, call("deploy_api", "", weekdayNoon, ip), true, []string{"tool:deploy_*"}, nil, nil, 0},
		{"admin wildcard cannot widen a requirement", admin, call("deploy_api", "", weekdayNoon, ip), false, []string{"tool:deploy_*:unmet"}, []string{"ops"}, nil, 0},
		{"credential permission cannot bypass a requirement", &guard.Principal{Subject: "x", Method: guard.MethodJWT, Permissions: []string{"tools:call:*"}}, call("drop_table", "", weekdayNoon, ip), false, nil, []string{"admin"}, nil, 0},
		{"scope requirement met", scoped, call("read_secrets", "", weekdayNoon, ip), true, nil, nil, nil, 0},
		{"scope requirement missing", viewer, call("read_secrets", "", weekdayNoon, ip), false, []string{"tool:read_secrets:unmet"}, nil, []string{"secrets:read"}, 0},
		{"credential permissions", cred, call("list_tables", "", weekdayNoon, ip), true, []string{"credential"}, nil, nil, 0},
		// Time windows.
		{"drop on saturday forbidden", admin, call("drop_table", "", saturday, ip), false, []string{"business-hours-drop"}, nil, nil, 0},
		{"drop at 20:00 forbidden", admin, call("drop_table", "", weekdayNoon.Add(8*time.Hour), ip), false, []string{"business-hours-drop"}, nil, nil, 0},
		// IP ranges.
		{"admin from the office network", admin, call("list_tables", "", weekdayNoon, "10.1.2.3"), true, nil, nil, nil, 0},
		{"admin from elsewhere", admin, call("list_tables", "", weekdayNoon, "203.0.113.9"), false, []string{"office-network-admin"}, nil, nil, 0},
		{"admin over stdio (no ip)", admin, guard.Action{Method: "tools/call", Target: "list_tables", Request: &guard.RequestInfo{Time: weekdayNoon, Transport: "stdio"}}, false, []string{"office-network-admin"}, nil, nil, 0},
		{"developers are not subject to the admin network rule", dev, call("list_tables", "", weekdayNoon, "203.0.113.9"), true, nil, nil, nil, 0},
		// Argument conditions.
		{"execute_sql on analytics", dev, call("execute_sql", `{"schema":"analytics","sql":"select 1"}`, weekdayNoon, ip), true, nil, nil, nil, 0},
		{"execute_sql elsewhere", dev, call("execute_sql", `{"schema":"billing","sql":"select 1"}`, weekdayNoon, ip), false, []string{"sql-analytics-only"}, nil, nil, 0},
		{"execute_sql without schema", dev, call("execute_sql", `{"sql":"select 1"}`, weekdayNoon, ip), false, []string{"sql-analytics-only"}, nil, nil, 0},
		{"viewer queries a public table", viewer, call("query", `{"table":"products"}`, weekdayNoon, ip), true, []string{"query-public-tables"}, nil, nil, 0},
		{"viewer queries a private table", viewer, call("query", `{"table":"users"}`, weekdayNoon, ip), false, []string{"default-deny"}, []string{"developer"}, nil, 0},
		{"delete 2 users with fresh MFA", adminMFA, call("delete_users", `{"ids":[1,2]}`, weekdayNoon, ip), true, nil, nil, nil, 0},
		{"delete 11 users", adminMFA, call("delete_users", manyIDs, weekdayNoon, ip), false, []string{"delete-at-most-10"}, nil, nil, 0},
		// Step-up.
		{"delete users with stale MFA asks for step-up", adminOldMFA, call("delete_users", `{"ids":[1]}`, weekdayNoon, ip), false, []string{"delete-needs-fresh-mfa"}, nil, nil, 300 * time.Second},
		{"delete users without MFA asks for step-up", admin, call("delete_users", `{"ids":[1]}`, weekdayNoon, ip), false, []string{"delete-needs-fresh-mfa"}, nil, nil, 300 * time.Second},
		{"no step-up when another forbid also applies", adminOldMFA, call("delete_users", manyIDs, weekdayNoon, ip), false, nil, nil, nil, 0},
		// Ownership.
		{"owner updates own profile", viewer, call("update_profile", `{"user":"vera","bio":"hi"}`, weekdayNoon, ip), true, []string{"own-profile-only"}, nil, nil, 0},
		{"not someone else's", viewer, call("update_profile", `{"user":"dan"}`, weekdayNoon, ip), false, []string{"default-deny"}, nil, nil, 0},
		// Groups, upstreams and tags.
		{"engineering reads github", eng, call("github__get_issue", "", weekdayNoon, ip), true, []string{"github-readers"}, nil, nil, 0},
		{"engineering cannot write github", eng, call("github__create_issue", "", weekdayNoon, ip), false, nil, nil, nil, 0},
		{"others cannot read github", viewer, call("github__get_issue", "", weekdayNoon, ip), false, nil, nil, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Authorize(context.Background(), tc.p, tc.a)
			if d.Allowed != tc.allow {
				t.Fatalf("allowed = %v, want %v (reason %q, policies %v)", d.Allowed, tc.allow, d.Reason, d.Policies)
			}
			if tc.policies != nil && !slices.Equal(d.Policies, tc.policies) {
				t.Errorf("policies = %v, want %v (reason %q)", d.Policies, tc.policies, d.Reason)
			}
			if tc.roles != nil && !slices.Equal(d.RequiredRoles, tc.roles) {
				t.Errorf("required roles = %v, want %v", d.RequiredRoles, tc.roles)
			}
			if tc.scopes != nil && !slices.Equal(d.MissingScopes, tc.scopes) {
				t.Errorf("missing scopes = %v, want %v", d.MissingScopes, tc.scopes)
			}
			if d.MFAMaxAge != tc.mfa {
				t.Errorf("MFAMaxAge = %v, want %v", d.MFAMaxAge, tc.mfa)
			}
			if d.Reason == "" {
				t.Error("empty reason")
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"syntax", "permit(principal, action, resource) when { context.x == };", "bad.cedar"},
		{"duplicate id", `@id("a") permit(principal, action, resource); @id("a") forbid(principal, action, resource);`, `policy id "a" is already used by the policy at bad.cedar:1`},
		{"id of a generated policy", `@id("credential") permit(principal, action, resource);`, `"credential" is already used`},
		{"bad step-up", `@step_up_mfa("soon") forbid(principal, action, resource);`, "@step_up_mfa must be a positive number"},
		{"step-up on a permit", `@step_up_mfa("60") permit(principal, action, resource);`, "belongs on a forbid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "bad.cedar", Data: []byte(tc.text)}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestArgumentsReadByName checks that an argument a policy reads under an
// unusual name reaches it (only the arguments policies read are converted).
func TestArgumentsReadByName(t *testing.T) {
	e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "k.cedar", Data: []byte(`
@id("weird") permit(principal, action == Action::"tools/call", resource == Tool::"t")
when { context.arguments has "the key" && context.arguments["the key"] == "v" && context.sizes["the key"] == 1 };
@id("whole") permit(principal, action == Action::"tools/call", resource == Tool::"u")
when { context.arguments == {"a": 1} };`)}}})
	if err != nil {
		t.Fatal(err)
	}
	p := &guard.Principal{Subject: "x", Method: guard.MethodAPIKey}
	for _, tc := range []struct {
		tool, args string
		want       bool
	}{
		{"t", `{"the key":"v","other":2}`, true},
		{"t", `{"the key":"w"}`, false},
		{"u", `{"a":1}`, true},
		{"u", `{"a":1,"b":2}`, false},
	} {
		if got := e.Authorize(context.Background(), p, call(tc.tool, tc.args, weekdayNoon, "")).Allowed; got != tc.want {
			t.Errorf("%s %s: allowed = %v, want %v", tc.tool, tc.args, got, tc.want)
		}
	}
}

// TestForbidThatFailsDenies checks the one point where mcpguard departs
// from Cedar: a forbid whose evaluation fails denies.
func TestForbidThatFailsDenies(t *testing.T) {
	e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "f.cedar", Data: []byte(`
@id("unguarded") forbid(principal, action == Action::"tools/call", resource == Tool::"execute_sql")
when { context.arguments.schema != "analytics" };`)}}})
	if err != nil {
		t.Fatal(err)
	}
	dev := &guard.Principal{Subject: "dan", Method: guard.MethodAPIKey, Roles: []string{"developer"}}
	if d := e.Authorize(context.Background(), dev, call("execute_sql", `{"schema":"analytics"}`, weekdayNoon, "")); !d.Allowed {
		t.Fatalf("analytics refused: %s", d.Reason)
	}
	d := e.Authorize(context.Background(), dev, call("execute_sql", `{"sql":"drop table x"}`, weekdayNoon, ""))
	if d.Allowed || !slices.Equal(d.Policies, []string{"unguarded"}) || !strings.Contains(d.Reason, "could not be evaluated") {
		t.Fatalf("a call without schema: %+v, want a denial by the failing forbid", d)
	}
	// The list shows execute_sql: some arguments are allowed.
	if d := e.Authorize(context.Background(), dev, guard.Action{Method: "tools/call", Target: "execute_sql", Listing: true}); !d.Allowed {
		t.Fatalf("execute_sql hidden from the list: %s", d.Reason)
	}
}

// TestReadsEveryWayOfNaming covers what a policy may read without the
// plain `context.arguments.x` spelling: argument names that Cedar escapes,
// and principal attributes read through an expression. Each must reach the
// policy, or a forbid guarded by `has` would be skipped.
func TestReadsEveryWayOfNaming(t *testing.T) {
	dev := &guard.Principal{Subject: "dan", Method: guard.MethodAPIKey, Roles: []string{"admin"}}
	for _, tc := range []struct{ name, policy, args string }{
		{"apostrophe", `forbid(principal, action, resource == Tool::"t") when { context.arguments has "it's" };`, `{"it's":1}`},
		{"NUL", `forbid(principal, action, resource == Tool::"t") when { context.arguments has "a\0b" };`, `{"a\u0000b":1}`},
		{"combining mark", `forbid(principal, action, resource == Tool::"t") when { context.arguments has "\u{301}x" };`, `{"\u0301x":1}`},
		{"zero-width space", `forbid(principal, action, resource == Tool::"t") when { context.sizes has "zw\u{200b}j" };`, `{"zw\u200bj":"abc"}`},
		{"principal through if", `forbid(principal, action, resource == Tool::"t") when { (if true then principal else principal) has subject && (if true then principal else principal).subject == "dan" };`, `{}`},
		{"whole arguments record", `forbid(principal, action, resource == Tool::"t") when { context.arguments != {} };`, `{"x":1}`},
		{"whole context", `forbid(principal, action, resource == Tool::"t") when { context has arguments && context != {} };`, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "r.cedar", Data: []byte(tc.policy)}}})
			if err != nil {
				t.Fatal(err)
			}
			if d := e.Authorize(context.Background(), dev, call("t", tc.args, weekdayNoon, "127.0.0.1")); d.Allowed {
				t.Fatalf("the forbid was skipped: %+v", d)
			}
		})
	}
}

// TestDecimalsAreExact checks that an argument that is not exactly a Cedar
// decimal cannot pass a limit by rounding.
func TestDecimalsAreExact(t *testing.T) {
	e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "d.cedar", Data: []byte(
		`forbid(principal, action, resource == Tool::"pay") unless { context.arguments has n && context.arguments.n.lessThanOrEqual(decimal("100.0")) };`)}}})
	if err != nil {
		t.Fatal(err)
	}
	admin := &guard.Principal{Subject: "ann", Method: guard.MethodAPIKey, Roles: []string{"admin"}}
	for args, want := range map[string]bool{`{"n":99.5}`: true, `{"n":100.0}`: true, `{"n":100.00001}`: false, `{"n":1e2}`: false, `{"n":100.0001}`: false} {
		if got := e.Authorize(context.Background(), admin, call("pay", args, weekdayNoon, "")).Allowed; got != want {
			t.Errorf("%s: allowed = %v, want %v", args, got, want)
		}
	}
}

// TestListWithErrorsLeftByPartialEvaluation checks lists against calls
// when a condition errors after the arguments are known or not: under &&
// it can never hold (hidden), under || it still can (listed).
func TestListWithErrorsLeftByPartialEvaluation(t *testing.T) {
	nobody := &guard.Principal{Subject: "n", Method: guard.MethodAPIKey}
	for _, tc := range []struct {
		policy, args string
		listed       bool
	}{
		{`permit(principal, action, resource == Tool::"u") when { context.arguments has x && principal.nosuch == 1 };`, `{"x":1}`, false},
		{`permit(principal, action, resource == Tool::"u") when { context.arguments has x || principal.nosuch == 1 };`, `{"x":1}`, true},
		{`permit(principal, action, resource == Tool::"u") unless { principal.nosuch == 1 || context.arguments has x };`, `{}`, false},
	} {
		e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "l.cedar", Data: []byte(tc.policy)}}})
		if err != nil {
			t.Fatal(err)
		}
		listed := e.Authorize(context.Background(), nobody, guard.Action{Method: "tools/call", Target: "u", Listing: true}).Allowed
		called := e.Authorize(context.Background(), nobody, call("u", tc.args, weekdayNoon, "")).Allowed
		if listed != tc.listed || called != tc.listed {
			t.Errorf("%s: listed %v, call with %s allowed %v; want both %v", tc.policy, listed, tc.args, called, tc.listed)
		}
	}
}

// TestArgumentsThatReadTwoWaysFailClosed checks arguments that a tool and
// a policy could read differently: a name given twice (at any depth), or
// arguments that are not one object. Policies that read arguments then
// fail: a guarded forbid denies, a permit does not apply.
func TestArgumentsThatReadTwoWaysFailClosed(t *testing.T) {
	e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "a.cedar", Data: []byte(`
@id("analytics") forbid(principal, action, resource == Tool::"execute_sql")
unless { context.arguments has schema && context.arguments.schema == "analytics" };`)}}})
	if err != nil {
		t.Fatal(err)
	}
	dev := &guard.Principal{Subject: "dan", Method: guard.MethodAPIKey, Roles: []string{"developer"}}
	for args, want := range map[string]bool{
		`{"schema":"analytics"}`:                             true,
		`{"schema":"billing","schema":"analytics"}`:          false,
		`{"schema":"analytics","opts":{"a":1,"a":2}}`:        false,
		`{"schema":"analytics","x":[{"k":1},{"k":1,"k":2}]}`: false,
		`["schema","analytics"]`:                             false,
	} {
		if got := e.Authorize(context.Background(), dev, call("execute_sql", args, weekdayNoon, "")).Allowed; got != want {
			t.Errorf("%s: allowed = %v, want %v", args, got, want)
		}
	}
}

// TestUpstreamAsked checks that an item's upstream is asked on every
// decision: a name first seen unserved, then served by an upstream, is
// governed by the upstream's policies from then on (a cached entity would
// have kept it out of a forbid on the upstream).
func TestUpstreamAsked(t *testing.T) {
	var owner atomic.Value
	owner.Store("")
	e, err := New(Options{RBAC: seedRBAC, Files: []File{{Name: "u.cedar", Data: []byte(
		`@id("no-github") forbid(principal, action, resource in Upstream::"github");`)}},
		Upstream: func(kind, name string) string {
			if kind == "tool" && name == "gh_new" {
				return owner.Load().(string)
			}
			return ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	admin := &guard.Principal{Subject: "ann", Method: guard.MethodAPIKey, Roles: []string{"admin"}}
	if d := e.Authorize(context.Background(), admin, call("gh_new", "", weekdayNoon, "127.0.0.1")); !d.Allowed {
		t.Fatalf("before the upstream serves it: %+v", d)
	}
	owner.Store("github")
	if d := e.Authorize(context.Background(), admin, call("gh_new", "", weekdayNoon, "127.0.0.1")); d.Allowed || d.Policies[0] != "no-github" {
		t.Fatalf("once github serves it: %+v", d)
	}
}
