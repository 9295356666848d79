// Package ratelimit implements mcpguard's in-memory rate limiting stage
// ([guard.Limiter]) and authentication lockout ([guard.Lockout]).
//
// [Local] keeps token buckets (golang.org/x/time/rate) per principal, per API
// key and per principal and tool. A request must pass every bucket that
// applies to it; when any refuses, none is charged, so a refused request never
// costs the caller tokens in another bucket.
//
// [MemoryLockout] locks out a source address after repeated authentication
// failures.
//
// Both keep their state in memory, bounded by a maximum number of entries,
// in a table split into independently locked shards so that concurrent
// requests for different principals rarely contend.
package ratelimit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcpguard/mcpguard/guard"
)

// DefaultMaxEntries is the default bound on tracked buckets or sources.
const DefaultMaxEntries = 100_000

// Scopes reported in [guard.LimitResult.Scope].
const (
	ScopeIdentity = "identity"
	ScopeKey      = "key"
	ScopeTool     = "tool"
)

// AnyTool is the [Config.Tools] name whose rule applies to every tool that
// has no rule of its own.
const AnyTool = "*"

// Rule is a token bucket: Requests requests per Per on average, with bursts of
// up to Burst requests. The zero Rule means no limit.
type Rule struct {
	// Requests is how many requests are allowed per Per. Zero disables the
	// rule.
	Requests int
	// Per is the period over which Requests are allowed.
	Per time.Duration
	// Burst is the bucket size: how many requests may be made at once after
	// a quiet period. Zero means Requests.
	Burst int
}

// IsZero reports whether r is the zero (unlimited) rule.
func (r Rule) IsZero() bool { return r == Rule{} }

// compile validates r and returns its rate and burst. on is false for the
// zero rule.
func (r Rule) compile() (c rule, err error) {
	if r.IsZero() {
		return rule{}, nil
	}
	switch {
	case r.Requests <= 0:
		return rule{}, fmt.Errorf("requests must be positive, got %d", r.Requests)
	case r.Per <= 0:
		return rule{}, fmt.Errorf("per must be a positive duration, got %v", r.Per)
	case r.Burst < 0:
		return rule{}, fmt.Errorf("burst must not be negative, got %d", r.Burst)
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.Requests
	}
	return rule{on: true, limit: rate.Limit(float64(r.Requests) / r.Per.Seconds()), burst: burst}, nil
}

// rule is a validated Rule.
type rule struct {
	on    bool
	limit rate.Limit
	burst int
}

// delay returns how long it takes the rule to refill missing tokens, to the
// nearest nanosecond.
func (r rule) delay(missing float64) time.Duration {
	d := math.Round(missing / float64(r.limit) * float64(time.Second))
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// Config configures a [Local] limiter.
type Config struct {
	// Identity limits each principal, keyed by [guard.Principal.ID].
	Identity Rule
	// Key limits each API key, keyed by [guard.Principal.KeyID], for
	// principals that have one. Several principals sharing one key share its
	// bucket.
	Key Rule
	// Tools limits each principal's calls of each tool, by exact tool name.
	// The rule named [AnyTool] ("*") applies to every tool without a rule of
	// its own; each such tool still gets its own bucket per principal.
	Tools map[string]Rule
	// MaxEntries bounds the number of buckets kept in memory (all scopes
	// together); zero means [DefaultMaxEntries]. When the bound is reached,
	// a new bucket replaces a least recently used one, preferring one that is
	// full (whose loss changes nothing).
	MaxEntries int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Local is an in-memory [guard.Limiter]. It is safe for concurrent use.
type Local struct {
	identity rule
	key      rule
	tools    map[string]rule
	anyTool  rule
	now      func() time.Time
	buckets  *table[*rate.Limiter]
}

var _ guard.Limiter = (*Local)(nil)

// New returns a limiter enforcing cfg.
func New(cfg Config) (*Local, error) {
	l := &Local{now: cfg.Now, tools: make(map[string]rule, len(cfg.Tools))}
	if l.now == nil {
		l.now = time.Now
	}
	var err error
	if l.identity, err = cfg.Identity.compile(); err != nil {
		return nil, fmt.Errorf("ratelimit: identity rule: %w", err)
	}
	if l.key, err = cfg.Key.compile(); err != nil {
		return nil, fmt.Errorf("ratelimit: key rule: %w", err)
	}
	for name, r := range cfg.Tools {
		if name == "" {
			return nil, errors.New("ratelimit: tool rule with an empty tool name")
		}
		c, err := r.compile()
		if err != nil {
			return nil, fmt.Errorf("ratelimit: tool %q rule: %w", name, err)
		}
		if name == AnyTool {
			l.anyTool = c
			continue
		}
		// A zero rule for a named tool is kept: it exempts the tool from the
		// "*" rule.
		l.tools[name] = c
	}
	switch {
	case cfg.MaxEntries < 0:
		return nil, fmt.Errorf("ratelimit: max entries must not be negative, got %d", cfg.MaxEntries)
	case cfg.MaxEntries == 0:
		cfg.MaxEntries = DefaultMaxEntries
	}
	l.buckets = newTable(cfg.MaxEntries, func(lim *rate.Limiter) bool {
		// A full bucket behaves exactly like a new one.
		return lim.TokensAt(l.now()) >= float64(lim.Burst())
	})
	return l, nil
}

// keyBuf is the stack buffer size for building bucket keys; longer keys
// spill to the heap.
const keyBuf = 192

// check is one bucket a request must pass. (Its key is kept apart, in a
// parallel array: escape analysis is not field-sensitive through pointers,
// and a key in the same struct as lim would be moved to the heap.)
type check struct {
	scope string
	rule  rule
	shard int
	lim   *rate.Limiter
}

// Limit decides whether p may make one more request now. tool is the tool
// name for tools/call and empty otherwise. The request is allowed only if
// every applicable bucket (identity, key, tool) has a token; then one token is
// taken from each. Otherwise nothing is taken, RetryAfter is the longest wait
// among the refusing buckets (exact, not rounded) and Scope names that bucket.
func (l *Local) Limit(ctx context.Context, p *guard.Principal, tool string) (guard.LimitResult, error) {
	if p == nil {
		return guard.LimitResult{}, errors.New("ratelimit: nil principal")
	}
	if err := ctx.Err(); err != nil {
		return guard.LimitResult{}, fmt.Errorf("ratelimit: %w", err)
	}
	var (
		bufs   [3][keyBuf]byte
		checks [3]check
		keys   [3][]byte
		n      int
	)
	if l.identity.on {
		k := appendID(append(bufs[0][:0], 'i'), p)
		checks[n], keys[n] = check{scope: ScopeIdentity, rule: l.identity}, boundKey(k)
		n++
	}
	if l.key.on && p.KeyID != "" {
		k := append(append(bufs[1][:0], 'k'), p.KeyID...)
		checks[n], keys[n] = check{scope: ScopeKey, rule: l.key}, boundKey(k)
		n++
	}
	if tool != "" {
		r, ok := l.tools[tool]
		if !ok {
			r = l.anyTool
		}
		if r.on {
			// The principal id is length-prefixed so that no (id, tool)
			// pair can spell another pair's key.
			k := append(bufs[2][:0], 't')
			k = binary.AppendUvarint(k, uint64(idLen(p)))
			k = append(appendID(k, p), tool...)
			checks[n], keys[n] = check{scope: ScopeTool, rule: r}, boundKey(k)
			n++
		}
	}
	if n == 0 {
		return guard.LimitResult{Allowed: true}, nil
	}
	cs := checks[:n]

	// Lock the shards involved in ascending order (so that concurrent
	// requests cannot deadlock), each once. Holding them across the check and
	// the take makes the decision atomic: no other request can use these
	// buckets in between.
	var order [3]int
	for i := range cs {
		cs[i].shard = l.buckets.index(keys[i])
		order[i] = cs[i].shard
	}
	locks := order[:n]
	slices.Sort(locks)
	locks = slices.Compact(locks)
	for _, s := range locks {
		l.buckets.shards[s].mu.Lock()
	}
	defer func() {
		for _, s := range locks {
			l.buckets.shards[s].mu.Unlock()
		}
	}()

	now := l.now()
	var res guard.LimitResult
	for i := range cs {
		c := &cs[i]
		sh := &l.buckets.shards[c.shard]
		if nd, ok := sh.get(keys[i]); ok {
			c.lim = nd.Value.val
		} else {
			c.lim = rate.NewLimiter(c.rule.limit, c.rule.burst)
			sh.add(string(keys[i]), c.lim)
		}
		if tokens := c.lim.TokensAt(now); tokens < 1 {
			if d := c.rule.delay(1 - tokens); res.Scope == "" || d > res.RetryAfter {
				res.RetryAfter, res.Scope = d, c.scope
			}
		}
	}
	if res.Scope != "" {
		return res, nil
	}
	for i := range cs {
		// Cannot fail: the bucket was seen to hold a token at now, and no
		// one else can have used it since.
		cs[i].lim.AllowN(now, 1)
	}
	return guard.LimitResult{Allowed: true}, nil
}

// Len returns the number of buckets currently held in memory.
func (l *Local) Len() int { return l.buckets.len() }

// appendID appends p.ID() to b without allocating.
func appendID(b []byte, p *guard.Principal) []byte {
	b = append(b, p.Method...)
	b = append(b, ':')
	b = append(b, p.Issuer...)
	b = append(b, ':')
	return append(b, p.Subject...)
}

// idLen returns len(p.ID()).
func idLen(p *guard.Principal) int { return len(p.Method) + len(p.Issuer) + len(p.Subject) + 2 }
