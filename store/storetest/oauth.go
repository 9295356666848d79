package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/store"
)

// RunOAuth runs the conformance suite of store.OAuthStore. open must
// return a new, empty store; the suite does not close it.
func RunOAuth(t *testing.T, open func(t *testing.T) store.OAuthStore) {
	ctx := context.Background()
	// Nanoseconds in every time, so that a backend rounding to micro- or
	// milliseconds fails the round trips.
	base := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	h := func(s string) []byte { return []byte("digest:" + s) }
	hashes := func(l ...string) [][]byte {
		out := make([][]byte, len(l))
		for i, s := range l {
			out[i] = h(s)
		}
		return out
	}

	// fullUser has every field set (the store sets CreatedAt/UpdatedAt).
	fullUser := func(name string) *store.User {
		return &store.User{Name: name, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$" + name,
			Roles: []string{"admin", "viewer"}, MFASecret: []byte{0, 1, 2, 255}, BackupCodes: hashes("b1", "b2", "b3"),
			MFALastStep: 56789, FailedLogins: 2, LockedUntil: base.Add(3*time.Minute + 17)}
	}
	// withoutStoreTimes returns a copy of u with the store-set times zeroed.
	withoutStoreTimes := func(u *store.User) *store.User {
		c := *u
		c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
		return &c
	}
	fullCode := func(name string) *store.AuthCode {
		return &store.AuthCode{Hash: h(name), FamilyID: "fam-" + name, ClientID: "client-" + name, RedirectURI: "http://127.0.0.1:8123/cb",
			Subject: "alice", Scopes: []string{"mcp:read", "mcp:tools"}, Resource: "https://mcp.example/mcp",
			CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", AuthTime: base.Add(-time.Minute + 3),
			MFATime: base.Add(-time.Second + 5), CreatedAt: base, ExpiresAt: base.Add(time.Minute + 7)}
	}
	token := func(name, family string) *store.RefreshToken {
		return &store.RefreshToken{Hash: h(name), FamilyID: family, ClientID: "client", Subject: "alice",
			Scopes: []string{"mcp:read", "offline_access"}, Resource: "https://mcp.example/mcp",
			AuthTime: base.Add(-time.Hour + 1), MFATime: base.Add(-time.Hour + 2), CreatedAt: base.Add(3), ExpiresAt: base.Add(24*time.Hour + 4),
			CertThumbprint: "x5t-" + name}
	}
	mustRefresh := func(t *testing.T, s store.OAuthStore, name string) *store.RefreshToken {
		t.Helper()
		r, err := s.GetRefreshToken(ctx, h(name))
		if err != nil {
			t.Fatalf("GetRefreshToken(%s): %v", name, err)
		}
		return r
	}
	absentRefresh := func(t *testing.T, s store.OAuthStore, name string) {
		t.Helper()
		if r, err := s.GetRefreshToken(ctx, h(name)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetRefreshToken(%s) = %+v, %v; want ErrNotFound", name, r, err)
		}
	}

	t.Run("UserRoundTrip", func(t *testing.T) {
		s := open(t)
		u := fullUser("alice")
		before := time.Now()
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		got, err := s.GetUser(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		for what, ts := range map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt} {
			if ts.UnixNano() < before.UnixNano() || ts.UnixNano() > after.UnixNano() {
				t.Errorf("%s = %v, want within [%v, %v]", what, ts, before, after)
			}
		}
		if w := withoutStoreTimes(got); !reflect.DeepEqual(w, u) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", w, u)
		}
		dup := fullUser("alice")
		dup.PasswordHash = "other"
		if err := s.CreateUser(ctx, dup); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate user: %v, want ErrExists", err)
		}
		if again, _ := s.GetUser(ctx, "alice"); again.PasswordHash != u.PasswordHash {
			t.Fatal("a refused duplicate overwrote the user")
		}
		if _, err := s.GetUser(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v, want ErrNotFound", err)
		}
		// A user without MFA reads back with nil secret and codes.
		if err := s.CreateUser(ctx, &store.User{Name: "plain", PasswordHash: "x", Roles: []string{"viewer"}}); err != nil {
			t.Fatal(err)
		}
		if p, err := s.GetUser(ctx, "plain"); err != nil || p.MFASecret != nil || len(p.BackupCodes) != 0 || p.MFALastStep != 0 || !p.LockedUntil.IsZero() {
			t.Fatalf("user without MFA = %+v, %v", p, err)
		}
	})

	t.Run("ListUsersByName", func(t *testing.T) {
		s := open(t)
		if l, err := s.ListUsers(ctx); err != nil || len(l) != 0 {
			t.Fatalf("ListUsers of an empty store = %v, %v", l, err)
		}
		want := map[string]*store.User{}
		for _, name := range []string{"carol", "alice", "bob"} {
			u := fullUser(name)
			want[name] = u
			if err := s.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range list {
			names = append(names, u.Name)
			if w := withoutStoreTimes(u); !reflect.DeepEqual(w, want[u.Name]) {
				t.Errorf("listed user:\n got %+v\nwant %+v", w, want[u.Name])
			}
		}
		if !slices.Equal(names, []string{"alice", "bob", "carol"}) {
			t.Fatalf("ListUsers order = %v, want by name", names)
		}
	})

	t.Run("UpdateUser", func(t *testing.T) {
		s := open(t)
		u := fullUser("alice")
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		created, _ := s.GetUser(ctx, "alice")
		time.Sleep(2 * time.Millisecond) // let the clock move past created_at
		start := time.Now()
		upd := &store.User{Name: "alice", PasswordHash: "$argon2id$new", Roles: []string{"operator"}, MFASecret: []byte("new-secret"),
			BackupCodes: hashes("n1"), MFALastStep: 99999,
			// Not UpdateUser's to change:
			FailedLogins: 9, LockedUntil: base.Add(99 * time.Hour), CreatedAt: base, UpdatedAt: base}
		if err := s.UpdateUser(ctx, upd); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetUser(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		want := *u
		want.PasswordHash, want.Roles, want.MFASecret, want.BackupCodes, want.MFALastStep = upd.PasswordHash, upd.Roles, upd.MFASecret, upd.BackupCodes, upd.MFALastStep
		want.CreatedAt, want.UpdatedAt = created.CreatedAt, got.UpdatedAt
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("after update:\n got %+v\nwant %+v", got, &want)
		}
		if got.UpdatedAt.UnixNano() < start.UnixNano() || !got.UpdatedAt.After(created.UpdatedAt) {
			t.Fatalf("UpdatedAt = %v, want set by the update (after %v)", got.UpdatedAt, start)
		}
		// Removing MFA.
		upd.MFASecret, upd.BackupCodes, upd.MFALastStep = nil, nil, 0
		if err := s.UpdateUser(ctx, upd); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetUser(ctx, "alice"); got.MFASecret != nil || len(got.BackupCodes) != 0 || got.MFALastStep != 0 {
			t.Fatalf("MFA not removed: %+v", got)
		}
		if err := s.UpdateUser(ctx, &store.User{Name: "ghost", PasswordHash: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown: %v, want ErrNotFound", err)
		}
		if _, err := s.GetUser(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("updating an unknown user created it: %v", err)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s := open(t)
		for _, n := range []string{"alice", "bob"} {
			if err := s.CreateUser(ctx, fullUser(n)); err != nil {
				t.Fatal(err)
			}
		}
		for _, g := range []struct{ user, client string }{{"bob", "c1"}, {"bob", "c2"}, {"alice", "c1"}} {
			if err := s.GrantConsent(ctx, g.user, g.client, []string{"s"}, base); err != nil {
				t.Fatal(err)
			}
		}
		r := token("bobs", "fam-bob")
		r.Subject = "bob"
		if err := s.CreateRefreshToken(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted user: %v, want ErrNotFound", err)
		}
		for _, c := range []string{"c1", "c2"} {
			if got, err := s.ConsentedScopes(ctx, "bob", c); err != nil || len(got) != 0 {
				t.Fatalf("a deleted user's consent to %s survived: %v, %v", c, got, err)
			}
		}
		if got, _ := s.ConsentedScopes(ctx, "alice", "c1"); !slices.Equal(got, []string{"s"}) {
			t.Fatalf("another user's consent was deleted: %v", got)
		}
		if _, err := s.GetUser(ctx, "alice"); err != nil {
			t.Fatalf("another user was deleted: %v", err)
		}
		if got := mustRefresh(t, s, "bobs"); !reflect.DeepEqual(got, r) {
			t.Fatalf("DeleteUser touched the user's refresh token:\n got %+v\nwant %+v", got, r)
		}
		if err := s.DeleteUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v, want ErrNotFound", err)
		}
	})

	t.Run("LoginFailuresAndLockout", func(t *testing.T) {
		s := open(t)
		if err := s.CreateUser(ctx, &store.User{Name: "u", PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 2; i++ {
			until, err := s.RecordLoginFailure(ctx, "u", base, 3, time.Minute)
			if err != nil || !until.IsZero() {
				t.Fatalf("failure %d: %v, %v; want not locked", i, until, err)
			}
			if u, _ := s.GetUser(ctx, "u"); u.FailedLogins != i {
				t.Fatalf("after failure %d the count is %d", i, u.FailedLogins)
			}
		}
		lock := base.Add(time.Minute)
		until, err := s.RecordLoginFailure(ctx, "u", base, 3, time.Minute)
		if err != nil || !until.Equal(lock) {
			t.Fatalf("third failure: %v, %v; want locked until %v", until, err, lock)
		}
		if u, _ := s.GetUser(ctx, "u"); !u.LockedUntil.Equal(lock) || u.FailedLogins != 0 {
			t.Fatalf("after lockout: LockedUntil %v FailedLogins %d; want %v, 0", u.LockedUntil, u.FailedLogins, lock)
		}
		// A failure below the threshold leaves the lock as it was and says so.
		later := base.Add(2 * time.Minute)
		if until, err := s.RecordLoginFailure(ctx, "u", later, 3, time.Minute); err != nil || !until.Equal(lock) {
			t.Fatalf("failure after lockout: %v, %v; want the stored LockedUntil %v", until, err, lock)
		}
		if err := s.ResetLoginFailures(ctx, "u"); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.GetUser(ctx, "u"); u.FailedLogins != 0 {
			t.Fatalf("failures not reset: %d", u.FailedLogins)
		}
		// Counting restarts from zero: the next lock takes max failures again.
		for i := 1; i <= 3; i++ {
			until, _ = s.RecordLoginFailure(ctx, "u", later, 3, 5*time.Minute)
		}
		if !until.Equal(later.Add(5 * time.Minute)) {
			t.Fatalf("second lockout until %v, want %v", until, later.Add(5*time.Minute))
		}
		if _, err := s.RecordLoginFailure(ctx, "ghost", base, 3, time.Minute); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v, want ErrNotFound", err)
		}
	})

	t.Run("ConcurrentLoginFailures", func(t *testing.T) {
		s := open(t)
		if err := s.CreateUser(ctx, &store.User{Name: "u", PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		// 20 failures with max 7: locks at the 7th and 14th, 6 counted after.
		errs := race(20, func(int) error {
			_, err := s.RecordLoginFailure(ctx, "u", base, 7, time.Hour)
			return err
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		u, _ := s.GetUser(ctx, "u")
		if u.FailedLogins != 6 || !u.LockedUntil.Equal(base.Add(time.Hour)) {
			t.Fatalf("after 20 racing failures: FailedLogins %d LockedUntil %v; want 6, %v (a lost update?)", u.FailedLogins, u.LockedUntil, base.Add(time.Hour))
		}
	})

	t.Run("MFAStep", func(t *testing.T) {
		s := open(t)
		if err := s.CreateUser(ctx, &store.User{Name: "u", PasswordHash: "x", MFALastStep: 5}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			step int64
			want bool
		}{{5, false}, {4, false}, {10, true}, {10, false}, {9, false}, {11, true}} {
			if ok, err := s.AdvanceMFAStep(ctx, "u", tc.step); ok != tc.want || err != nil {
				t.Fatalf("AdvanceMFAStep(%d) = %v, %v; want %v", tc.step, ok, err, tc.want)
			}
		}
		if u, _ := s.GetUser(ctx, "u"); u.MFALastStep != 11 {
			t.Fatalf("MFALastStep = %d, want 11", u.MFALastStep)
		}
		errs := race(20, func(int) error {
			ok, err := s.AdvanceMFAStep(ctx, "u", 12)
			if err == nil && !ok {
				err = errNotWon
			}
			return err
		})
		if wins, other := tally(errs, errNotWon); wins != 1 || other != nil {
			t.Fatalf("%d racing uses of one TOTP step succeeded (other error: %v), want 1", wins, other)
		}
	})

	t.Run("BackupCodes", func(t *testing.T) {
		s := open(t)
		if err := s.CreateUser(ctx, &store.User{Name: "u", PasswordHash: "x", BackupCodes: hashes("1", "2", "3", "race")}); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.UseBackupCode(ctx, "u", h("2")); !ok || err != nil {
			t.Fatalf("first use: %v, %v", ok, err)
		}
		if ok, err := s.UseBackupCode(ctx, "u", h("2")); ok || err != nil {
			t.Fatalf("second use: %v, %v; want false", ok, err)
		}
		for _, bad := range [][]byte{h("4"), h("1")[:len(h("1"))-1], append(h("1"), 0), nil} {
			if ok, err := s.UseBackupCode(ctx, "u", bad); ok || err != nil {
				t.Fatalf("UseBackupCode(%q) = %v, %v; want false", bad, ok, err)
			}
		}
		u, _ := s.GetUser(ctx, "u")
		left := slices.SortedFunc(slices.Values(u.BackupCodes), bytes.Compare)
		if want := hashes("1", "3", "race"); !reflect.DeepEqual(left, want) {
			t.Fatalf("remaining codes %q, want %q", left, want)
		}
		errs := race(20, func(int) error {
			ok, err := s.UseBackupCode(ctx, "u", h("race"))
			if err == nil && !ok {
				err = errNotWon
			}
			return err
		})
		if wins, other := tally(errs, errNotWon); wins != 1 || other != nil {
			t.Fatalf("%d racing uses of one backup code succeeded (other error: %v), want 1", wins, other)
		}
		if u, _ := s.GetUser(ctx, "u"); len(u.BackupCodes) != 2 {
			t.Fatalf("remaining codes after the race: %q", u.BackupCodes)
		}
	})

	t.Run("Clients", func(t *testing.T) {
		s := open(t)
		if l, err := s.ListClients(ctx); err != nil || len(l) != 0 {
			t.Fatalf("ListClients of an empty store = %v, %v", l, err)
		}
		a := &store.OAuthClient{ID: "a", SecretHash: h("secret"), Name: "A", RedirectURIs: []string{"https://a.example/cb", "https://a.example/cb2"},
			GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic",
			Scopes: []string{"mcp:read", "mcp:tools"}, Roles: []string{"viewer", "operator"}, CreatedAt: base.Add(time.Second)}
		b := &store.OAuthClient{ID: "b", Name: "B", RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"},
			TokenEndpointAuthMethod: "none", Scopes: []string{"mcp:read"}, Roles: []string{"viewer"}, Dynamic: true, CreatedAt: base.Add(2 * time.Second)}
		c := &store.OAuthClient{ID: "c", Name: "C", SecretHash: h("c"), RedirectURIs: []string{"https://c.example/cb"}, GrantTypes: []string{"authorization_code"},
			TokenEndpointAuthMethod: "client_secret_post", Scopes: []string{"x"}, Roles: []string{"y"}, Dynamic: true, CreatedAt: base}
		// Inserted out of time order, so that insertion order cannot pass
		// for newest first.
		for _, cl := range []*store.OAuthClient{a, c, b} {
			if err := s.CreateClient(ctx, cl); err != nil {
				t.Fatal(err)
			}
		}
		dup := *a
		dup.Name = "other"
		if err := s.CreateClient(ctx, &dup); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate client: %v, want ErrExists", err)
		}
		for _, want := range []*store.OAuthClient{a, b, c} {
			got, err := s.GetClient(ctx, want.ID)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v (%v)", got, want, err)
			}
		}
		if _, err := s.GetClient(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown client: %v, want ErrNotFound", err)
		}
		list, err := s.ListClients(ctx)
		if err != nil || !reflect.DeepEqual(list, []*store.OAuthClient{b, a, c}) {
			t.Fatalf("ListClients = %+v, %v; want b, a, c (newest first)", list, err)
		}
		if n, err := s.CountDynamicClients(ctx); n != 2 || err != nil {
			t.Fatalf("CountDynamicClients = %d, %v; want 2", n, err)
		}
		if err := s.DeleteClient(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClient(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted client: %v, want ErrNotFound", err)
		}
		if n, _ := s.CountDynamicClients(ctx); n != 1 {
			t.Fatalf("CountDynamicClients after a delete = %d, want 1", n)
		}
		if err := s.DeleteClient(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v, want ErrNotFound", err)
		}
		if l, _ := s.ListClients(ctx); len(l) != 2 {
			t.Fatalf("ListClients after a delete = %v", l)
		}
	})

	t.Run("AuthCodeSingleUse", func(t *testing.T) {
		s := open(t)
		c := fullCode("code")
		if err := s.CreateAuthCode(ctx, c); err != nil {
			t.Fatal(err)
		}
		dup := fullCode("code")
		dup.Subject = "mallory"
		if err := s.CreateAuthCode(ctx, dup); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate code: %v, want ErrExists", err)
		}
		first := base.Add(5*time.Second + 9)
		got, err := s.ConsumeAuthCode(ctx, h("code"), first)
		if err != nil {
			t.Fatal(err)
		}
		want := *c
		want.UsedAt = first
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, &want)
		}
		again, err := s.ConsumeAuthCode(ctx, h("code"), first.Add(time.Second))
		if !errors.Is(err, store.ErrAlreadyUsed) {
			t.Fatalf("second use: %v, want ErrAlreadyUsed", err)
		}
		if !reflect.DeepEqual(again, &want) {
			t.Fatalf("second use returned\n %+v\nwant (first use time kept)\n %+v", again, &want)
		}
		if got, err := s.ConsumeAuthCode(ctx, h("nope"), base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown code: %+v, %v; want ErrNotFound", got, err)
		}
		// Expiry is the caller's check: an expired code is still consumed.
		if _, err := s.ConsumeAuthCode(ctx, h("code2"), base); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		exp := fullCode("code2")
		if err := s.CreateAuthCode(ctx, exp); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeAuthCode(ctx, h("code2"), exp.ExpiresAt.Add(time.Hour)); err != nil {
			t.Fatalf("consuming an expired code: %v, want success", err)
		}
	})

	t.Run("AuthCodeRace", func(t *testing.T) {
		s := open(t)
		if err := s.CreateAuthCode(ctx, fullCode("race")); err != nil {
			t.Fatal(err)
		}
		codes := make([]*store.AuthCode, 20)
		errs := race(20, func(i int) error {
			c, err := s.ConsumeAuthCode(ctx, h("race"), base.Add(time.Duration(i+1)))
			codes[i] = c
			return err
		})
		wins, other := tally(errs, store.ErrAlreadyUsed)
		if wins != 1 || other != nil {
			t.Fatalf("%d of 20 racing redemptions succeeded (other error: %v), want exactly 1 and 19 ErrAlreadyUsed", wins, other)
		}
		winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
		winAt := base.Add(time.Duration(winner + 1))
		for i, c := range codes {
			if c == nil || c.FamilyID != "fam-race" || !c.UsedAt.Equal(winAt) {
				t.Fatalf("redemption %d returned %+v; want the code used at the winner's time %v", i, c, winAt)
			}
		}
	})

	t.Run("RefreshTokenRoundTrip", func(t *testing.T) {
		s := open(t)
		r := token("r", "fam")
		if err := s.CreateRefreshToken(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got := mustRefresh(t, s, "r"); !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		// Every field, including the used and revoked times.
		done := token("done", "fam")
		done.UsedAt, done.RevokedAt = base.Add(time.Minute+11), base.Add(2*time.Minute+13)
		if err := s.CreateRefreshToken(ctx, done); err != nil {
			t.Fatal(err)
		}
		if got := mustRefresh(t, s, "done"); !reflect.DeepEqual(got, done) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, done)
		}
		dup := token("r", "other")
		if err := s.CreateRefreshToken(ctx, dup); err == nil {
			t.Fatal("a refresh token with a taken hash was stored")
		}
		if got := mustRefresh(t, s, "r"); !reflect.DeepEqual(got, r) {
			t.Fatalf("a refused duplicate changed the token: %+v", got)
		}
		absentRefresh(t, s, "ghost")
	})

	t.Run("RefreshRotationAndReuse", func(t *testing.T) {
		s := open(t)
		r1 := token("r1", "fam")
		bystander := token("other", "fam-other")
		for _, r := range []*store.RefreshToken{r1, bystander} {
			if err := s.CreateRefreshToken(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		t1 := base.Add(time.Second + 1)
		r2 := token("r2", "fam")
		r2.CreatedAt = t1
		old, err := s.RotateRefreshToken(ctx, h("r1"), r2, t1)
		if err != nil || old == nil || !bytes.Equal(old.Hash, h("r1")) || old.FamilyID != "fam" || old.Subject != "alice" {
			t.Fatalf("rotate r1: %+v, %v; want r1", old, err)
		}
		want1 := *r1
		want1.UsedAt = t1
		if got := mustRefresh(t, s, "r1"); !reflect.DeepEqual(got, &want1) {
			t.Fatalf("r1 after rotation:\n got %+v\nwant %+v", got, &want1)
		}
		if got := mustRefresh(t, s, "r2"); !reflect.DeepEqual(got, r2) {
			t.Fatalf("r2 as stored:\n got %+v\nwant %+v", got, r2)
		}
		t2 := base.Add(2*time.Second + 2)
		if _, err := s.RotateRefreshToken(ctx, h("r2"), token("r3", "fam"), t2); err != nil {
			t.Fatalf("rotate r2: %v", err)
		}
		// Replaying r1 revokes the whole family, r3 (the current one) too,
		// and issues nothing.
		t3 := base.Add(3*time.Second + 3)
		old, err = s.RotateRefreshToken(ctx, h("r1"), token("r4", "fam"), t3)
		if !errors.Is(err, store.ErrAlreadyUsed) {
			t.Fatalf("replay of r1: %v, want ErrAlreadyUsed", err)
		}
		if old == nil || !bytes.Equal(old.Hash, h("r1")) || !old.UsedAt.Equal(t1) || old.FamilyID != "fam" {
			t.Fatalf("replay returned %+v; want r1 as first used", old)
		}
		absentRefresh(t, s, "r4")
		for _, n := range []string{"r1", "r2", "r3"} {
			if got := mustRefresh(t, s, n); !got.RevokedAt.Equal(t3) {
				t.Fatalf("%s RevokedAt = %v, want %v (family revoked on replay)", n, got.RevokedAt, t3)
			}
		}
		if got := mustRefresh(t, s, "other"); !reflect.DeepEqual(got, bystander) {
			t.Fatalf("another family was touched: %+v", got)
		}
		// The current token of a revoked family is refused.
		if _, err := s.RotateRefreshToken(ctx, h("r3"), token("r5", "fam"), base.Add(4*time.Second)); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("rotating the revoked r3: %v, want ErrRevoked", err)
		}
		absentRefresh(t, s, "r5")
		if got := mustRefresh(t, s, "r3"); !got.UsedAt.IsZero() {
			t.Fatalf("a refused rotation marked r3 used: %+v", got)
		}
		if _, err := s.RotateRefreshToken(ctx, h("nope"), token("r6", "fam"), base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v, want ErrNotFound", err)
		}
		absentRefresh(t, s, "r6")
	})

	t.Run("RefreshRotationEdges", func(t *testing.T) {
		s := open(t)
		for _, r := range []*store.RefreshToken{token("a", "fam"), token("taken", "fam"), token("expired", "fam-exp")} {
			if err := s.CreateRefreshToken(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		// Marking used and storing next are one transaction: when next
		// cannot be stored, the old token stays current.
		if _, err := s.RotateRefreshToken(ctx, h("a"), token("taken", "fam"), base); err == nil {
			t.Fatal("rotation into a taken hash succeeded")
		}
		if got := mustRefresh(t, s, "a"); !got.UsedAt.IsZero() || !got.RevokedAt.IsZero() {
			t.Fatalf("a failed rotation changed the old token: %+v", got)
		}
		if _, err := s.RotateRefreshToken(ctx, h("a"), token("a2", "fam"), base); err != nil {
			t.Fatalf("rotation after a failed one: %v", err)
		}
		// Expiry is the caller's check.
		if _, err := s.RotateRefreshToken(ctx, h("expired"), token("exp2", "fam-exp"), base.Add(48*time.Hour)); err != nil {
			t.Fatalf("rotating an expired token: %v, want success", err)
		}
		// An explicitly revoked family refuses rotation.
		if err := s.CreateRefreshToken(ctx, token("rv", "fam-rv")); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeRefreshFamily(ctx, "fam-rv", base); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RotateRefreshToken(ctx, h("rv"), token("rv2", "fam-rv"), base); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("rotating in a revoked family: %v, want ErrRevoked", err)
		}
		absentRefresh(t, s, "rv2")
	})

	t.Run("RefreshRotationRace", func(t *testing.T) {
		s := open(t)
		bystander := token("other", "fam-other")
		for _, r := range []*store.RefreshToken{token("base", "fam"), bystander} {
			if err := s.CreateRefreshToken(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		const n = 20
		next := func(i int) string { return fmt.Sprint("next", i) }
		errs := race(n, func(i int) error {
			_, err := s.RotateRefreshToken(ctx, h("base"), token(next(i), "fam"), base.Add(time.Duration(i+1)))
			return err
		})
		var wins, replays int
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrAlreadyUsed):
				replays++
			case errors.Is(err, store.ErrRevoked):
			default:
				t.Fatalf("rotation %d: %v; want success, ErrAlreadyUsed or ErrRevoked", i, err)
			}
		}
		// The first to commit wins; the next one replays a used token and
		// revokes the family; the rest find it used or revoked.
		if wins != 1 || replays < 1 {
			t.Fatalf("%d of %d racing rotations succeeded and %d saw ErrAlreadyUsed; want 1 and at least 1", wins, n, replays)
		}
		issued := 0
		for i := range n {
			r, err := s.GetRefreshToken(ctx, h(next(i)))
			switch {
			case errors.Is(err, store.ErrNotFound):
				continue
			case err != nil:
				t.Fatal(err)
			case errs[i] != nil:
				t.Fatalf("the failed rotation %d stored its token", i)
			}
			issued++
			if r.RevokedAt.IsZero() {
				t.Fatal("the token issued by the winner survived the losers' replay")
			}
		}
		if issued != 1 {
			t.Fatalf("%d tokens issued, want 1", issued)
		}
		if got := mustRefresh(t, s, "base"); got.UsedAt.IsZero() || got.RevokedAt.IsZero() {
			t.Fatalf("the raced token: %+v; want used and revoked", got)
		}
		if got := mustRefresh(t, s, "other"); !reflect.DeepEqual(got, bystander) {
			t.Fatalf("another family was touched: %+v", got)
		}
	})

	t.Run("RevokeFamilyAndUser", func(t *testing.T) {
		s := open(t)
		specs := []struct{ fam, sub, client string }{{"f1", "alice", "c1"}, {"f1", "alice", "c1"}, {"f2", "alice", "c2"}, {"f3", "bob", "c1"}, {"f4", "alice", "c3"}}
		for i, spec := range specs {
			r := token(fmt.Sprint(i), spec.fam)
			r.Subject, r.ClientID = spec.sub, spec.client
			if err := s.CreateRefreshToken(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		revokedAt := func(i int) time.Time { return mustRefresh(t, s, fmt.Sprint(i)).RevokedAt }
		at1 := base.Add(time.Minute + 1)
		if err := s.RevokeRefreshFamily(ctx, "f1", at1); err != nil {
			t.Fatal(err)
		}
		if !revokedAt(0).Equal(at1) || !revokedAt(1).Equal(at1) || !revokedAt(2).IsZero() || !revokedAt(3).IsZero() || !revokedAt(4).IsZero() {
			t.Fatal("RevokeRefreshFamily revoked the wrong tokens")
		}
		if err := s.RevokeRefreshFamily(ctx, "no-such-family", at1); err != nil {
			t.Fatalf("revoking an empty family: %v", err)
		}
		at2 := base.Add(2*time.Minute + 2)
		if err := s.RevokeUserRefreshTokens(ctx, "alice", at2); err != nil {
			t.Fatal(err)
		}
		// Every client's tokens of alice; bob's untouched.
		if !revokedAt(2).Equal(at2) || !revokedAt(4).Equal(at2) || !revokedAt(3).IsZero() {
			t.Fatal("RevokeUserRefreshTokens revoked the wrong tokens")
		}
		for i := range 2 {
			if r := revokedAt(i); r.IsZero() {
				t.Fatalf("token %d no longer revoked", i)
			}
		}
	})

	t.Run("Consent", func(t *testing.T) {
		s := open(t)
		if got, err := s.ConsentedScopes(ctx, "alice", "c"); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("no consent: %#v, %v; want an empty, non-nil slice", got, err)
		}
		for _, g := range []struct {
			user, client string
			scopes       []string
		}{
			{"alice", "c", []string{"mcp:tools", "mcp:read", "mcp:read"}},
			{"alice", "c", []string{"mcp:admin", "mcp:read"}},
			{"alice", "c", nil},
			{"alice", "other", []string{"x"}},
			{"bob", "c", []string{"y"}},
		} {
			if err := s.GrantConsent(ctx, g.user, g.client, g.scopes, base); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			user, client string
			want         []string
		}{
			{"alice", "c", []string{"mcp:admin", "mcp:read", "mcp:tools"}},
			{"alice", "other", []string{"x"}},
			{"bob", "c", []string{"y"}},
			{"bob", "other", []string{}},
		} {
			got, err := s.ConsentedScopes(ctx, tc.user, tc.client)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ConsentedScopes(%s, %s) = %#v, %v; want %#v", tc.user, tc.client, got, err, tc.want)
			}
		}
	})

	t.Run("SigningKeyMaterial", func(t *testing.T) {
		s := open(t)
		s.CreateSigningKey(ctx, &store.SigningKey{ID: "m1", Algorithm: "ES256", PrivateKeyPEM: []byte("clear"), CreatedAt: time.Now()})
		if err := s.SetSigningKeyMaterial(ctx, "m1", []byte("sealed")); err != nil {
			t.Fatal(err)
		}
		keys, _ := s.ListSigningKeys(ctx)
		if len(keys) != 1 || string(keys[0].PrivateKeyPEM) != "sealed" {
			t.Fatalf("keys = %+v", keys)
		}
		if err := s.SetSigningKeyMaterial(ctx, "nope", []byte("x")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	})

	t.Run("SigningKeys", func(t *testing.T) {
		s := open(t)
		if l, err := s.ListSigningKeys(ctx); err != nil || len(l) != 0 {
			t.Fatalf("ListSigningKeys of an empty store = %v, %v", l, err)
		}
		k1 := &store.SigningKey{ID: "k1", Algorithm: "ES256", PrivateKeyPEM: []byte("-----BEGIN PRIVATE KEY-----\n1\n"), CreatedAt: base}
		k2 := &store.SigningKey{ID: "k2", Algorithm: "ES384", PrivateKeyPEM: []byte("-----BEGIN PRIVATE KEY-----\n2\n"), CreatedAt: base.Add(time.Hour + 1)}
		k3 := &store.SigningKey{ID: "k3", Algorithm: "ES256", PrivateKeyPEM: []byte{0, 1, 2, 255}, CreatedAt: base.Add(30*time.Minute + 2), RetiredAt: base.Add(40*time.Minute + 3)}
		for _, k := range []*store.SigningKey{k2, k1, k3} {
			if err := s.CreateSigningKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		dup := *k1
		dup.Algorithm = "RS256"
		if err := s.CreateSigningKey(ctx, &dup); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate key: %v, want ErrExists", err)
		}
		retired := base.Add(2*time.Hour + 5)
		if err := s.RetireSigningKey(ctx, "k1", retired); err != nil {
			t.Fatal(err)
		}
		if err := s.RetireSigningKey(ctx, "nope", base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("retire unknown: %v, want ErrNotFound", err)
		}
		keys, err := s.ListSigningKeys(ctx)
		k1.RetiredAt = retired
		if err != nil || !reflect.DeepEqual(keys, []*store.SigningKey{k2, k3, k1}) {
			t.Fatalf("ListSigningKeys = %+v, %v; want k2, k3, k1 (newest first)", keys, err)
		}
	})

	t.Run("PurgeExpired", func(t *testing.T) {
		s := open(t)
		now := base.Add(time.Hour)
		code := func(name string, exp time.Time) *store.AuthCode {
			c := fullCode(name)
			c.ExpiresAt = exp
			return c
		}
		rt := func(name string, exp time.Time) *store.RefreshToken {
			r := token(name, "fam")
			r.ExpiresAt = exp
			return r
		}
		for _, c := range []*store.AuthCode{code("c-old", now.Add(-time.Minute)), code("c-just", now.Add(-1)), code("c-now", now), code("c-new", now.Add(time.Minute))} {
			if err := s.CreateAuthCode(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range []*store.RefreshToken{rt("r-old", now.Add(-time.Hour)), rt("r-now", now), rt("r-new", now.Add(time.Hour))} {
			if err := s.CreateRefreshToken(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateUser(ctx, fullUser("alice")); err != nil {
			t.Fatal(err)
		}
		n, err := s.PurgeExpiredOAuth(ctx, now)
		if err != nil || n != 3 {
			t.Fatalf("PurgeExpiredOAuth = %d, %v; want 3", n, err)
		}
		for _, name := range []string{"c-old", "c-just"} {
			if _, err := s.ConsumeAuthCode(ctx, h(name), now); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("expired code %s not purged: %v", name, err)
			}
		}
		for _, name := range []string{"c-now", "c-new"} {
			if _, err := s.ConsumeAuthCode(ctx, h(name), now); err != nil {
				t.Fatalf("code %s, not expired before now, was purged: %v", name, err)
			}
		}
		absentRefresh(t, s, "r-old")
		mustRefresh(t, s, "r-now")
		mustRefresh(t, s, "r-new")
		if _, err := s.GetUser(ctx, "alice"); err != nil {
			t.Fatalf("purge removed a user: %v", err)
		}
		if n, err := s.PurgeExpiredOAuth(ctx, now); err != nil || n != 0 {
			t.Fatalf("second purge = %d, %v; want 0", n, err)
		}
	})
}

// errNotWon marks a racer that lost without an error (a false answer).
var errNotWon = errors.New("lost the race")

// race runs fn(0..n-1) in n goroutines released together and returns their
// errors by index.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// tally counts the nil errors; other is the first error that is neither nil
// nor loss.
func tally(errs []error, loss error) (wins int, other error) {
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, loss):
		case other == nil:
			other = err
		}
	}
	return wins, other
}

// RunSecrets runs the conformance suite of store.SecretStore. open must
// return a new, empty store.
func RunSecrets(t *testing.T, open func(t *testing.T) store.SecretStore) {
	ctx := context.Background()
	t.Run("PutGetListDelete", func(t *testing.T) {
		s := open(t)
		a := &store.Secret{Name: "b", MasterKeyID: "k1", WrappedKey: []byte{1, 2}, Ciphertext: []byte{3, 4}}
		if err := s.PutSecret(ctx, a); err != nil {
			t.Fatal(err)
		}
		s.PutSecret(ctx, &store.Secret{Name: "a", MasterKeyID: "k1", WrappedKey: []byte{5}, Ciphertext: []byte{6}})
		got, err := s.GetSecret(ctx, "b")
		if err != nil || got.MasterKeyID != "k1" || string(got.WrappedKey) != "\x01\x02" || string(got.Ciphertext) != "\x03\x04" || got.CreatedAt.IsZero() {
			t.Fatalf("get: %+v %v", got, err)
		}
		created := got.CreatedAt
		a.Ciphertext = []byte{9}
		s.PutSecret(ctx, a)
		got, _ = s.GetSecret(ctx, "b")
		if string(got.Ciphertext) != "\x09" || !got.CreatedAt.Equal(created) {
			t.Fatalf("replace: %+v", got)
		}
		list, _ := s.ListSecrets(ctx)
		if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
			t.Fatalf("list: %+v", list)
		}
		if err := s.DeleteSecret(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSecret(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted: %v", err)
		}
		if err := s.DeleteSecret(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
	})
	t.Run("RewrapAllOrNothing", func(t *testing.T) {
		s := open(t)
		for _, n := range []string{"a", "b", "c"} {
			s.PutSecret(ctx, &store.Secret{Name: n, MasterKeyID: "old", WrappedKey: []byte(n), Ciphertext: []byte(n)})
		}
		_, err := s.RewrapSecrets(ctx, func(sec *store.Secret) (*store.Secret, error) {
			if sec.Name == "c" {
				return nil, errors.New("cannot open c")
			}
			out := *sec
			out.MasterKeyID = "new"
			return &out, nil
		})
		if err == nil {
			t.Fatal("a failing rewrap succeeded")
		}
		if a, _ := s.GetSecret(ctx, "a"); a.MasterKeyID != "old" {
			t.Fatal("a failed rewrap changed a record")
		}
		n, err := s.RewrapSecrets(ctx, func(sec *store.Secret) (*store.Secret, error) {
			out := *sec
			out.MasterKeyID, out.WrappedKey = "new", append([]byte("w"), sec.WrappedKey...)
			return &out, nil
		})
		if err != nil || n != 3 {
			t.Fatalf("rewrap: %d %v", n, err)
		}
		if c, _ := s.GetSecret(ctx, "c"); c.MasterKeyID != "new" || string(c.WrappedKey) != "wc" || string(c.Ciphertext) != "c" {
			t.Fatalf("after rewrap: %+v", c)
		}
	})
}
