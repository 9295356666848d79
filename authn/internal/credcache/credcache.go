// Package credcache is a bounded, sharded least-recently-used map from the
// SHA-256 digest of a credential to what verifying that credential yielded.
// The authenticators in authn/apikey and authn/jwt use it so that a
// credential presented again is not verified from scratch.
//
// The cache never sees a credential: it is keyed by the credential's digest
// ([Sum]), so a memory dump of the cache yields no usable secret, and a
// caller holding only part of a credential (a key id without its secret)
// cannot hit an entry.
package credcache

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"

	"github.com/mcpguard/mcpguard/internal/lrulist"
)

// Key is the SHA-256 digest of a credential.
type Key = [sha256.Size]byte

// Sum returns the cache key of credential secret. [Cache.Sum] computes the
// same digest without allocating.
func Sum(secret string) Key { return sha256.Sum256([]byte(secret)) }

// hasher is scratch space for [Cache.Sum]: a SHA-256 state and the buffers
// that spare converting the credential to a byte slice (a heap copy of the
// whole credential, on every request).
type hasher struct {
	h   hash.Hash
	buf [512]byte
	out [sha256.Size]byte
}

// Due reports whether a check last made at lastNano (Unix nanoseconds) must
// be made again at now, given that checks are repeated every interval. A
// negative interval makes every check due, and so does a clock that reads
// earlier than lastNano (a clock set back proves nothing about freshness).
func Due(lastNano int64, now time.Time, interval time.Duration) bool {
	elapsed := now.UnixNano() - lastNano
	return interval < 0 || elapsed < 0 || elapsed >= int64(interval)
}

const (
	maxShards = 16
	// minShardCap is the least capacity of a shard: a cache too small to
	// give every one of maxShards shards this much uses fewer shards, so
	// that one busy shard does not evict while others sit empty.
	minShardCap = 16
)

// Cache is a map from Key to V holding at most a fixed number of entries,
// evicting the least recently used one to make room. It is split into
// shards, each with its own lock, so that concurrent lookups of different
// credentials rarely contend. A Cache is safe for concurrent use.
//
// Values are returned as stored, so V should be immutable or synchronize
// its own mutable parts (a pointer to a struct with atomic fields, say).
type Cache[V any] struct {
	shards  []shard[V]
	mask    uint32
	hashers sync.Pool // of *hasher
}

type shard[V any] struct {
	mu   sync.Mutex
	m    map[Key]*node[V]
	list lrulist.List[entry[V]]
	cap  int
	_    [64]byte // keeps neighbouring shards' locks off one cache line
}

type entry[V any] struct {
	key Key
	val V
}

type node[V any] = lrulist.Node[entry[V]]

// New returns a Cache holding at most size entries, or nil when size is
// not positive. The methods of a nil *Cache do nothing and find nothing, so
// a nil Cache is a disabled one.
func New[V any](size int) *Cache[V] {
	if size <= 0 {
		return nil
	}
	n := maxShards
	for n > 1 && size/n < minShardCap {
		n /= 2
	}
	c := &Cache[V]{shards: make([]shard[V], n), mask: uint32(n - 1)}
	c.hashers.New = func() any { return &hasher{h: sha256.New()} }
	for i := range c.shards {
		// Spread size over the shards so that their capacities add up to
		// exactly size.
		sc := size / n
		if i < size%n {
			sc++
		}
		c.shards[i].cap = sc
		c.shards[i].m = make(map[Key]*node[V], min(sc, 1024))
	}
	return c
}

// Sum returns the cache key of credential secret, as the package-level
// [Sum] does, without allocating. It works on a nil (disabled) Cache too.
func (c *Cache[V]) Sum(secret string) Key {
	if c == nil {
		return Sum(secret)
	}
	x := c.hashers.Get().(*hasher)
	x.h.Reset()
	for len(secret) > 0 {
		n := copy(x.buf[:], secret)
		x.h.Write(x.buf[:n]) // never fails
		secret = secret[n:]
	}
	x.h.Sum(x.out[:0])
	k := x.out
	// Leave no part of the credential behind in pooled memory.
	clear(x.buf[:])
	x.h.Reset()
	c.hashers.Put(x)
	return k
}

func (c *Cache[V]) shard(k *Key) *shard[V] {
	// A digest is uniformly distributed: any four bytes pick a shard fairly.
	return &c.shards[binary.LittleEndian.Uint32(k[:4])&c.mask]
}

// Get returns the value stored under k and marks it most recently used.
func (c *Cache[V]) Get(k Key) (v V, ok bool) {
	if c == nil {
		return v, false
	}
	s := c.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[k]
	if !ok {
		return v, false
	}
	s.list.MoveToFront(n)
	return n.Value.val, true
}

// Add stores v under k, replacing any value stored there, and evicts the
// least recently used entry of k's shard if the shard is full.
func (c *Cache[V]) Add(k Key, v V) {
	if c == nil {
		return
	}
	s := c.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.m[k]; ok {
		n.Value.val = v
		s.list.MoveToFront(n)
		return
	}
	var n *node[V]
	if len(s.m) >= s.cap {
		// Reuse the evicted node rather than allocating another.
		n = s.list.Back()
		s.list.Remove(n)
		delete(s.m, n.Value.key)
		n.Value = entry[V]{key: k, val: v}
	} else {
		n = &node[V]{Value: entry[V]{key: k, val: v}}
	}
	s.m[k] = n
	s.list.PushFront(n)
}

// Remove deletes the entry stored under k, if any.
func (c *Cache[V]) Remove(k Key) {
	if c == nil {
		return
	}
	s := c.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.m[k]; ok {
		s.list.Remove(n)
		delete(s.m, k)
	}
}

// Clear deletes every entry, so that each credential is verified anew on
// its next use (after a revocation elsewhere, say).
func (c *Cache[V]) Clear() {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, n := range s.m {
			s.list.Remove(n)
			delete(s.m, k)
		}
		s.mu.Unlock()
	}
}

// Len returns the number of entries stored.
func (c *Cache[V]) Len() int {
	if c == nil {
		return 0
	}
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		total += len(s.m)
		s.mu.Unlock()
	}
	return total
}

// Cap returns the number of entries the cache holds at most.
func (c *Cache[V]) Cap() int {
	if c == nil {
		return 0
	}
	total := 0
	for i := range c.shards {
		total += c.shards[i].cap
	}
	return total
}
