package ratelimit

import (
	"crypto/sha256"
	"hash/maphash"
	"sync"

	"github.com/mcpguard/mcpguard/internal/lrulist"
)

// maxKeyLen bounds the length of a stored map key. Longer keys (which only a
// pathological principal, API key id, tool name or source address produces)
// are replaced by a SHA-256 digest, so that no caller-controlled string can
// make one entry arbitrarily large.
const maxKeyLen = 512

// evictScan is how many least-recently-used entries an insertion into a full
// shard inspects, looking for one whose loss is harmless (see lru.add).
const evictScan = 8

// boundKey returns key, or a fixed-length digest of it when it is longer than
// maxKeyLen. A digest starts with '#', which no short key does (short keys
// start with a lower-case scope letter), followed by the scope byte key[0], so
// digests cannot collide with short keys or with digests of another scope.
func boundKey(key []byte) []byte {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256(key)
	out := make([]byte, 0, 2+len(sum))
	out = append(out, '#', key[0])
	return append(out, sum[:]...)
}

// entry is one key and value of an lru.
type entry[V any] struct {
	key string
	val V
}

// node is one entry of an lru, linked into its recency list.
type node[V any] = lrulist.Node[entry[V]]

// lru is a map bounded to cap entries with least-recently-used eviction. It is
// not safe for concurrent use; shard serializes access.
type lru[V any] struct {
	m    map[string]*node[V]
	list lrulist.List[entry[V]]
	cap  int
	// harmless reports whether evicting v loses nothing (for example a full
	// token bucket, which is indistinguishable from a new one). May be nil.
	harmless func(v V) bool
}

// get returns the entry for key and marks it most recently used.
func (c *lru[V]) get(key []byte) (*node[V], bool) {
	n, ok := c.m[string(key)]
	if ok {
		c.list.MoveToFront(n)
	}
	return n, ok
}

// add inserts a new entry for key (which must be absent), evicting one entry
// first when the lru is full. Among the evictScan least recently used entries
// it evicts the oldest harmless one, or else the least recently used one.
func (c *lru[V]) add(key string, v V) *node[V] {
	if len(c.m) >= c.cap && c.list.Back() != nil {
		victim := c.list.Back()
		if c.harmless != nil {
			for n, i := c.list.Back(), 0; n != nil && i < evictScan; n, i = n.Prev(), i+1 {
				if c.harmless(n.Value.val) {
					victim = n
					break
				}
			}
		}
		c.list.Remove(victim)
		delete(c.m, victim.Value.key)
	}
	n := &node[V]{Value: entry[V]{key: key, val: v}}
	c.m[key] = n
	c.list.PushFront(n)
	return n
}

// shard is one independently locked part of a table.
type shard[V any] struct {
	mu sync.Mutex
	lru[V]
	_ [64]byte // keep neighbouring shards' mutexes off one cache line
}

// table is a set of LRU maps, each behind its own mutex, chosen by key hash.
// Its total size never exceeds the maxEntries it was built with.
type table[V any] struct {
	seed   maphash.Seed
	shards []shard[V]
}

// newTable builds a table holding at most maxEntries entries (maxEntries ≥ 1).
// It uses up to 32 shards but keeps at least 16 entries per shard, so that
// a small bound is not fragmented into uselessly small shards.
func newTable[V any](maxEntries int, harmless func(V) bool) *table[V] {
	n := 32
	for n > 1 && maxEntries/n < 16 {
		n /= 2
	}
	t := &table[V]{seed: maphash.MakeSeed(), shards: make([]shard[V], n)}
	for i := range t.shards {
		c := maxEntries / n
		if i < maxEntries%n {
			c++
		}
		t.shards[i].lru = lru[V]{m: make(map[string]*node[V]), cap: c, harmless: harmless}
	}
	return t
}

// index returns the shard index for key.
func (t *table[V]) index(key []byte) int {
	return int(maphash.Bytes(t.seed, key) & uint64(len(t.shards)-1))
}

// len returns the number of entries in the table.
func (t *table[V]) len() int {
	total := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		total += len(s.m)
		s.mu.Unlock()
	}
	return total
}
