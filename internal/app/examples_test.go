package app

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/internal/config"
)

// TestExamplePolicies checks examples/policies, which the README shows:
// they pass `policy check` against the built-in tools and decide as their
// comments say.
func TestExamplePolicies(t *testing.T) {
	cfg := config.Default()
	cfg.Policies.Dir = filepath.Join("..", "..", "examples", "policies")
	var out bytes.Buffer
	if err := PolicyCheck(context.Background(), &out, cfg, noEnv); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	weekday, saturday := `"time":"2026-11-23T10:00:00Z"`, `"time":"2026-11-28T10:00:00Z"`
	for _, tc := range []struct {
		name   string
		o      PolicyTestOptions
		expect string
	}{
		{"viewer queries products", PolicyTestOptions{Subject: "vera", Roles: []string{"viewer"}, Resource: "query", Context: `{"arguments":{"sql":"SELECT * FROM products"},"ip":"127.0.0.1"}`}, "allow"},
		{"viewer queries users", PolicyTestOptions{Subject: "vera", Roles: []string{"viewer"}, Resource: "query", Context: `{"arguments":{"sql":"SELECT * FROM users"},"ip":"127.0.0.1"}`}, "deny"},
		{"developer queries users", PolicyTestOptions{Subject: "dan", Roles: []string{"developer"}, Resource: "query", Context: `{"arguments":{"sql":"SELECT * FROM users"},"ip":"127.0.0.1"}`}, "allow"},
		{"execute_sql on orders", PolicyTestOptions{Subject: "dan", Roles: []string{"developer"}, Resource: "execute_sql", Context: `{"arguments":{"sql":"UPDATE orders SET amount_cents = 1"}}`}, "allow"},
		{"execute_sql on users", PolicyTestOptions{Subject: "dan", Roles: []string{"developer"}, Resource: "execute_sql", Context: `{"arguments":{"sql":"DELETE FROM users"}}`}, "deny"},
		{"drop on a weekday", PolicyTestOptions{Subject: "ann", Roles: []string{"admin"}, Resource: "drop_table", Context: `{"ip":"127.0.0.1",` + weekday + `}`}, "allow"},
		{"drop on saturday", PolicyTestOptions{Subject: "ann", Roles: []string{"admin"}, Resource: "drop_table", Context: `{"ip":"127.0.0.1",` + saturday + `}`}, "deny"},
		{"admin from outside", PolicyTestOptions{Subject: "ann", Roles: []string{"admin"}, Resource: "list_tables", Context: `{"ip":"203.0.113.7"}`}, "deny"},
		{"delete 11 users", PolicyTestOptions{Subject: "ann", Roles: []string{"admin"}, Resource: "delete_users", Context: `{"arguments":{"ids":[1,2,3,4,5,6,7,8,9,10,11]},"ip":"127.0.0.1"}`}, "deny"},
		{"delete users over OAuth without MFA", PolicyTestOptions{Subject: "ann", Method: "oauth", Roles: []string{"admin"}, Resource: "delete_users", Context: `{"arguments":{"ids":[1]},"ip":"127.0.0.1"}`}, "deny"},
		{"delete users over OAuth with fresh MFA", PolicyTestOptions{Subject: "ann", Method: "oauth", Roles: []string{"admin"}, Resource: "delete_users", MFAAge: 60e9, Context: `{"arguments":{"ids":[1]},"ip":"127.0.0.1"}`}, "allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if o.Method == "" {
				o.Method = "api_key"
			}
			if o.MFAAge == 0 {
				o.MFAAge = -1
			}
			o.Action, o.Expect = "tools/call", tc.expect
			var out bytes.Buffer
			if err := PolicyTest(&out, cfg, o); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if tc.expect == "deny" && !strings.Contains(out.String(), "determined by:") {
				t.Errorf("no determining policy:\n%s", out.String())
			}
		})
	}
}
