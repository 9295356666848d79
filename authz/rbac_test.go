package authz_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/authz"
	"github.com/mcpguard/mcpguard/guard"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"tools:call:*", "tools:call:query", true},
		{"tools:call:*", "tools:call:", true},
		{"tools:call:*", "tools:list:x", false},
		{"tools:call:github__*", "tools:call:github__create_issue", true},
		{"tools:call:github__*", "tools:call:gitlab__create_issue", false},
		{"resources:read:file:///data/*", "resources:read:file:///data/a/b.txt", true},
		{"*", "anything", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"tools:call:query", "tools:call:query", true},
		{"tools:call:query", "tools:call:query2", false},
		{"tools:call:q.*", "tools:call:query", false}, // '.' is literal, not a regex
		{"tools:call:[a-z]*", "tools:call:query", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := authz.Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
	// Pathological patterns stay fast (no exponential backtracking).
	long := strings.Repeat("a", 10000)
	if authz.Match(strings.Repeat("*a", 50)+"b", long) {
		t.Fatal("matched a string without b")
	}
}

// seedPolicy is the default matrix.
func seedPolicy() authz.Policy {
	return authz.Policy{
		Roles: map[string]authz.Role{
			"viewer":    {},
			"developer": {Inherits: []string{"viewer"}},
			"admin":     {Inherits: []string{"developer"}, Permissions: []string{"tools:call:*", "resources:read:*", "prompts:get:*"}},
			"auditor":   {Permissions: []string{"resources:read:audit://*"}},
		},
		Users: map[string][]string{"carol": {"admin"}},
		Tools: map[string]authz.Requirement{
			"delete_users":   {Roles: []string{"admin"}},
			"drop_table":     {Roles: []string{"admin"}},
			"execute_sql":    {Roles: []string{"developer"}},
			"query":          {Roles: []string{"viewer"}},
			"list_tables":    {Roles: []string{"viewer"}},
			"describe_table": {Roles: []string{"viewer"}},
			"github__*":      {Roles: []string{"developer"}},
			"github__admin*": {Roles: []string{"admin"}},
			"scoped":         {Roles: []string{"viewer"}, Scopes: []string{"db:write"}},
		},
	}
}

func TestSeedMatrix(t *testing.T) {
	t.Parallel()
	r, err := authz.NewRBAC(seedPolicy())
	if err != nil {
		t.Fatal(err)
	}
	tools := []string{"delete_users", "drop_table", "execute_sql", "query", "list_tables", "describe_table"}
	allowed := map[string][]string{
		"admin":     tools,
		"developer": {"execute_sql", "query", "list_tables", "describe_table"},
		"viewer":    {"query", "list_tables", "describe_table"},
		"":          nil,
	}
	for role, want := range allowed {
		p := &guard.Principal{Subject: "u-" + role, Roles: []string{role}}
		for _, tool := range tools {
			d := r.Authorize(context.Background(), p, guard.Action{Method: "tools/call", Target: tool})
			if d.Allowed != slices.Contains(want, tool) {
				t.Errorf("role %q tool %s: allowed = %v (%s)", role, tool, d.Allowed, d.Reason)
			}
		}
	}
}

func TestDecisions(t *testing.T) {
	t.Parallel()
	r, err := authz.NewRBAC(seedPolicy())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(tool string) guard.Action { return guard.Action{Method: "tools/call", Target: tool} }
	for _, tc := range []struct {
		name      string
		p         guard.Principal
		a         guard.Action
		allow     bool
		required  []string
		reasonHas string
	}{
		{"developer denied delete_users names admin", guard.Principal{Roles: []string{"developer"}}, call("delete_users"), false, []string{"admin"}, "requires role admin"},
		{"token permission cannot bypass a requirement", guard.Principal{Roles: []string{"viewer"}, Permissions: []string{"tools:call:*"}}, call("drop_table"), false, []string{"admin"}, "requires role admin"},
		{"users map grants roles", guard.Principal{Subject: "carol"}, call("drop_table"), true, nil, ""},
		{"unknown tool without requirement denied for developer", guard.Principal{Roles: []string{"developer"}}, call("mystery"), false, []string{"admin"}, "no rule grants tools:call:mystery"},
		{"admin wildcard grants unknown tool", guard.Principal{Roles: []string{"admin"}}, call("mystery"), true, nil, ""},
		{"glob requirement", guard.Principal{Roles: []string{"developer"}}, call("github__create_issue"), true, nil, ""},
		{"longer glob wins", guard.Principal{Roles: []string{"developer"}}, call("github__admin_delete"), false, []string{"admin"}, "requires role admin"},
		{"scope required", guard.Principal{Roles: []string{"viewer"}, Scopes: []string{"db:read"}}, call("scoped"), false, []string{"viewer"}, "requires scope db:write"},
		{"scope present", guard.Principal{Roles: []string{"viewer"}, Scopes: []string{"db:write"}}, call("scoped"), true, nil, ""},
		{"direct permission grants resource", guard.Principal{Permissions: []string{"resources:read:file:///pub/*"}}, guard.Action{Method: "resources/read", Target: "file:///pub/a"}, true, nil, ""},
		{"resource outside grant", guard.Principal{Permissions: []string{"resources:read:file:///pub/*"}}, guard.Action{Method: "resources/read", Target: "file:///etc/passwd"}, false, []string{"admin"}, "no rule grants"},
		{"least privileged granting roles", guard.Principal{}, guard.Action{Method: "resources/read", Target: "audit://log"}, false, []string{"admin", "auditor"}, ""},
		{"no roles at all", guard.Principal{}, call("query"), false, []string{"viewer"}, "requires role viewer"},
	} {
		d := r.Authorize(ctx, &tc.p, tc.a)
		if d.Allowed != tc.allow || (!tc.allow && !slices.Equal(d.RequiredRoles, tc.required)) || !strings.Contains(d.Reason, tc.reasonHas) {
			t.Errorf("%s: got %+v", tc.name, d)
		}
		if len(d.Policies) == 0 {
			t.Errorf("%s: decision names no policy", tc.name)
		}
	}
	if d := r.Authorize(ctx, nil, call("query")); d.Allowed {
		t.Fatal("nil principal allowed")
	}
}

func TestPolicyErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		p    authz.Policy
		want string
	}{
		"cycle": {authz.Policy{Roles: map[string]authz.Role{
			"a": {Inherits: []string{"b"}}, "b": {Inherits: []string{"c"}}, "c": {Inherits: []string{"a"}}}}, "cycle: a -> b -> c -> a"},
		"unknown parent":    {authz.Policy{Roles: map[string]authz.Role{"a": {Inherits: []string{"zz"}}}}, `unknown role "zz"`},
		"unknown user role": {authz.Policy{Roles: map[string]authz.Role{"a": {}}, Users: map[string][]string{"bob": {"root"}}}, `unknown role "root"`},
		"unknown tool role": {authz.Policy{Roles: map[string]authz.Role{"a": {}}, Tools: map[string]authz.Requirement{"t": {Roles: []string{"root"}}}}, `unknown role "root"`},
	} {
		_, err := authz.NewRBAC(tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to contain %q", name, err, tc.want)
		}
	}
}

func BenchmarkAuthorize(b *testing.B) {
	r, err := authz.NewRBAC(seedPolicy())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cases := map[string]struct {
		p guard.Principal
		a guard.Action
	}{
		"requirement": {guard.Principal{Roles: []string{"admin"}}, guard.Action{Method: "tools/call", Target: "query"}},
		"glob":        {guard.Principal{Roles: []string{"developer"}}, guard.Action{Method: "tools/call", Target: "github__create_issue"}},
		"permission":  {guard.Principal{Roles: []string{"admin"}}, guard.Action{Method: "tools/call", Target: "mystery"}},
		"deny":        {guard.Principal{Roles: []string{"developer"}}, guard.Action{Method: "tools/call", Target: "delete_users"}},
	}
	for name, c := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Authorize(ctx, &c.p, c.a)
			}
		})
	}
}

func TestHasRole(t *testing.T) {
	t.Parallel()
	r, err := authz.NewRBAC(seedPolicy())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    guard.Principal
		role string
		want bool
	}{
		{guard.Principal{Roles: []string{"admin"}}, "viewer", true},
		{guard.Principal{Roles: []string{"viewer"}}, "admin", false},
		{guard.Principal{Subject: "carol"}, "developer", true}, // users map, then inheritance
		{guard.Principal{Roles: []string{"ghost"}}, "ghost", false},
	} {
		if got := r.HasRole(&tc.p, tc.role); got != tc.want {
			t.Errorf("HasRole(%+v, %s) = %v", tc.p, tc.role, got)
		}
	}
	if r.HasRole(nil, "viewer") {
		t.Fatal("nil principal has a role")
	}
}

// A token of mcpguard's authorization server carries roles already narrowed
// by its scopes; the Users map must not widen it, while it still applies to
// the same subject authenticated otherwise.
func TestScopeLimitedPrincipalIgnoresUsersMap(t *testing.T) {
	t.Parallel()
	r, err := authz.NewRBAC(authz.Policy{
		Roles: map[string]authz.Role{
			"viewer": {Permissions: []string{"tools:call:query"}},
			"admin":  {Inherits: []string{"viewer"}, Permissions: []string{"tools:call:*"}},
		},
		Users: map[string][]string{"ann": {"admin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	drop := guard.Action{Method: "tools/call", Target: "drop_table"}
	jwtAnn := &guard.Principal{Subject: "ann", Method: guard.MethodJWT, Roles: []string{"viewer"}}
	if !r.Authorize(ctx, jwtAnn, drop).Allowed {
		t.Fatal("the Users map should grant ann admin")
	}
	oauthAnn := &guard.Principal{Subject: "ann", Method: guard.MethodOAuth, Roles: []string{"viewer"}, ScopeLimited: true}
	if d := r.Authorize(ctx, oauthAnn, drop); d.Allowed {
		t.Fatalf("a scope-limited token was widened by the Users map: %+v", d)
	}
	if got := r.Roles(oauthAnn); !slices.Equal(got, []string{"viewer"}) {
		t.Fatalf("Roles = %v", got)
	}
}

func TestMissingScopes(t *testing.T) {
	t.Parallel()
	r, err := authz.NewRBAC(authz.Policy{
		Roles: map[string]authz.Role{"admin": {}},
		Tools: map[string]authz.Requirement{"delete_users": {Roles: []string{"admin"}, Scopes: []string{"mcp:admin", "mcp:write"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &guard.Principal{Subject: "a", Roles: []string{"admin"}, Scopes: []string{"mcp:admin"}}
	d := r.Authorize(context.Background(), p, guard.Action{Method: "tools/call", Target: "delete_users"})
	if d.Allowed || !slices.Equal(d.MissingScopes, []string{"mcp:write"}) {
		t.Fatalf("decision = %+v", d)
	}
	p.Scopes = append(p.Scopes, "mcp:write")
	if d := r.Authorize(context.Background(), p, guard.Action{Method: "tools/call", Target: "delete_users"}); !d.Allowed || d.MissingScopes != nil {
		t.Fatalf("decision = %+v", d)
	}
}

func TestHeldRole(t *testing.T) {
	t.Parallel()
	r, err := authz.NewRBAC(authz.Policy{Roles: map[string]authz.Role{
		"viewer": {}, "developer": {Inherits: []string{"viewer"}}, "admin": {Inherits: []string{"developer"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		held []string
		role string
		want bool
	}{
		{[]string{"admin"}, "viewer", true},
		{[]string{"viewer"}, "admin", false},
		{[]string{"developer", "viewer"}, "developer", true},
		{[]string{"ghost"}, "ghost", false},
		{nil, "viewer", false},
	} {
		if got := r.HeldRole(tc.held, tc.role); got != tc.want {
			t.Errorf("HeldRole(%v, %s) = %v", tc.held, tc.role, got)
		}
	}
}
