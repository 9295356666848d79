package policy

import (
	"sort"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/mcpguard/mcpguard/authz"
)

// actionPrefixes map a permission's prefix to the action it grants.
var actionPrefixes = []struct {
	prefix string
	action string
	typ    types.EntityType
}{
	{"tools:call:", "tools/call", typeTool},
	{"resources:read:", "resources/read", typeResource},
	{"prompts:get:", "prompts/get", typePrompt},
}

// compileRBAC translates the YAML role model into Cedar:
//
//   - each permission P of role R becomes
//     permit(principal in Role::"R", action == Action::"<method>", resource == <Type>::"<name>")
//     or, for a glob, the same with `when { resource.name like "<glob>" }`
//     (or `when { context.permission like "P" }` for a pattern that does
//     not name one method), id "role:R:P";
//   - each per-tool requirement T becomes a permit when the requirement is
//     met and a forbid unless it is, both conditioned on
//     `resource.requirement == "T"` (the most specific requirement
//     governs a tool, as in authz.RBAC), id "tool:T": the forbid is what
//     makes the requirement alone decide, whatever a role's wildcard or a
//     hand-written permit says;
//   - permissions carried by the credential itself become one policy,
//     "credential", on context.credential_grants.
//
// The YAML users: map becomes entity data (the principal's parent roles),
// not policies.
func compileRBAC(p authz.Policy, rbac *authz.RBAC) []*compiled {
	var out []*compiled
	add := func(id, reason string, pol *ast.Policy) *compiled {
		pol = pol.Annotate("id", types.String(id))
		cp := cedar.NewPolicyFromAST(pol)
		c := &compiled{id: id, policy: cp, ast: (*xast.Policy)(cp.AST()), forbid: cp.Effect() == cedar.Forbid, reason: reason}
		out = append(out, c)
		return c
	}
	for _, role := range rbac.RoleNames() {
		roleUID := types.NewEntityUID(typeRole, types.String(role))
		for _, perm := range p.Roles[role].Permissions {
			pol := ast.Permit().PrincipalIn(roleUID)
			matched := false
			for _, ap := range actionPrefixes {
				name, ok := strings.CutPrefix(perm, ap.prefix)
				if !ok {
					continue
				}
				matched = true
				pol = pol.ActionEq(types.NewEntityUID(typeAction, types.String(ap.action)))
				if strings.Contains(name, "*") {
					pol = pol.When(ast.Resource().Access("name").Like(globPattern(name)))
				} else {
					pol = pol.ResourceEq(types.NewEntityUID(ap.typ, types.String(name)))
				}
				break
			}
			if !matched {
				pol = pol.When(ast.Context().Access("permission").Like(globPattern(perm)))
			}
			add("role:"+role+":"+perm, "role "+role+" grants "+perm, pol)
		}
	}

	patterns := make([]string, 0, len(p.Tools))
	for pattern := range p.Tools {
		patterns = append(patterns, pattern)
	}
	sort.Strings(patterns)
	call := types.NewEntityUID(typeAction, "tools/call")
	for _, pattern := range patterns {
		req := p.Tools[pattern]
		met := ast.True()
		if len(req.Roles) > 0 {
			var anyRole ast.Node
			for i, role := range req.Roles {
				in := ast.Principal().In(ast.EntityUID(types.Ident(typeRole), types.String(role)))
				if i == 0 {
					anyRole = in
				} else {
					anyRole = anyRole.Or(in)
				}
			}
			met = anyRole
		}
		if len(req.Scopes) > 0 {
			scopes := make([]ast.Node, len(req.Scopes))
			for i, s := range req.Scopes {
				scopes[i] = ast.String(s)
			}
			has := ast.Principal().Access("scopes").ContainsAll(ast.Set(scopes...))
			if len(req.Roles) > 0 {
				met = met.And(has)
			} else {
				met = has
			}
		}
		governs := ast.Resource().Access("requirement").Equal(ast.String(pattern))
		scope := func(pol *ast.Policy) *ast.Policy {
			pol = pol.ActionEq(call)
			if !strings.Contains(pattern, "*") {
				pol = pol.ResourceEq(types.NewEntityUID(typeTool, types.String(pattern)))
			}
			return pol.When(governs)
		}
		what := "requirement met"
		if len(req.Roles) > 0 {
			what = "requires role " + strings.Join(req.Roles, " or ") + ": held"
		}
		add("tool:"+pattern, "tool "+pattern+" "+what, scope(ast.Permit()).When(met))
		refuse := "tool " + pattern + " requires "
		switch {
		case len(req.Roles) > 0 && len(req.Scopes) > 0:
			refuse += "role " + strings.Join(req.Roles, " or ") + " and scope " + strings.Join(req.Scopes, " ")
		case len(req.Roles) > 0:
			refuse += "role " + strings.Join(req.Roles, " or ")
		default:
			refuse += "scope " + strings.Join(req.Scopes, " ")
		}
		c := add("tool:"+pattern+":unmet", refuse, scope(ast.Forbid()).Unless(met))
		c.requiredRoles, c.requiredScopes = req.Roles, req.Scopes
	}
	add("credential", "the credential's own permissions grant it",
		ast.Permit().When(ast.Context().Access("credential_grants").Equal(ast.True())))
	return out
}

// globPattern turns an authz glob ('*' matches any run of characters,
// nothing else is special) into a Cedar pattern.
func globPattern(glob string) types.Pattern {
	var parts []any
	for i, lit := range strings.Split(glob, "*") {
		if i > 0 {
			parts = append(parts, types.Wildcard{})
		}
		if lit != "" {
			parts = append(parts, lit)
		}
	}
	return types.NewPattern(parts...)
}
