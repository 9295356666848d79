// Package authz decides what an authenticated principal may do.
//
// RBAC is mcpguard's role-based authorizer:
//
//   - Roles grant permission patterns such as "tools:call:query" or
//     "tools:call:github__*" ('*' is a glob wildcard, see Match) and may
//     inherit other roles: admin inherits developer inherits viewer.
//   - A principal holds the roles its credential carries plus the roles the
//     policy's Users map grants its subject.
//   - A tool may carry a Requirement (any of these roles, all of these
//     scopes). When a tool has one, the requirement alone decides: a role's
//     wildcard permission cannot widen it and a direct permission in a token
//     cannot bypass it. Tools without a requirement are granted only by a
//     matching permission.
//   - Anything no rule grants is denied.
//
// The same Authorize call filters tools/list and decides tools/call, so what
// a caller sees is exactly what it may use.
package authz

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mcpguard/mcpguard/guard"
)

// Role is a named set of permissions, plus the roles it inherits.
type Role struct {
	Inherits    []string
	Permissions []string
}

// Requirement is what calling one tool takes: any one of Roles (after
// inheritance; empty means any authenticated principal) and every one of
// Scopes.
type Requirement struct {
	Roles  []string
	Scopes []string
}

// Policy is the input to NewRBAC.
type Policy struct {
	// Roles by name.
	Roles map[string]Role
	// Users maps a principal's subject to extra roles.
	Users map[string][]string
	// Tools maps a tool name, or a glob over tool names, to its requirement.
	// An exact name wins over a glob; among globs the longest pattern wins.
	Tools map[string]Requirement
}

// RBAC is a compiled Policy. It is immutable and safe for concurrent use.
//
// Everything an allowing decision says (its reason and policies) is
// computed once, by NewRBAC, so that Authorize allocates nothing on the
// allow path of an exact tool requirement or a role grant.
type RBAC struct {
	// closure[r] is r and every role r inherits, directly or not.
	closure map[string][]string
	// grants[r] are the permission patterns of closure[r].
	grants map[string][]string
	// roleGrants[r] are grants[r] with their precomputed decisions.
	roleGrants map[string][]grant
	users      map[string][]string
	exact      map[string]*toolRule
	globs      []*toolRule // longest pattern first
	roleNames  []string    // sorted, for stable messages
}

// grant is one permission pattern of a role, with the decision it yields.
type grant struct {
	pattern  string
	reason   string   // "role R grants P"
	policies []string // ["role:R"], shared by every decision of the role
}

// toolRule is a compiled per-tool Requirement.
type toolRule struct {
	pattern string // the tool name, or a glob over tool names
	req     Requirement
	// satisfiedBy holds every role that, with inheritance, is one of
	// req.Roles; nil when req.Roles is empty.
	satisfiedBy map[string]bool
	policies    []string // ["tool:<pattern>"], shared by every decision
	// allowed is the reason of an allowing decision without its leading
	// "tool <target>", which is the pattern itself for an exact rule.
	allowed string
	// allowedReason is the whole reason of an allowing decision, for an
	// exact rule.
	allowedReason string
	// requiresRole is req.Roles joined with " or ".
	requiresRole string
}

// NewRBAC compiles p. It fails on an unknown role reference or an
// inheritance cycle.
func NewRBAC(p Policy) (*RBAC, error) {
	r := &RBAC{
		closure:    map[string][]string{},
		grants:     map[string][]string{},
		roleGrants: map[string][]grant{},
		users:      map[string][]string{},
		exact:      map[string]*toolRule{},
	}
	for name, role := range p.Roles {
		for _, parent := range role.Inherits {
			if _, ok := p.Roles[parent]; !ok {
				return nil, fmt.Errorf("authz: role %q inherits unknown role %q", name, parent)
			}
		}
		r.roleNames = append(r.roleNames, name)
	}
	sort.Strings(r.roleNames)
	for _, name := range r.roleNames {
		var order []string
		if err := walk(p.Roles, name, nil, &order); err != nil {
			return nil, err
		}
		r.closure[name] = order
		var perms []string
		for _, inherited := range order {
			perms = append(perms, p.Roles[inherited].Permissions...)
		}
		r.grants[name] = perms
		policies := sharedSlice("role:" + name)
		gs := make([]grant, len(perms))
		for i, pattern := range perms {
			gs[i] = grant{pattern: pattern, reason: fmt.Sprintf("role %s grants %s", name, pattern), policies: policies}
		}
		r.roleGrants[name] = gs
	}
	check := func(where string, roles []string) error {
		for _, role := range roles {
			if _, ok := p.Roles[role]; !ok {
				return fmt.Errorf("authz: %s names unknown role %q", where, role)
			}
		}
		return nil
	}
	for subject, roles := range p.Users {
		if err := check(fmt.Sprintf("user %q", subject), roles); err != nil {
			return nil, err
		}
		r.users[subject] = slices.Clone(roles)
	}
	for tool, req := range p.Tools {
		if err := check(fmt.Sprintf("tool %q", tool), req.Roles); err != nil {
			return nil, err
		}
		t := r.compileTool(tool, req)
		if strings.Contains(tool, "*") {
			r.globs = append(r.globs, t)
		} else {
			r.exact[tool] = t
		}
	}
	sort.Slice(r.globs, func(i, j int) bool {
		if len(r.globs[i].pattern) != len(r.globs[j].pattern) {
			return len(r.globs[i].pattern) > len(r.globs[j].pattern)
		}
		return r.globs[i].pattern < r.globs[j].pattern
	})
	return r, nil
}

// compileTool precomputes what deciding a call of a tool matching pattern
// takes and says. It runs after the role closures are known.
func (r *RBAC) compileTool(pattern string, req Requirement) *toolRule {
	req = Requirement{Roles: slices.Clone(req.Roles), Scopes: slices.Clone(req.Scopes)}
	t := &toolRule{pattern: pattern, req: req, policies: sharedSlice("tool:" + pattern)}
	t.allowed = " requirement met"
	if len(req.Roles) > 0 {
		t.requiresRole = strings.Join(req.Roles, " or ")
		t.allowed = " requires role " + t.requiresRole + ": held"
		t.satisfiedBy = map[string]bool{}
		for role, closure := range r.closure {
			if slices.ContainsFunc(req.Roles, func(want string) bool { return slices.Contains(closure, want) }) {
				t.satisfiedBy[role] = true
			}
		}
	}
	t.allowedReason = "tool " + pattern + t.allowed
	return t
}

// sharedSlice returns a one-element slice whose capacity is its length, so
// that a caller appending to a Decision's shared slice copies it instead of
// writing into it.
func sharedSlice(s string) []string { return []string{s}[:1:1] }

// walk appends name and its ancestors to order (each once), failing on a cycle.
func walk(roles map[string]Role, name string, path []string, order *[]string) error {
	if i := slices.Index(path, name); i >= 0 {
		return fmt.Errorf("authz: role inheritance cycle: %s", strings.Join(append(path[i:], name), " -> "))
	}
	if slices.Contains(*order, name) {
		return nil
	}
	*order = append(*order, name)
	for _, parent := range roles[name].Inherits {
		if err := walk(roles, parent, append(path, name), order); err != nil {
			return err
		}
	}
	return nil
}

// Roles returns the roles p holds before inheritance: its credential's roles
// plus those the policy grants its subject. A scope-limited principal (an
// OAuth token whose roles its scopes already narrowed) gets no roles from
// the Users map, which would widen the token beyond what was consented to.
func (r *RBAC) Roles(p *guard.Principal) []string {
	extra := r.users[p.Subject]
	if len(extra) == 0 || p.ScopeLimited {
		return p.Roles
	}
	out := slices.Clone(p.Roles)
	for _, role := range extra {
		if !slices.Contains(out, role) {
			out = append(out, role)
		}
	}
	return out
}

// hasRole reports whether any of held, after inheritance, is role.
func (r *RBAC) hasRole(held []string, role string) bool {
	for _, h := range held {
		if slices.Contains(r.closure[h], role) {
			return true
		}
	}
	return false
}

// requirement returns the rule that decides calls of tool, if any.
func (r *RBAC) requirement(tool string) *toolRule {
	if t, ok := r.exact[tool]; ok {
		return t
	}
	for _, g := range r.globs {
		if Match(g.pattern, tool) {
			return g
		}
	}
	return nil
}

// permBuf is the size of the stack buffer in which Authorize spells an
// action's permission; longer permissions spill to the heap.
const permBuf = 256

// Authorize implements guard.Authorizer.
//
// The slices of the returned Decision may be shared with other decisions
// and must not be modified.
func (r *RBAC) Authorize(_ context.Context, p *guard.Principal, a guard.Action) guard.Decision {
	if p == nil {
		return guard.Decision{Reason: "not authenticated"}
	}
	held := r.Roles(p)
	if a.Method == "tools/call" {
		if t := r.requirement(a.Target); t != nil {
			return r.checkRequirement(p, held, t, a)
		}
	}
	var buf [permBuf]byte
	perm := appendPermission(buf[:0], a)
	for _, role := range held {
		for i := range r.roleGrants[role] {
			if g := &r.roleGrants[role][i]; match(g.pattern, perm) {
				return guard.Decision{Allowed: true, Reason: g.reason, Policies: g.policies}
			}
		}
	}
	for _, pattern := range p.Permissions {
		if match(pattern, perm) {
			return guard.Decision{Allowed: true, Reason: "credential grants " + pattern, Policies: credentialPolicies}
		}
	}
	s := string(perm)
	return guard.Decision{
		Reason:        "no rule grants " + s,
		RequiredRoles: r.rolesGranting(s),
		Policies:      []string{"default-deny"},
	}
}

// credentialPolicies are the policies of a decision granted by a
// credential's own permissions.
var credentialPolicies = sharedSlice("credential")

// appendPermission appends a.Permission() to b.
func appendPermission(b []byte, a guard.Action) []byte {
	switch a.Method {
	case "tools/call":
		b = append(b, "tools:call:"...)
	case "resources/read":
		b = append(b, "resources:read:"...)
	case "prompts/get":
		b = append(b, "prompts:get:"...)
	default:
		b = append(b, a.Method...)
		b = append(b, ':')
	}
	return append(b, a.Target...)
}

func (r *RBAC) checkRequirement(p *guard.Principal, held []string, t *toolRule, a guard.Action) guard.Decision {
	if t.satisfiedBy != nil && !slices.ContainsFunc(held, func(h string) bool { return t.satisfiedBy[h] }) {
		return guard.Decision{
			Reason:        "tool " + a.Target + " requires role " + t.requiresRole,
			RequiredRoles: slices.Clone(t.req.Roles),
			Policies:      t.policies,
		}
	}
	for i, scope := range t.req.Scopes {
		if !slices.Contains(p.Scopes, scope) {
			missing := []string{scope}
			for _, more := range t.req.Scopes[i+1:] {
				if !slices.Contains(p.Scopes, more) {
					missing = append(missing, more)
				}
			}
			return guard.Decision{
				Reason:        "tool " + a.Target + " requires scope " + scope,
				RequiredRoles: slices.Clone(t.req.Roles),
				Policies:      t.policies,
				MissingScopes: missing,
			}
		}
	}
	reason := t.allowedReason
	if a.Target != t.pattern {
		reason = "tool " + a.Target + t.allowed
	}
	return guard.Decision{Allowed: true, Reason: reason, Policies: t.policies}
}

// rolesGranting lists the roles whose permissions grant perm, omitting any
// role that inherits another listed role, so the answer names the least
// privileged roles that would do.
func (r *RBAC) rolesGranting(perm string) []string {
	var out []string
	for _, role := range r.roleNames {
		if slices.ContainsFunc(r.grants[role], func(p string) bool { return Match(p, perm) }) {
			out = append(out, role)
		}
	}
	return slices.DeleteFunc(slices.Clone(out), func(role string) bool {
		for _, other := range out {
			if other != role && slices.Contains(r.closure[role], other) {
				return true
			}
		}
		return false
	})
}

// HeldRole reports whether any of the roles held, after inheritance, is
// role: HeldRole([]string{"admin"}, "viewer") is true when admin inherits
// viewer. Unknown roles hold nothing.
func (r *RBAC) HeldRole(held []string, role string) bool { return r.hasRole(held, role) }

// HasRole reports whether p holds role, directly, through the policy's
// Users map, or by inheritance: an admin that inherits developer has
// developer.
func (r *RBAC) HasRole(p *guard.Principal, role string) bool {
	return p != nil && r.hasRole(r.Roles(p), role)
}

// Requirement returns the per-tool requirement that decides calls of tool
// and the name or glob it was configured under, if any: an exact name wins
// over a glob, and the longest glob over shorter ones.
func (r *RBAC) Requirement(tool string) (pattern string, req Requirement, ok bool) {
	t := r.requirement(tool)
	if t == nil {
		return "", Requirement{}, false
	}
	return t.pattern, Requirement{Roles: slices.Clone(t.req.Roles), Scopes: slices.Clone(t.req.Scopes)}, true
}

// RoleNames returns the names of the policy's roles, sorted.
func (r *RBAC) RoleNames() []string { return slices.Clone(r.roleNames) }

// Ancestors returns the roles role inherits, directly or not, without role
// itself.
func (r *RBAC) Ancestors(role string) []string {
	c := r.closure[role]
	if len(c) == 0 {
		return nil
	}
	return slices.Clone(c[1:])
}
