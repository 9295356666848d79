package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpguard/mcpguard/store/internal/codec"
)

// TestOAuthLookupsUseIndexes checks that every OAuth lookup by key, family,
// subject or expiry is served by an index rather than a scan of the table.
func TestOAuthLookupsUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []string{
		`SELECT ` + codec.UserColumns + ` FROM oauth_users WHERE name = 'u'`,
		`SELECT ` + codec.ClientColumns + ` FROM oauth_clients WHERE id = 'c'`,
		`SELECT ` + codec.CodeColumns + ` FROM oauth_codes WHERE hash = x'01'`,
		`UPDATE oauth_codes SET used_at = 1 WHERE hash = x'01' AND used_at = 0`,
		`SELECT ` + codec.RefreshColumns + ` FROM oauth_refresh_tokens WHERE hash = x'01'`,
		`UPDATE oauth_refresh_tokens SET revoked_at = 1 WHERE family_id = 'f' AND revoked_at = 0`,
		`UPDATE oauth_refresh_tokens SET revoked_at = 1 WHERE subject = 'u' AND revoked_at = 0`,
		`DELETE FROM oauth_codes WHERE expires_at < 1`,
		`DELETE FROM oauth_refresh_tokens WHERE expires_at < 1`,
		`SELECT scopes FROM oauth_consents WHERE user_name = 'u' AND client_id = 'c'`,
		`DELETE FROM oauth_consents WHERE user_name = 'u'`,
		`UPDATE oauth_signing_keys SET retired_at = 1 WHERE id = 'k'`,
	} {
		plan := queryPlan(t, s, q)
		if !strings.HasPrefix(plan, "SEARCH ") || strings.Contains(plan, "SCAN ") {
			t.Errorf("%s: plan %q is not an index search", q, plan)
		}
	}
}
