// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a constructor for a fresh, empty store.
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

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/store"
)

// Run runs the conformance suite. open must return a new, empty store; the
// suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

	t.Run("APIKeyRoundTrip", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		want := &store.APIKey{ID: "0123456789abcdef", Name: "alice", Hash: []byte{1, 2, 3},
			Roles: []string{"admin", "viewer"}, Scopes: []string{"db:read"},
			CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := s.CreateAPIKey(ctx, want); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		got, err := s.GetAPIKey(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetAPIKey: %v", err)
		}
		if got.ID != want.ID || got.Name != want.Name || !bytes.Equal(got.Hash, want.Hash) ||
			!slices.Equal(got.Roles, want.Roles) || !slices.Equal(got.Scopes, want.Scopes) ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
			!got.LastUsedAt.IsZero() || got.Revoked() {
			t.Fatalf("GetAPIKey = %+v, want %+v", got, want)
		}
		if err := s.CreateAPIKey(ctx, want); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate CreateAPIKey error = %v, want ErrExists", err)
		}
		if _, err := s.GetAPIKey(ctx, "ffffffffffffffff"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetAPIKey(unknown) error = %v, want ErrNotFound", err)
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		for i := range 3 {
			k := &store.APIKey{ID: fmt.Sprintf("%016x", i), Name: fmt.Sprint("k", i), Hash: []byte{byte(i)}, CreatedAt: base.Add(time.Duration(i) * time.Minute)}
			if err := s.CreateAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range keys {
			names = append(names, k.Name)
		}
		if !slices.Equal(names, []string{"k2", "k1", "k0"}) {
			t.Fatalf("ListAPIKeys names = %v, want newest first", names)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		k := &store.APIKey{ID: "00000000000000aa", Name: "bob", Hash: []byte{9}, CreatedAt: base}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeAPIKey(ctx, k.ID, base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeAPIKey(ctx, k.ID, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.RevokedAt.Equal(base.Add(time.Minute)) {
			t.Fatalf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, base.Add(time.Minute))
		}
		if err := s.RevokeAPIKey(ctx, "ffffffffffffffff", base); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeAPIKey(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("RotateWithGrace", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		k := &store.APIKey{ID: "00000000000000bb", Name: "carol", Hash: []byte{1}, CreatedAt: base}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.RotateAPIKey(ctx, k.ID, []byte{2}, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetAPIKey(ctx, k.ID)
		if !bytes.Equal(got.Hash, []byte{2}) || !bytes.Equal(got.PreviousHash, []byte{1}) || !got.PreviousExpiresAt.Equal(base.Add(time.Hour)) {
			t.Fatalf("after rotation: %+v", got)
		}
		// A second rotation without grace ends the previous secret.
		if err := s.RotateAPIKey(ctx, k.ID, []byte{3}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetAPIKey(ctx, k.ID)
		if !bytes.Equal(got.Hash, []byte{3}) || got.PreviousHash != nil || !got.PreviousExpiresAt.IsZero() {
			t.Fatalf("after rotation without grace: %+v", got)
		}
		if err := s.RotateAPIKey(ctx, "ffffffffffffffff", []byte{4}, time.Time{}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rotate unknown: %v", err)
		}
		s.RevokeAPIKey(ctx, k.ID, base)
		if err := s.RotateAPIKey(ctx, k.ID, []byte{5}, time.Time{}); err == nil {
			t.Fatal("a revoked key was rotated")
		}
	})

	t.Run("TouchBatch", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		for _, id := range []string{"000000000000000a", "000000000000000b"} {
			if err := s.CreateAPIKey(ctx, &store.APIKey{ID: id, Name: id, Hash: []byte{1}, CreatedAt: base}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{
			"000000000000000a": base.Add(2 * time.Hour),
			"000000000000000b": base.Add(time.Hour),
			"ffffffffffffffff": base, // unknown: ignored
		}); err != nil {
			t.Fatal(err)
		}
		// An older time never moves last-used backwards.
		if err := s.TouchAPIKeys(ctx, map[string]time.Time{"000000000000000a": base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		a, _ := s.GetAPIKey(ctx, "000000000000000a")
		b, _ := s.GetAPIKey(ctx, "000000000000000b")
		if !a.LastUsedAt.Equal(base.Add(2*time.Hour)) || !b.LastUsedAt.Equal(base.Add(time.Hour)) {
			t.Fatalf("LastUsedAt = %v, %v", a.LastUsedAt, b.LastUsedAt)
		}
	})

	t.Run("TokenRevocation", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		if revoked, err := s.TokenRevoked(ctx, "jti-1"); err != nil || revoked {
			t.Fatalf("TokenRevoked before revoke = %v, %v", revoked, err)
		}
		if err := s.RevokeToken(ctx, "jti-1", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, "jti-1", time.Now().Add(2*time.Hour)); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if revoked, err := s.TokenRevoked(ctx, "jti-1"); err != nil || !revoked {
			t.Fatalf("TokenRevoked after revoke = %v, %v", revoked, err)
		}
		if revoked, _ := s.TokenRevoked(ctx, "jti-2"); revoked {
			t.Fatal("unrelated jti reported revoked")
		}
		// A revocation without expiry is never shortened by a later timed
		// one, nor purged.
		if err := s.RevokeToken(ctx, "jti-forever", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, "jti-forever", time.Now().Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, "jti-other", time.Now()); err != nil { // triggers the purge
			t.Fatal(err)
		}
		if revoked, err := s.TokenRevoked(ctx, "jti-forever"); err != nil || !revoked {
			t.Fatalf("permanent revocation lost: %v, %v", revoked, err)
		}
	})

	t.Run("ConcurrentCreates", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() {
				errs <- s.CreateAPIKey(ctx, &store.APIKey{ID: fmt.Sprintf("%016x", i%20), Name: "c", Hash: []byte{1}, CreatedAt: base})
			})
		}
		wg.Wait()
		close(errs)
		var ok, exists int
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrExists):
				exists++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 20 || exists != 20 {
			t.Fatalf("created %d, duplicates %d; want 20 and 20", ok, exists)
		}
	})

	runAudit(t, open)
}

// fullRecord returns an audit record with every field set.
func fullRecord(ts time.Time) guard.Record {
	return guard.Record{
		Time:          ts,
		RequestID:     "c6c7d2e1",
		Subject:       "developer",
		Issuer:        "mcpguard",
		AuthMethod:    guard.MethodAPIKey,
		KeyID:         "56e857ebcc2ad440",
		Roles:         []string{"developer", "viewer"},
		ClientAddr:    "127.0.0.1",
		Transport:     "http",
		SessionID:     "6OVZ",
		Method:        "tools/call",
		Target:        "delete_users",
		Decision:      guard.Denied,
		Reason:        "tool delete_users requires role admin <&>",
		RequiredRoles: []string{"admin"},
		Policies:      []string{"tool:delete_users"},
		Duration:      41250 * time.Nanosecond,
		ToolError:     true,
		Error:         "upstream: \"quoted\"\nnewline",
		ArgsDigest:    "9f1c0000000000000000000000000000000000000000000000000000000000ab",
		Args: map[string]any{
			"table":   "users",
			"limit":   float64(10),
			"dry_run": true,
			"ids":     []any{float64(1), float64(2)},
			"filter":  map[string]any{"name": "ünïcødé ☃"},
			"none":    nil,
		},
	}
}

// sameRecord reports how got differs from want, or "" when they are equal:
// the same instant and every other field deeply equal.
func sameRecord(got, want guard.Record) string {
	if !got.Time.Equal(want.Time) {
		return fmt.Sprintf("Time = %v, want %v", got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("record = %+v, want %+v", got, want)
	}
	return ""
}

func targets(recs []guard.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Target)
	}
	return out
}

// runAudit is the audit-record part of the conformance suite.
func runAudit(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

	t.Run("AuditRoundTrip", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		// A time in another zone must come back as the same instant.
		want := fullRecord(base.In(time.FixedZone("UTC+5:30", 5*3600+1800)))
		if err := s.AppendAudit(ctx, []guard.Record{want}); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		got, err := s.QueryAudit(ctx, store.AuditQuery{})
		if err != nil {
			t.Fatalf("QueryAudit: %v", err)
		}
		if len(got) != 1 {
			t.Fatalf("QueryAudit returned %d records, want 1", len(got))
		}
		if diff := sameRecord(got[0], want); diff != "" {
			t.Fatal(diff)
		}
		// A minimal record round-trips too, with its empty fields empty.
		minimal := guard.Record{Time: base.Add(time.Second), Decision: guard.AuthFailed}
		if err := s.AppendAudit(ctx, []guard.Record{minimal}); err != nil {
			t.Fatalf("AppendAudit(minimal): %v", err)
		}
		got, err = s.QueryAudit(ctx, store.AuditQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("QueryAudit returned %d records, want 1", len(got))
		}
		if diff := sameRecord(got[0], minimal); diff != "" {
			t.Fatal(diff)
		}
	})

	t.Run("AuditFilters", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		rec := func(min int, decision guard.Outcome, user, method, target string) guard.Record {
			return guard.Record{Time: base.Add(time.Duration(min) * time.Minute), Decision: decision, Subject: user, Method: method, Target: target}
		}
		all := []guard.Record{
			rec(0, guard.Allowed, "alice", "tools/call", "query"),
			rec(1, guard.Denied, "bob", "tools/call", "drop_table"),
			rec(2, guard.AuthFailed, "", "", "query"), // HTTP-level: method unknown
			rec(3, guard.Allowed, "alice", "prompts/get", "query"),
			rec(4, guard.RateLimited, "bob", "tools/call", "query"),
			rec(5, guard.Failed, "alice", "tools/list", ""),
		}
		if err := s.AppendAudit(ctx, all); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			q    store.AuditQuery
			min  []int // the records' minutes after base, newest first
		}{
			{"none", store.AuditQuery{}, []int{5, 4, 3, 2, 1, 0}},
			{"since inclusive", store.AuditQuery{Since: base.Add(3 * time.Minute)}, []int{5, 4, 3}},
			{"until exclusive", store.AuditQuery{Until: base.Add(2 * time.Minute)}, []int{1, 0}},
			{"since and until", store.AuditQuery{Since: base.Add(time.Minute), Until: base.Add(4 * time.Minute)}, []int{3, 2, 1}},
			{"decision", store.AuditQuery{Decision: "ALLOWED"}, []int{3, 0}},
			{"decision ignores case", store.AuditQuery{Decision: "rate_limited"}, []int{4}},
			{"decision ERROR", store.AuditQuery{Decision: "ERROR"}, []int{5}},
			{"user", store.AuditQuery{User: "bob"}, []int{4, 1}},
			{"user is exact", store.AuditQuery{User: "Bob"}, []int{}},
			{"tool: tools/call or unknown method", store.AuditQuery{Tool: "query"}, []int{4, 2, 0}},
			{"all filters", store.AuditQuery{Since: base, Until: base.Add(time.Hour), Decision: "allowed", User: "alice", Tool: "query"}, []int{0}},
		} {
			got, err := s.QueryAudit(ctx, tc.q)
			if err != nil {
				t.Fatalf("%s: QueryAudit: %v", tc.name, err)
			}
			var mins []int
			for _, r := range got {
				mins = append(mins, int(r.Time.Sub(base)/time.Minute))
			}
			if !slices.Equal(mins, tc.min) && len(mins)+len(tc.min) > 0 {
				t.Errorf("%s: records at minutes %v, want %v", tc.name, mins, tc.min)
			}
		}
	})

	t.Run("AuditOrdering", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		// Appended out of time order, in two batches; two share a time.
		first := []guard.Record{
			{Time: base.Add(2 * time.Second), Decision: guard.Allowed, Target: "b"},
			{Time: base, Decision: guard.Allowed, Target: "a"},
		}
		second := []guard.Record{
			{Time: base.Add(3 * time.Second), Decision: guard.Allowed, Target: "d"},
			{Time: base.Add(2 * time.Second), Decision: guard.Allowed, Target: "c"},
		}
		for _, batch := range [][]guard.Record{first, second} {
			if err := s.AppendAudit(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.QueryAudit(ctx, store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"d", "c", "b", "a"}; !slices.Equal(targets(got), want) {
			t.Fatalf("order = %v, want newest first, ties last-appended first: %v", targets(got), want)
		}
	})

	t.Run("AuditLimit", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		batch := make([]guard.Record, store.DefaultAuditLimit+20)
		for i := range batch {
			batch[i] = guard.Record{Time: base.Add(time.Duration(i) * time.Millisecond), Decision: guard.Allowed, Target: fmt.Sprint(i)}
		}
		if err := s.AppendAudit(ctx, batch); err != nil {
			t.Fatal(err)
		}
		got, err := s.QueryAudit(ctx, store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != store.DefaultAuditLimit || got[0].Target != fmt.Sprint(len(batch)-1) {
			t.Fatalf("default limit: %d records starting at %q, want the newest %d", len(got), got[0].Target, store.DefaultAuditLimit)
		}
		got, err = s.QueryAudit(ctx, store.AuditQuery{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"119", "118", "117"}; !slices.Equal(targets(got), want) {
			t.Fatalf("Limit 3: %v, want %v", targets(got), want)
		}
		got, err = s.QueryAudit(ctx, store.AuditQuery{Limit: store.MaxAuditLimit})
		if err != nil || len(got) != len(batch) {
			t.Fatalf("Limit MaxAuditLimit: %d records, %v; want all %d", len(got), err, len(batch))
		}
		for _, q := range []store.AuditQuery{
			{Limit: store.MaxAuditLimit + 1},
			{Limit: -1},
			{Decision: "MAYBE"},
			{Since: base.Add(time.Hour), Until: base},
			{Since: base, Until: base},
			{User: string(make([]byte, store.MaxAuditFilterBytes+1))},
			{Since: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
		} {
			if _, err := s.QueryAudit(ctx, q); !errors.Is(err, store.ErrInvalidQuery) {
				t.Errorf("QueryAudit(%+v) error = %v, want ErrInvalidQuery", q, err)
			}
		}
	})

	t.Run("AuditBatchAtomic", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		for _, bad := range []guard.Record{
			{Decision: guard.Allowed}, // no time
			{Time: base},              // no decision
			{Time: base.AddDate(500, 0, 0), Decision: guard.Allowed},                                       // beyond int64 nanoseconds
			{Time: base, Decision: guard.Allowed, Args: map[string]any{"c": make(chan int)}},               // not JSON
			{Time: base, Decision: guard.Allowed, Reason: string(make([]byte, store.MaxAuditRecordBytes))}, // too large
		} {
			batch := []guard.Record{{Time: base, Decision: guard.Allowed, Target: "good"}, bad}
			if err := s.AppendAudit(ctx, batch); !errors.Is(err, store.ErrInvalidRecord) {
				t.Errorf("AppendAudit with a bad record: error = %v, want ErrInvalidRecord", err)
			}
		}
		if err := s.AppendAudit(ctx, make([]guard.Record, store.MaxAuditBatch+1)); err == nil {
			t.Error("AppendAudit accepted a batch longer than MaxAuditBatch")
		}
		if err := s.AppendAudit(ctx, nil); err != nil {
			t.Errorf("AppendAudit(nil) = %v, want nil", err)
		}
		got, err := s.QueryAudit(ctx, store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("refused batches stored %d records: %v", len(got), targets(got))
		}
	})

	t.Run("AuditConcurrentAppends", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				errs <- s.AppendAudit(ctx, []guard.Record{
					{Time: base.Add(time.Duration(i) * time.Second), Decision: guard.Allowed, Target: fmt.Sprint(i)},
					{Time: base.Add(time.Duration(i) * time.Second), Decision: guard.Denied, Target: fmt.Sprint(i)},
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent AppendAudit: %v", err)
			}
		}
		got, err := s.QueryAudit(ctx, store.AuditQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 40 {
			t.Fatalf("stored %d records, want 40", len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i].Time.After(got[i-1].Time) {
				t.Fatalf("record %d (%v) is newer than record %d (%v)", i, got[i].Time, i-1, got[i-1].Time)
			}
		}
	})
}
