package ratelimit

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/mcpguard/mcpguard/guard"
)

// Bucket is one token bucket a request must pass, as a shared limiter
// (package ratelimit/redislimit) stores it: the same buckets, keys and
// rules as [Local] uses, so that both enforce identical semantics.
type Bucket struct {
	// Scope is ScopeIdentity, ScopeKey or ScopeTool.
	Scope string
	// Key identifies the bucket; at most a bounded length (long keys are
	// replaced by a digest).
	Key string
	// Interval is the time one token takes to come back (Per/Requests).
	Interval time.Duration
	// Burst is the bucket size.
	Burst int
}

// Plan is a compiled [Config]: it lists the buckets a request uses.
type Plan struct {
	l *Local
}

// NewPlan validates cfg and compiles it.
func NewPlan(cfg Config) (*Plan, error) {
	cfg.MaxEntries = 1 // no buckets are kept
	l, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &Plan{l: l}, nil
}

// Buckets appends to dst the buckets that p's request (of tool, for
// tools/call; empty otherwise) must pass, in the order identity, key, tool.
func (pl *Plan) Buckets(dst []Bucket, p *guard.Principal, tool string) ([]Bucket, error) {
	if p == nil {
		return nil, errors.New("ratelimit: nil principal")
	}
	l := pl.l
	add := func(scope string, r rule, key []byte) {
		dst = append(dst, Bucket{Scope: scope, Key: string(boundKey(key)), Interval: r.interval(), Burst: r.burst})
	}
	if l.identity.on {
		add(ScopeIdentity, l.identity, appendID([]byte{'i'}, p))
	}
	if l.key.on && p.KeyID != "" {
		add(ScopeKey, l.key, append([]byte{'k'}, p.KeyID...))
	}
	if tool != "" {
		r, ok := l.tools[tool]
		if !ok {
			r = l.anyTool
		}
		if r.on {
			k := binary.AppendUvarint([]byte{'t'}, uint64(idLen(p)))
			add(ScopeTool, r, append(appendID(k, p), tool...))
		}
	}
	return dst, nil
}

// interval is the time one token takes to refill.
func (r rule) interval() time.Duration {
	d := r.delay(1)
	if d <= 0 {
		return 1
	}
	return d
}
