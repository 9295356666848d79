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
type RBAC struct {
	// closure[r] is r and every role r inherits, directly or not.
	closure map[string][]string
	// grants[r] are the permission patterns of closure[r].
	grants    map[string][]string
	users     map[string][]string
	exact     map[string]Requirement
	globs     []globRequirement // longest pattern first
	roleNames []string          // sorted, for stable messages
}

type globRequirement struct {
	pattern string
	req     Requirement
}

// NewRBAC compiles p. It fails on an unknown role reference or an
// inheritance cycle.
func NewRBAC(p Policy) (*RBAC, error) {
	r := &RBAC{closure: map[string][]string{}, grants: map[string][]string{}, users: map[string][]string{}, exact: map[string]Requirement{}}
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
		if strings.Contains(tool, "*") {
			r.globs = append(r.globs, globRequirement{tool, req})
		} else {
			r.exact[tool] = req
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
// plus those the policy grants its subject.
func (r *RBAC) Roles(p *guard.Principal) []string {
	extra := r.users[p.Subject]
	if len(extra) == 0 {
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

func (r *RBAC) requirement(tool string) (Requirement, string, bool) {
	if req, ok := r.exact[tool]; ok {
		return req, tool, true
	}
	for _, g := range r.globs {
		if Match(g.pattern, tool) {
			return g.req, g.pattern, true
		}
	}
	return Requirement{}, "", false
}

// Authorize implements guard.Authorizer.
func (r *RBAC) Authorize(_ context.Context, p *guard.Principal, a guard.Action) guard.Decision {
	if p == nil {
		return guard.Decision{Reason: "not authenticated"}
	}
	held := r.Roles(p)
	if a.Method == "tools/call" {
		if req, rule, ok := r.requirement(a.Target); ok {
			return r.checkRequirement(p, held, req, rule, a)
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

func (r *RBAC) checkRequirement(p *guard.Principal, held []string, req Requirement, rule string, a guard.Action) guard.Decision {
	policy := []string{"tool:" + rule}
	if len(req.Roles) > 0 && !slices.ContainsFunc(req.Roles, func(role string) bool { return r.hasRole(held, role) }) {
		return guard.Decision{
			Reason:        fmt.Sprintf("tool %s requires role %s", a.Target, strings.Join(req.Roles, " or ")),
			RequiredRoles: slices.Clone(req.Roles),
			Policies:      policy,
		}
	}
	for _, scope := range req.Scopes {
		if !slices.Contains(p.Scopes, scope) {
			return guard.Decision{
				Reason:        fmt.Sprintf("tool %s requires scope %s", a.Target, scope),
				RequiredRoles: slices.Clone(req.Roles),
				Policies:      policy,
			}
		}
	}
	reason := fmt.Sprintf("tool %s requirement met", a.Target)
	if len(req.Roles) > 0 {
		reason = fmt.Sprintf("tool %s requires role %s: held", a.Target, strings.Join(req.Roles, " or "))
	}
	return guard.Decision{Allowed: true, Reason: reason, Policies: policy}
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

// HasRole reports whether p holds role, directly, through the policy's
// Users map, or by inheritance: an admin that inherits developer has
// developer.
func (r *RBAC) HasRole(p *guard.Principal, role string) bool {
	return p != nil && r.hasRole(r.Roles(p), role)
}
