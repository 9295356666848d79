package jwt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/mcpguard/mcpguard/guard"
	"github.com/mcpguard/mcpguard/internal/clocktest"
)

// revocationList is a RevocationChecker that can change while in use and
// counts its queries.
type revocationList struct {
	mu      sync.Mutex
	revoked map[string]bool
	err     error
	calls   atomic.Int64
}

func (r *revocationList) TokenRevoked(_ context.Context, jti string) (bool, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.revoked[jti], r.err
}

func (r *revocationList) revoke(jti string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked == nil {
		r.revoked = map[string]bool{}
	}
	r.revoked[jti] = true
}

func (r *revocationList) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

type cacheEnv struct {
	t     *testing.T
	clock *clocktest.Clock
	revs  *revocationList
	a     *Authenticator
}

func newCacheEnv(t *testing.T, mutate func(*Config)) *cacheEnv {
	t.Helper()
	e := &cacheEnv{t: t, clock: newFakeClock(), revs: &revocationList{}}
	e.a = newTestAuthenticator(t, e.clock, func(c *Config) {
		c.Revocations = e.revs
		if mutate != nil {
			mutate(c)
		}
	})
	return e
}

// token signs claims issued now with jti, changed by mutate if not nil.
func (e *cacheEnv) token(jti string, mutate func(map[string]any)) string {
	c := claimsAt(e.clock.Now())
	c["jti"] = jti
	if mutate != nil {
		mutate(c)
	}
	return sign(e.t, jose.HS256, testKeys().hmac, "hs", c)
}

func (e *cacheEnv) auth(tok string) (*guard.Principal, error) {
	return e.a.Authenticate(context.Background(), bearer(tok))
}

// mustAuth authenticates tok and checks how many revocation queries it made.
func (e *cacheEnv) mustAuth(tok string, queries int64) *guard.Principal {
	e.t.Helper()
	before := e.revs.calls.Load()
	p, err := e.auth(tok)
	if err != nil {
		e.t.Fatalf("token refused: %v", err)
	}
	if got := e.revs.calls.Load() - before; got != queries {
		e.t.Fatalf("%d revocation queries, want %d", got, queries)
	}
	return p
}

func (e *cacheEnv) mustRefuse(tok, reason string) {
	e.t.Helper()
	_, err := e.auth(tok)
	if !errors.Is(err, guard.ErrInvalidCredentials) || !strings.HasSuffix(err.Error(), reason) {
		e.t.Fatalf("error = %v, want ErrInvalidCredentials ending %q", err, reason)
	}
}

func TestCacheHitSkipsVerification(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, nil)
	tok := e.token("t1", func(c map[string]any) { c["roles"] = []string{"dev"} })
	first := e.mustAuth(tok, 1)
	if n := e.a.cache.Len(); n != 1 {
		t.Fatalf("%d tokens cached, want 1", n)
	}
	for range 10 {
		if p := e.mustAuth(tok, 0); p != first {
			t.Fatal("cache hit returned another principal")
		}
	}
	e.clock.Advance(defaultRecheck - time.Nanosecond)
	e.mustAuth(tok, 0)
	e.clock.Advance(time.Nanosecond)
	if p := e.mustAuth(tok, 1); p != first || p.Subject != "alice" || !p.HasRole("dev") {
		t.Fatalf("principal after recheck = %+v", p)
	}
	e.mustAuth(tok, 0)
	// A token without jti needs no revocation query at all.
	noJTI := e.token("", func(c map[string]any) { delete(c, "jti") })
	e.mustAuth(noJTI, 0)
	e.clock.Advance(time.Hour - time.Second)
	e.mustAuth(noJTI, 0)
}

func TestCachedTokenRevokedWithinRecheck(t *testing.T) {
	t.Parallel()
	const recheck = 3 * time.Second
	e := newCacheEnv(t, func(c *Config) { c.RevocationRecheck = recheck })
	tok := e.token("doomed", nil)
	other := e.token("fine", nil)
	e.mustAuth(tok, 1)
	e.mustAuth(other, 1)
	e.revs.revoke("doomed")
	// Within the recheck interval the revocation is not seen yet: the
	// documented staleness bound.
	e.clock.Advance(recheck - time.Nanosecond)
	e.mustAuth(tok, 0)
	e.clock.Advance(time.Nanosecond)
	e.mustRefuse(tok, "jwt: token revoked")
	if n := e.a.cache.Len(); n != 1 {
		t.Fatalf("%d tokens cached after the revocation, want only the other", n)
	}
	before := e.revs.calls.Load()
	e.mustRefuse(tok, "jwt: token revoked") // verified afresh, and refused
	if e.revs.calls.Load() != before+1 {
		t.Fatal("revoked token not checked again")
	}
	e.mustAuth(other, 1)
}

func TestCachedExpiryRespectsLeeway(t *testing.T) {
	t.Parallel()
	for _, leeway := range []time.Duration{0, -1, 10 * time.Second} {
		t.Run(fmt.Sprint(leeway), func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			mk := func(size int) *Authenticator {
				return newTestAuthenticator(t, clock, func(c *Config) {
					c.Leeway = leeway
					c.CacheSize = size
					c.CacheTTL = 24 * time.Hour // only the token's expiry ends the entry
				})
			}
			cached, uncached := mk(0), mk(-1)
			issued := clock.Now()
			tok := sign(t, jose.HS256, testKeys().hmac, "hs", claimsAt(issued))
			if _, err := cached.Authenticate(context.Background(), bearer(tok)); err != nil {
				t.Fatal(err)
			}
			effective := cached.leeway
			end := issued.Add(time.Hour + effective) // last accepted instant
			for _, at := range []time.Duration{-time.Second, -time.Nanosecond, 0, time.Nanosecond, time.Second} {
				clock.Advance(end.Add(at).Sub(clock.Now()))
				hit := cached.cache.Len() == 1
				_, errC := cached.Authenticate(context.Background(), bearer(tok))
				_, errU := uncached.Authenticate(context.Background(), bearer(tok))
				if wantOK := at <= 0; (errC == nil) != wantOK || (errU == nil) != wantOK {
					t.Fatalf("exp%+v (leeway %v): cached %v, uncached %v; want accepted = %v", at, effective, errC, errU, wantOK)
				}
				if errC != nil && (errC != errExpired || errU != errExpired) {
					t.Fatalf("cached %v, uncached %v; want both %v", errC, errU, errExpired)
				}
				if at == time.Nanosecond && (!hit || cached.cache.Len() != 0) {
					t.Fatalf("expiry not decided on a cache hit, or the entry not evicted (hit %v, len %d)", hit, cached.cache.Len())
				}
			}
		})
	}
}

func TestCachedNotBeforeOnClockSetBack(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, func(c *Config) { c.Leeway = -1 })
	tok := e.token("t", func(c map[string]any) { c["nbf"] = josejwt.NewNumericDate(e.clock.Now()) })
	e.mustAuth(tok, 1)
	e.clock.Advance(-time.Second)
	e.mustRefuse(tok, "jwt: token not yet valid")
	e.clock.Advance(time.Second)
	e.mustAuth(tok, 0) // still cached, and checked as of this instant
}

func TestCacheTTLBoundsEntry(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, func(c *Config) {
		c.CacheTTL = time.Minute
		c.RevocationRecheck = time.Hour
	})
	tok := e.token("t", nil)
	e.mustAuth(tok, 1)
	e.clock.Advance(time.Minute - time.Nanosecond)
	e.mustAuth(tok, 0)
	e.clock.Advance(time.Nanosecond)
	e.mustAuth(tok, 1) // verified afresh (and so checked for revocation)
	e.mustAuth(tok, 0)
}

func TestRefusedTokensNotCached(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, nil)
	k := testKeys()
	now := e.clock.Now()
	e.revs.revoke("revoked")
	for _, tok := range []string{
		sign(t, jose.RS256, k.rsaOther, "rs", claimsAt(now)), // bad signature
		e.token("x", func(c map[string]any) { c["exp"] = josejwt.NewNumericDate(now.Add(-time.Hour)) }),
		e.token("x", func(c map[string]any) { c["aud"] = "someone-else" }),
		e.token("revoked", nil),
		"a.b.c",
	} {
		for range 3 {
			if _, err := e.auth(tok); !errors.Is(err, guard.ErrInvalidCredentials) {
				t.Fatalf("error = %v, want a refusal", err)
			}
		}
	}
	if n := e.a.cache.Len(); n != 0 {
		t.Fatalf("%d refused tokens cached", n)
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	const size = 8
	e := newCacheEnv(t, func(c *Config) { c.CacheSize = size })
	toks := make([]string, 50)
	for i := range toks {
		toks[i] = e.token(fmt.Sprint("t", i), nil)
		e.mustAuth(toks[i], 1)
		if n := e.a.cache.Len(); n > size {
			t.Fatalf("%d tokens cached, bound is %d", n, size)
		}
	}
	if n := e.a.cache.Len(); n != size {
		t.Fatalf("%d tokens cached, want %d", n, size)
	}
	e.mustAuth(toks[len(toks)-1], 0) // most recent: a hit
	e.mustAuth(toks[0], 1)           // evicted: verified afresh
}

func TestCachedPrincipalReadOnlySharing(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, nil)
	tok := e.token("t", func(c map[string]any) {
		c["roles"] = []string{"viewer"}
		c["scope"] = "a b"
		c["permissions"] = []any{"x:*", 7}
	})
	p := e.mustAuth(tok, 1)
	for name, s := range map[string][]string{"roles": p.Roles, "scopes": p.Scopes, "permissions": p.Permissions} {
		if cap(s) != len(s) {
			t.Errorf("%s: len %d, cap %d; want a clipped slice", name, len(s), cap(s))
		}
	}
	grown := append(p.Roles, "admin")
	_ = grown
	if q := e.mustAuth(tok, 0); q != p || len(q.Roles) != 1 || q.HasRole("admin") {
		t.Fatalf("cached principal changed by an append to a returned one: %+v", q)
	}
}

func TestCacheDisabled(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*Config){
		"no cache":       func(c *Config) { c.CacheSize = -1 },
		"always recheck": func(c *Config) { c.RevocationRecheck = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCacheEnv(t, mutate)
			tok := e.token("t", nil)
			for range 3 {
				e.mustAuth(tok, 1)
			}
			e.revs.revoke("t")
			e.mustRefuse(tok, "jwt: token revoked") // at once
		})
	}
	e := newCacheEnv(t, func(c *Config) { c.CacheSize = -1 })
	if e.a.cache != nil {
		t.Fatal("cache built though disabled")
	}
}

func TestCachedRecheckFailsClosed(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, nil)
	tok := e.token("t", nil)
	e.mustAuth(tok, 1)
	down := errors.New("store down")
	e.revs.setErr(down)
	e.mustAuth(tok, 0)
	e.clock.Advance(defaultRecheck)
	if _, err := e.auth(tok); !errors.Is(err, down) || errors.Is(err, guard.ErrInvalidCredentials) {
		t.Fatalf("error = %v, want the checker's error, not a refusal", err)
	}
	e.revs.setErr(nil)
	e.mustAuth(tok, 1)
	e.mustAuth(tok, 0)
}

func TestNewRefusesNegativeCacheTTL(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Issuer: testIssuer, Audiences: []string{testAudience}, Keys: staticKeys(testKeys()), CacheTTL: -time.Second})
	if err == nil {
		t.Fatal("negative CacheTTL accepted")
	}
}

func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	const recheck = 100 * time.Millisecond
	e := newCacheEnv(t, func(c *Config) {
		c.CacheSize = 4
		c.RevocationRecheck = recheck
	})
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = e.token(fmt.Sprint("t", i), nil)
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 150 {
				if _, err := e.auth(toks[(g+i)%len(toks)]); err != nil && !errors.Is(err, guard.ErrInvalidCredentials) {
					t.Errorf("internal error: %v", err)
					return
				}
				if g == 0 && i%15 == 0 {
					e.clock.Advance(recheck / 3)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 4 {
			e.revs.revoke(fmt.Sprint("t", i))
		}
	})
	wg.Wait()
	if n := e.a.cache.Len(); n > 4 {
		t.Fatalf("%d tokens cached, bound is 4", n)
	}
	e.clock.Advance(recheck)
	for i, tok := range toks {
		_, err := e.auth(tok)
		if revoked := i < 4; revoked != (err != nil) {
			t.Errorf("token %d: revoked %v, error %v", i, revoked, err)
		}
	}
}
