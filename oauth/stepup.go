package oauth

import (
	"context"
	"slices"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// UserLookup finds the user a token was issued to. store.OAuthStore
// implements it.
type UserLookup interface {
	GetUser(ctx context.Context, name string) (*store.User, error)
}

// StepUpConfig configures [StepUp].
type StepUpConfig struct {
	// Issuer is the authorization server's issuer: only its tokens are
	// offered a step-up, since only its scopes map to roles.
	Issuer string
	// Scopes are the authorization server's scopes, in order of preference
	// (the first scope whose role would do is the one requested).
	Scopes []Scope
	// HasRole reports whether the held roles, after inheritance, include
	// role (authz.RBAC.HeldRole).
	HasRole func(held []string, role string) bool
	// Users, when set, is asked for the token's user, so that a step-up is
	// offered only when the user holds the role the larger scope would
	// grant; a re-authorization that cannot succeed is not asked for.
	Users UserLookup
}

// StepUp returns a guard.HTTPOptions.StepUp rule for the authorization
// server's tokens (MCP authorization, "Step-up authorization flow"): when
// a call is refused for want of a role or a scope, and a scope the token
// lacks would grant it, the caller is told to re-authorize with its current
// scopes plus that one, instead of being refused outright.
func StepUp(c StepUpConfig) func(context.Context, *guard.Principal, guard.Action, guard.Decision) []string {
	known := map[string]Scope{}
	for _, s := range c.Scopes {
		known[s.Name] = s
	}
	return func(ctx context.Context, p *guard.Principal, _ guard.Action, d guard.Decision) []string {
		if p == nil || p.Method != guard.MethodOAuth || p.Issuer != c.Issuer {
			return nil
		}
		var userRoles []string
		hasMFA := true
		if c.Users != nil {
			u, err := c.Users.GetUser(ctx, p.Subject)
			if err != nil {
				return nil // a client's own token, a deleted user, or no answer: no step-up
			}
			userRoles, hasMFA = u.Roles, len(u.MFASecret) > 0
		}
		if d.MFAMaxAge > 0 {
			// A policy asks for a recent second factor: the "mfa" scope
			// makes the authorization server ask for it again. A person
			// without one cannot step up.
			if !hasMFA {
				return nil
			}
			out := slices.Clone(p.Scopes)
			if !slices.Contains(out, ScopeMFA) {
				out = append(out, ScopeMFA)
			}
			return out
		}
		attainable := func(s Scope) bool {
			return c.Users == nil || c.HasRole(userRoles, s.Role)
		}
		var add []string
		if len(d.MissingScopes) > 0 {
			// A scope requirement refused the call: only those scopes can
			// help, and a role-granting scope would be privilege the call
			// does not need.
			for _, name := range d.MissingScopes {
				s, ok := known[name]
				if !ok || !attainable(s) {
					return nil
				}
				if !slices.Contains(p.Scopes, name) {
					add = append(add, name)
				}
			}
		} else if len(d.RequiredRoles) > 0 {
			// Of the scopes whose role would do, ask for the least
			// privileged: one whose role holds no other candidate's role.
			var candidates []Scope
			for _, s := range c.Scopes {
				if slices.Contains(p.Scopes, s.Name) || slices.Contains(add, s.Name) || !attainable(s) {
					continue
				}
				if slices.ContainsFunc(d.RequiredRoles, func(r string) bool { return c.HasRole([]string{s.Role}, r) }) {
					candidates = append(candidates, s)
				}
			}
			for _, s := range candidates {
				if !slices.ContainsFunc(candidates, func(o Scope) bool { return o.Name != s.Name && o.Role != s.Role && c.HasRole([]string{s.Role}, o.Role) }) {
					add = append(add, s.Name)
					break
				}
			}
		}
		if len(add) == 0 {
			return nil
		}
		return append(slices.Clone(p.Scopes), add...)
	}
}
