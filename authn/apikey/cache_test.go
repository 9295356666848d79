package apikey_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpguard/mcpguard/authn/apikey"
	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/clocktest"
	"github.com/mcpguard/mcpguard/store"
)

// countingStore counts key lookups and can be made to fail them.
type countingStore struct {
	store.Store
	gets atomic.Int64
	fail atomic.Bool
}

var errDown = errors.New("store down")

func (s *countingStore) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	s.gets.Add(1)
	if s.fail.Load() {
		return nil, errDown
	}
	return s.Store.GetAPIKey(ctx, id)
}

type cacheEnv struct {
	t     *testing.T
	ctx   context.Context
	st    *countingStore
	clock *clocktest.Clock
	a     *apikey.Authenticator
}

func newCacheEnv(t *testing.T, o apikey.Options) *cacheEnv {
	t.Helper()
	e := &cacheEnv{
		t:     t,
		ctx:   context.Background(),
		st:    &countingStore{Store: openStore(t)},
		clock: clocktest.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)),
	}
	o.Now = e.clock.Now
	e.a = apikey.NewWithOptions(e.st, o)
	return e
}

func (e *cacheEnv) create(name string, ttl time.Duration, roles ...string) (string, *store.APIKey) {
	e.t.Helper()
	key, rec, err := apikey.Create(e.ctx, e.st, apikey.CreateOptions{Name: name, Roles: roles, TTL: ttl, Now: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	return key, rec
}

func (e *cacheEnv) auth(key string) (*guard.Principal, error) {
	return e.a.Authenticate(e.ctx, guard.Credential{Kind: guard.Bearer, Secret: key})
}

// mustAuth authenticates key and checks how many store lookups it made.
func (e *cacheEnv) mustAuth(key string, lookups int64) *guard.Principal {
	e.t.Helper()
	before := e.st.gets.Load()
	p, err := e.auth(key)
	if err != nil {
		e.t.Fatalf("key refused: %v", err)
	}
	if got := e.st.gets.Load() - before; got != lookups {
		e.t.Fatalf("%d store lookups, want %d", got, lookups)
	}
	return p
}

// mustRefuse checks that key is refused for reason.
func (e *cacheEnv) mustRefuse(key, reason string) {
	e.t.Helper()
	_, err := e.auth(key)
	if !errors.Is(err, guard.ErrInvalidCredentials) || !strings.Contains(err.Error(), reason) {
		e.t.Fatalf("error = %v, want ErrInvalidCredentials mentioning %q", err, reason)
	}
}

func TestCacheHitAvoidsStore(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, apikey.Options{})
	key, rec := e.create("dev", 0, "developer")
	first := e.mustAuth(key, 1)
	for range 10 {
		p := e.mustAuth(key, 0)
		if p.KeyID != rec.ID || p.Subject != "dev" || !p.HasRole("developer") {
			t.Fatalf("cached principal = %+v", p)
		}
	}
	e.clock.Advance(apikey.DefaultRevocationRecheck - time.Nanosecond)
	e.mustAuth(key, 0)
	e.clock.Advance(time.Nanosecond) // the record is re-read once
	if p := e.mustAuth(key, 1); !equalPrincipal(p, first) {
		t.Fatalf("principal after re-read = %+v, want %+v", p, first)
	}
	e.mustAuth(key, 0)
}

func equalPrincipal(a, b *guard.Principal) bool {
	return a.Subject == b.Subject && a.KeyID == b.KeyID && slices.Equal(a.Roles, b.Roles) && slices.Equal(a.Scopes, b.Scopes) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func TestRevocationWithinRecheck(t *testing.T) {
	t.Parallel()
	const recheck = 5 * time.Second
	e := newCacheEnv(t, apikey.Options{RevocationRecheck: recheck})
	key, rec := e.create("dev", 0)
	other, _ := e.create("other", 0)
	e.mustAuth(key, 1)
	e.mustAuth(other, 1)
	if err := e.st.RevokeAPIKey(e.ctx, rec.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// Within the recheck interval the revocation is not yet seen: this is
	// the documented staleness bound, not a wish.
	e.clock.Advance(recheck - time.Nanosecond)
	e.mustAuth(key, 0)
	e.clock.Advance(time.Nanosecond)
	e.mustRefuse(key, "revoked")
	if n := apikey.CacheLen(e.a); n != 1 {
		t.Fatalf("%d keys cached after the revocation, want only the other key", n)
	}
	before := e.st.gets.Load()
	e.mustRefuse(key, "revoked") // refused from the store, not served from the cache
	if e.st.gets.Load() != before+1 {
		t.Fatal("a revoked key was not looked up again")
	}
	e.mustAuth(other, 1) // unaffected, re-read once as it is due too
}

func TestExpiryHonouredOnHits(t *testing.T) {
	t.Parallel()
	// A recheck interval longer than the key's life, so that only the
	// cached expiry can refuse it.
	e := newCacheEnv(t, apikey.Options{RevocationRecheck: 24 * time.Hour})
	key, _ := e.create("temp", time.Hour)
	e.mustAuth(key, 1)
	e.clock.Advance(time.Hour - time.Nanosecond)
	e.mustAuth(key, 0)
	e.clock.Advance(time.Nanosecond)
	before := e.st.gets.Load()
	e.mustRefuse(key, "expired")
	if e.st.gets.Load() != before {
		t.Fatal("expiry of a cached key needed a store lookup")
	}
	if n := apikey.CacheLen(e.a); n != 0 {
		t.Fatalf("%d keys cached after expiry", n)
	}
	e.mustRefuse(key, "expired") // and from the store path
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	const size = 5
	e := newCacheEnv(t, apikey.Options{CacheSize: size})
	keys := make([]string, 40)
	for i := range keys {
		keys[i], _ = e.create("k", 0)
		e.mustAuth(keys[i], 1)
		if n := apikey.CacheLen(e.a); n > size {
			t.Fatalf("%d keys cached, bound is %d", n, size)
		}
	}
	if n := apikey.CacheLen(e.a); n != size {
		t.Fatalf("%d keys cached, want %d", n, size)
	}
	e.mustAuth(keys[len(keys)-1], 0) // the most recent is remembered
	e.mustAuth(keys[0], 1)           // the oldest was evicted, yet still works
}

func TestWrongSecretNeverServedFromCache(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, apikey.Options{})
	key, _ := e.create("dev", 0)
	e.mustAuth(key, 1)
	// Same id, secrets differing from the cached one in one character.
	for _, pos := range []int{len(key) - 1, len(key) - 43} {
		b := []byte(key)
		if b[pos] == 'A' {
			b[pos] = 'B'
		} else {
			b[pos] = 'A'
		}
		wrong := string(b)
		before := e.st.gets.Load()
		e.mustRefuse(wrong, "wrong secret")
		if e.st.gets.Load() != before+1 {
			t.Fatal("a wrong secret was not checked against the store")
		}
		e.mustRefuse(wrong, "wrong secret") // refusals are not cached either
	}
	e.mustAuth(key, 0) // the right key is still cached
}

func TestCachedPrincipalReadOnlySharing(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, apikey.Options{})
	key, _ := e.create("dev", 0, "viewer")
	p1 := e.mustAuth(key, 1)
	p2 := e.mustAuth(key, 0)
	if p1 != p2 {
		t.Fatal("cache hits returned different principals; want the shared one")
	}
	// Sharing is read-only by contract; slices are clipped so that even an
	// append by a careless caller copies rather than writes into the cache.
	if cap(p1.Roles) != len(p1.Roles) || cap(p1.Scopes) != len(p1.Scopes) {
		t.Fatalf("principal slices not clipped: roles %d/%d", len(p1.Roles), cap(p1.Roles))
	}
	grown := append(p1.Roles, "admin")
	_ = grown
	if p3 := e.mustAuth(key, 0); p3.HasRole("admin") || len(p3.Roles) != 1 {
		t.Fatalf("an append to a returned principal leaked into the cache: %v", p3.Roles)
	}
	// Another key has its own principal.
	other, _ := e.create("ops", 0, "admin")
	if p := e.mustAuth(other, 1); p == p1 || p.Subject != "ops" {
		t.Fatalf("other key's principal = %+v", p)
	}
}

func TestLastUsedTrackedOnCacheHits(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, apikey.Options{})
	key, rec := e.create("dev", 0)
	e.mustAuth(key, 1)
	e.clock.Advance(300 * time.Millisecond)
	e.mustAuth(key, 0)
	if err := e.a.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.Store.GetAPIKey(e.ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now(); !got.LastUsedAt.Equal(want) {
		t.Fatalf("LastUsedAt = %v, want the cache hit's time %v", got.LastUsedAt, want)
	}
}

func TestRecheckFailsClosedWhenStoreDown(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, apikey.Options{})
	key, _ := e.create("dev", 0)
	e.mustAuth(key, 1)
	e.st.fail.Store(true)
	e.mustAuth(key, 0) // not yet due
	e.clock.Advance(apikey.DefaultRevocationRecheck)
	_, err := e.auth(key)
	if err == nil || errors.Is(err, guard.ErrInvalidCredentials) || !errors.Is(err, errDown) {
		t.Fatalf("error = %v, want the internal store error", err)
	}
	e.st.fail.Store(false)
	e.mustAuth(key, 1)
	e.mustAuth(key, 0)
}

func TestDisabledCacheBehavesAsBefore(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]apikey.Options{
		"no cache":       {CacheSize: -1},
		"always recheck": {RevocationRecheck: -1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCacheEnv(t, o)
			key, rec := e.create("dev", 0)
			for range 3 {
				e.mustAuth(key, 1)
			}
			if err := e.st.RevokeAPIKey(e.ctx, rec.ID, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			e.mustRefuse(key, "revoked") // at once, with no clock movement
		})
	}
	e := newCacheEnv(t, apikey.Options{CacheSize: -1})
	key, _ := e.create("dev", 0)
	e.mustAuth(key, 1)
	if n := apikey.CacheLen(e.a); n != 0 {
		t.Fatalf("disabled cache holds %d keys", n)
	}
}

func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	const recheck = 100 * time.Millisecond
	e := newCacheEnv(t, apikey.Options{CacheSize: 4, RevocationRecheck: recheck})
	keys := make([]string, 8)
	ids := make([]string, len(keys))
	for i := range keys {
		var rec *store.APIKey
		keys[i], rec = e.create("k", 0)
		ids[i] = rec.ID
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 200 {
				key := keys[(g+i)%len(keys)]
				if _, err := e.auth(key); err != nil && !errors.Is(err, guard.ErrInvalidCredentials) {
					t.Errorf("internal error: %v", err)
					return
				}
				if g == 0 && i%20 == 0 {
					e.clock.Advance(recheck / 3)
				}
			}
		})
	}
	wg.Go(func() {
		for _, id := range ids[:4] {
			if err := e.st.RevokeAPIKey(e.ctx, id, e.clock.Now()); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for range 20 {
			if err := e.a.Flush(e.ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if n := apikey.CacheLen(e.a); n > 4 {
		t.Fatalf("%d keys cached, bound is 4", n)
	}
	e.clock.Advance(recheck)
	for i, key := range keys {
		_, err := e.auth(key)
		if revoked := i < 4; revoked != (err != nil) {
			t.Errorf("key %d: revoked %v, error %v", i, revoked, err)
		}
	}
}

func BenchmarkAuthenticateCached(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	a := apikey.New(s, nil)
	key, _, err := apikey.Create(ctx, s, apikey.CreateOptions{Name: "bench", Roles: []string{"viewer"}})
	if err != nil {
		b.Fatal(err)
	}
	cred := guard.Credential{Kind: guard.Bearer, Secret: key}
	if _, err := a.Authenticate(ctx, cred); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticateCachedParallel(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	a := apikey.New(s, nil)
	creds := make([]guard.Credential, 64)
	for i := range creds {
		key, _, err := apikey.Create(ctx, s, apikey.CreateOptions{Name: "bench", Roles: []string{"viewer"}})
		if err != nil {
			b.Fatal(err)
		}
		creds[i] = guard.Credential{Kind: guard.Bearer, Secret: key}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := a.Authenticate(ctx, creds[i%len(creds)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
