package oauth_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/oauth"
	"github.com/mcpguard/mcpguard/store"
)

type users map[string][]string

// GetUser returns the user; ann has a second factor enrolled.
func (us users) GetUser(_ context.Context, name string) (*store.User, error) {
	roles, ok := us[name]
	if !ok {
		return nil, store.ErrNotFound
	}
	u := &store.User{Name: name, Roles: roles}
	if name == "ann" {
		u.MFASecret = []byte("enrolled")
	}
	return u, nil
}

func TestStepUp(t *testing.T) {
	inherits := map[string][]string{"viewer": {"viewer"}, "developer": {"developer", "viewer"}, "admin": {"admin", "developer", "viewer"}}
	hasRole := func(held []string, role string) bool {
		return slices.ContainsFunc(held, func(h string) bool { return slices.Contains(inherits[h], role) })
	}
	rule := oauth.StepUp(oauth.StepUpConfig{
		Issuer:  "https://as.example",
		Scopes:  []oauth.Scope{{Name: "mcp:admin", Role: "admin"}, {Name: "mcp:read", Role: "viewer"}, {Name: "mcp:tools", Role: "developer"}},
		HasRole: hasRole,
		Users:   users{"ann": {"admin"}, "vic": {"viewer"}},
	})
	tok := func(sub string, scopes ...string) *guard.Principal {
		return &guard.Principal{Subject: sub, Issuer: "https://as.example", Method: guard.MethodOAuth, Scopes: scopes, ScopeLimited: true}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		p    *guard.Principal
		d    guard.Decision
		want []string
	}{
		{"admin tool for an admin user", tok("ann", "mcp:read", "mcp:tools"), guard.Decision{RequiredRoles: []string{"admin"}}, []string{"mcp:read", "mcp:tools", "mcp:admin"}},
		{"least privileged scope is asked for", tok("ann", "mcp:read"), guard.Decision{RequiredRoles: []string{"developer"}}, []string{"mcp:read", "mcp:tools"}},
		{"user cannot hold the role", tok("vic", "mcp:read"), guard.Decision{RequiredRoles: []string{"admin"}}, nil},
		{"unknown user", tok("zed", "mcp:read"), guard.Decision{RequiredRoles: []string{"admin"}}, nil},
		{"missing tool scope", tok("ann", "mcp:read"), guard.Decision{MissingScopes: []string{"mcp:admin"}}, []string{"mcp:read", "mcp:admin"}},
		{"missing scope that is not ours", tok("ann", "mcp:read"), guard.Decision{MissingScopes: []string{"other"}}, nil},
		{"role held, scope missing: only the scope", tok("ann", "mcp:tools"), guard.Decision{RequiredRoles: []string{"admin"}, MissingScopes: []string{"mcp:admin"}}, []string{"mcp:tools", "mcp:admin"}},
		{"role held, foreign scope missing: nothing", tok("ann", "mcp:tools"), guard.Decision{RequiredRoles: []string{"developer"}, MissingScopes: []string{"repo:write"}}, nil},
		{"already holds every useful scope", tok("ann", "mcp:admin"), guard.Decision{RequiredRoles: []string{"admin"}}, nil},
		{"another issuer", &guard.Principal{Subject: "ann", Issuer: "https://idp.example", Method: guard.MethodOAuth}, guard.Decision{RequiredRoles: []string{"admin"}}, nil},
		{"an API key", &guard.Principal{Subject: "ann", Method: guard.MethodAPIKey}, guard.Decision{RequiredRoles: []string{"admin"}}, nil},
		{"stale second factor", tok("ann", "mcp:admin"), guard.Decision{MFAMaxAge: 5 * time.Minute}, []string{"mcp:admin", "mfa"}},
		{"stale second factor, mfa scope held", tok("ann", "mcp:admin", "mfa"), guard.Decision{MFAMaxAge: 5 * time.Minute}, []string{"mcp:admin", "mfa"}},
		{"no second factor enrolled", tok("vic", "mcp:read"), guard.Decision{MFAMaxAge: 5 * time.Minute}, nil},
	} {
		if got := rule(ctx, tc.p, guard.Action{Method: "tools/call", Target: "x"}, tc.d); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
