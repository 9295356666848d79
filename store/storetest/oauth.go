package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/store"
)

// RunOAuth runs the conformance suite of store.OAuthStore. open must
// return a new, empty store; the suite does not close it.
func RunOAuth(t *testing.T, open func(t *testing.T) store.OAuthStore) {
	ctx := context.Background()
	base := time.Date(2026, 3, 4, 5, 6, 7, 891011, time.UTC)
	h := func(s string) []byte { return []byte("digest:" + s) }

	t.Run("Users", func(t *testing.T) {
		s := open(t)
		u := &store.User{Name: "alice", PasswordHash: "$argon2id$x", Roles: []string{"admin", "viewer"},
			MFASecret: []byte{1, 2, 3}, BackupCodes: [][]byte{h("a"), h("b")}, MFALastStep: 7}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, u); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate user: %v", err)
		}
		if err := s.CreateUser(ctx, &store.User{Name: "bob", PasswordHash: "x", Roles: []string{"viewer"}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetUser(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
			t.Fatal("timestamps not set")
		}
		got.CreatedAt, got.UpdatedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, u) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, u)
		}
		list, err := s.ListUsers(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" || list[1].MFASecret != nil {
			t.Fatalf("ListUsers = %v, %v", list, err)
		}
		u.PasswordHash, u.Roles, u.MFASecret, u.BackupCodes, u.MFALastStep = "$argon2id$y", []string{"viewer"}, nil, nil, 0
		if err := s.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetUser(ctx, "alice")
		if got.PasswordHash != "$argon2id$y" || !slices.Equal(got.Roles, []string{"viewer"}) || got.MFASecret != nil || got.BackupCodes != nil {
			t.Fatalf("after update: %+v", got)
		}
		if err := s.UpdateUser(ctx, &store.User{Name: "ghost"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown: %v", err)
		}
		if err := s.GrantConsent(ctx, "bob", "c1", []string{"s"}, base); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted user: %v", err)
		}
		if c, _ := s.ConsentedScopes(ctx, "bob", "c1"); len(c) != 0 {
			t.Fatalf("a deleted user's consent survived: %v", c)
		}
		if err := s.DeleteUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})

	t.Run("LoginFailuresAndLockout", func(t *testing.T) {
		s := open(t)
		s.CreateUser(ctx, &store.User{Name: "u", PasswordHash: "x"})
		for i := 1; i <= 2; i++ {
			until, err := s.RecordLoginFailure(ctx, "u", base, 3, time.Minute)
			if err != nil || !until.IsZero() {
				t.Fatalf("failure %d: %v %v", i, until, err)
			}
		}
		until, err := s.RecordLoginFailure(ctx, "u", base, 3, time.Minute)
		if err != nil || !until.Equal(base.Add(time.Minute)) {
			t.Fatalf("third failure: %v %v", until, err)
		}
		u, _ := s.GetUser(ctx, "u")
		if !u.LockedUntil.Equal(base.Add(time.Minute)) || u.FailedLogins != 0 {
			t.Fatalf("user after lockout: %+v", u)
		}
		s.RecordLoginFailure(ctx, "u", base, 3, time.Minute)
		if err := s.ResetLoginFailures(ctx, "u"); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.GetUser(ctx, "u"); u.FailedLogins != 0 {
			t.Fatalf("failures not reset: %d", u.FailedLogins)
		}
		if _, err := s.RecordLoginFailure(ctx, "ghost", base, 3, time.Minute); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
	})

	t.Run("MFAStepAndBackupCodes", func(t *testing.T) {
		s := open(t)
		s.CreateUser(ctx, &store.User{Name: "u", PasswordHash: "x", BackupCodes: [][]byte{h("1"), h("2")}})
		for _, tc := range []struct {
			step int64
			want bool
		}{{10, true}, {10, false}, {9, false}, {11, true}} {
			if ok, err := s.AdvanceMFAStep(ctx, "u", tc.step); ok != tc.want || err != nil {
				t.Fatalf("AdvanceMFAStep(%d) = %v, %v; want %v", tc.step, ok, err, tc.want)
			}
		}
		if ok, err := s.UseBackupCode(ctx, "u", h("2")); !ok || err != nil {
			t.Fatalf("first use: %v %v", ok, err)
		}
		if ok, _ := s.UseBackupCode(ctx, "u", h("2")); ok {
			t.Fatal("a backup code worked twice")
		}
		if ok, _ := s.UseBackupCode(ctx, "u", h("3")); ok {
			t.Fatal("an unknown backup code worked")
		}
		if u, _ := s.GetUser(ctx, "u"); len(u.BackupCodes) != 1 || string(u.BackupCodes[0]) != string(h("1")) {
			t.Fatalf("remaining codes: %q", u.BackupCodes)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ok, err := s.UseBackupCode(ctx, "u", h("1")); ok && err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d racing uses of one backup code succeeded", wins.Load())
		}
	})

	t.Run("Clients", func(t *testing.T) {
		s := open(t)
		a := &store.OAuthClient{ID: "a", SecretHash: h("s"), Name: "A", RedirectURIs: []string{"https://a.example/cb"},
			GrantTypes: []string{"authorization_code", "client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic",
			Scopes: []string{"mcp:read"}, Roles: []string{"viewer"}, CreatedAt: base}
		b := &store.OAuthClient{ID: "b", Name: "B", RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"},
			TokenEndpointAuthMethod: "none", Scopes: []string{}, Roles: []string{}, Dynamic: true, CreatedAt: base.Add(time.Second)}
		for _, c := range []*store.OAuthClient{a, b} {
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateClient(ctx, a); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate client: %v", err)
		}
		got, err := s.GetClient(ctx, "a")
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip:\n got %+v\nwant %+v (%v)", got, a, err)
		}
		list, _ := s.ListClients(ctx)
		if len(list) != 2 || list[0].ID != "b" {
			t.Fatalf("ListClients not newest first: %v", list)
		}
		if n, err := s.CountDynamicClients(ctx); n != 1 || err != nil {
			t.Fatalf("CountDynamicClients = %d, %v", n, err)
		}
		if err := s.DeleteClient(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClient(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted client: %v", err)
		}
		if err := s.DeleteClient(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})

	t.Run("AuthCodeSingleUse", func(t *testing.T) {
		s := open(t)
		c := &store.AuthCode{Hash: h("code"), FamilyID: "fam", ClientID: "c", RedirectURI: "http://127.0.0.1/cb", Subject: "alice",
			Scopes: []string{"mcp:read"}, Resource: "http://x/mcp", CodeChallenge: "chal", AuthTime: base, MFATime: base.Add(time.Second),
			CreatedAt: base, ExpiresAt: base.Add(time.Minute)}
		if err := s.CreateAuthCode(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAuthCode(ctx, c); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate code: %v", err)
		}
		got, err := s.ConsumeAuthCode(ctx, h("code"), base.Add(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want := *c
		want.UsedAt = base.Add(5 * time.Second)
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, &want)
		}
		again, err := s.ConsumeAuthCode(ctx, h("code"), base.Add(6*time.Second))
		if !errors.Is(err, store.ErrAlreadyUsed) || again == nil || again.FamilyID != "fam" {
			t.Fatalf("second use: %+v, %v", again, err)
		}
		if _, err := s.ConsumeAuthCode(ctx, h("nope"), base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown code: %v", err)
		}
		// Racing redemptions: exactly one wins.
		s.CreateAuthCode(ctx, &store.AuthCode{Hash: h("race"), FamilyID: "f2", Scopes: []string{}, CreatedAt: base, ExpiresAt: base.Add(time.Minute)})
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.ConsumeAuthCode(ctx, h("race"), base); err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d racing redemptions succeeded, want 1", wins.Load())
		}
	})

	t.Run("RefreshRotationAndReuse", func(t *testing.T) {
		s := open(t)
		tok := func(name string) *store.RefreshToken {
			return &store.RefreshToken{Hash: h(name), FamilyID: "fam", ClientID: "c", Subject: "alice", Scopes: []string{"mcp:read"},
				Resource: "http://x/mcp", AuthTime: base, MFATime: base, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		}
		r1 := tok("r1")
		if err := s.CreateRefreshToken(ctx, r1); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetRefreshToken(ctx, h("r1"))
		if err != nil || !reflect.DeepEqual(got, r1) {
			t.Fatalf("round trip:\n got %+v\nwant %+v (%v)", got, r1, err)
		}
		old, err := s.RotateRefreshToken(ctx, h("r1"), tok("r2"), base.Add(time.Second))
		if err != nil || old.Subject != "alice" {
			t.Fatalf("rotate: %+v %v", old, err)
		}
		if r, _ := s.GetRefreshToken(ctx, h("r1")); !r.UsedAt.Equal(base.Add(time.Second)) {
			t.Fatalf("old token not marked used: %+v", r)
		}
		if _, err := s.RotateRefreshToken(ctx, h("r2"), &store.RefreshToken{Hash: h("x"), FamilyID: "other", Scopes: []string{}}, base); err == nil {
			t.Fatal("rotation into another family accepted")
		}
		// Replaying r1 revokes the family: r2 is dead too.
		if _, err := s.RotateRefreshToken(ctx, h("r1"), tok("r3"), base.Add(2*time.Second)); !errors.Is(err, store.ErrAlreadyUsed) {
			t.Fatalf("replay: %v", err)
		}
		if _, err := s.RotateRefreshToken(ctx, h("r2"), tok("r4"), base.Add(3*time.Second)); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("after replay, the current token: %v", err)
		}
		if r, _ := s.GetRefreshToken(ctx, h("r2")); r.RevokedAt.IsZero() {
			t.Fatal("family not revoked")
		}
		if _, err := s.GetRefreshToken(ctx, h("r3")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a token was issued from a replay: %v", err)
		}
		if _, err := s.RotateRefreshToken(ctx, h("nope"), tok("r5"), base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
		// Racing rotations of one token: one wins; the losers replay a used
		// token, which ends the family.
		race := func(name string) *store.RefreshToken {
			t := tok(name)
			t.FamilyID = "fam2"
			return t
		}
		s.CreateRefreshToken(ctx, race("base"))
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.RotateRefreshToken(ctx, h("base"), race(fmt.Sprint("n", i)), base); err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d racing rotations succeeded, want 1", wins.Load())
		}
		for i := range 10 {
			if r, err := s.GetRefreshToken(ctx, h(fmt.Sprint("n", i))); err == nil && r.RevokedAt.IsZero() {
				t.Fatal("the family survived a replay")
			}
		}
	})

	t.Run("RevokeFamilyAndUser", func(t *testing.T) {
		s := open(t)
		for i, spec := range []struct{ fam, sub string }{{"f1", "alice"}, {"f1", "alice"}, {"f2", "alice"}, {"f3", "bob"}} {
			s.CreateRefreshToken(ctx, &store.RefreshToken{Hash: h(fmt.Sprint(i)), FamilyID: spec.fam, Subject: spec.sub, Scopes: []string{}, CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
		}
		if err := s.RevokeRefreshFamily(ctx, "f1", base); err != nil {
			t.Fatal(err)
		}
		revoked := func(i int) bool {
			r, _ := s.GetRefreshToken(ctx, h(fmt.Sprint(i)))
			return !r.RevokedAt.IsZero()
		}
		if !revoked(0) || !revoked(1) || revoked(2) || revoked(3) {
			t.Fatal("RevokeRefreshFamily revoked the wrong tokens")
		}
		if err := s.RevokeUserRefreshTokens(ctx, "alice", base); err != nil {
			t.Fatal(err)
		}
		if !revoked(2) || revoked(3) {
			t.Fatal("RevokeUserRefreshTokens revoked the wrong tokens")
		}
	})

	t.Run("Consent", func(t *testing.T) {
		s := open(t)
		if got, err := s.ConsentedScopes(ctx, "alice", "c"); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("no consent: %v %v", got, err)
		}
		s.GrantConsent(ctx, "alice", "c", []string{"mcp:tools", "mcp:read"}, base)
		s.GrantConsent(ctx, "alice", "c", []string{"mcp:admin", "mcp:read"}, base)
		s.GrantConsent(ctx, "alice", "other", []string{"x"}, base)
		got, _ := s.ConsentedScopes(ctx, "alice", "c")
		if !slices.Equal(got, []string{"mcp:admin", "mcp:read", "mcp:tools"}) {
			t.Fatalf("consent = %v", got)
		}
	})

	t.Run("SigningKeysAndPurge", func(t *testing.T) {
		s := open(t)
		k1 := &store.SigningKey{ID: "k1", Algorithm: "ES256", PrivateKeyPEM: []byte("pem1"), CreatedAt: base}
		k2 := &store.SigningKey{ID: "k2", Algorithm: "ES256", PrivateKeyPEM: []byte("pem2"), CreatedAt: base.Add(time.Hour)}
		for _, k := range []*store.SigningKey{k1, k2} {
			if err := s.CreateSigningKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateSigningKey(ctx, k1); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate key: %v", err)
		}
		if err := s.RetireSigningKey(ctx, "k1", base.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RetireSigningKey(ctx, "nope", base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("retire unknown: %v", err)
		}
		keys, _ := s.ListSigningKeys(ctx)
		k1.RetiredAt = base.Add(2 * time.Hour)
		if len(keys) != 2 || !reflect.DeepEqual(keys[0], k2) || !reflect.DeepEqual(keys[1], k1) {
			t.Fatalf("ListSigningKeys = %+v", keys)
		}
		s.CreateAuthCode(ctx, &store.AuthCode{Hash: h("old"), Scopes: []string{}, CreatedAt: base, ExpiresAt: base})
		s.CreateAuthCode(ctx, &store.AuthCode{Hash: h("new"), Scopes: []string{}, CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
		s.CreateRefreshToken(ctx, &store.RefreshToken{Hash: h("old"), Scopes: []string{}, CreatedAt: base, ExpiresAt: base})
		n, err := s.PurgeExpiredOAuth(ctx, base.Add(time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("purged %d, %v; want 2", n, err)
		}
		if _, err := s.ConsumeAuthCode(ctx, h("new"), base); err != nil {
			t.Fatalf("a live code was purged: %v", err)
		}
	})
}
