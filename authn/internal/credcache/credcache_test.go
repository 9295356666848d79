package credcache

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func key(i int) Key { return Sum(fmt.Sprintf("credential-%d", i)) }

func TestNilCacheIsDisabled(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, -1} {
		c := New[int](size)
		if c != nil {
			t.Fatalf("New(%d) = %v, want nil", size, c)
		}
		c.Add(key(1), 1)
		if _, ok := c.Get(key(1)); ok {
			t.Fatal("a disabled cache found an entry")
		}
		c.Remove(key(1))
		if c.Len() != 0 || c.Cap() != 0 {
			t.Fatalf("disabled cache Len, Cap = %d, %d", c.Len(), c.Cap())
		}
	}
}

func TestCapacityIsExact(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 2, 15, 16, 17, 100, 255, 256, 257, 1000, 10_000} {
		c := New[int](size)
		if c.Cap() != size {
			t.Errorf("New(%d).Cap() = %d", size, c.Cap())
		}
	}
}

func TestBoundRespected(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 7, 64, 1000} {
		c := New[int](size)
		for i := range 20 * size {
			c.Add(key(i), i)
			if n := c.Len(); n > size {
				t.Fatalf("size %d: %d entries after %d additions", size, n, i+1)
			}
		}
		// Shards fill unevenly, but 20× the capacity fills them all.
		if n := c.Len(); n != size {
			t.Errorf("size %d: %d entries after filling, want %d", size, n, size)
		}
	}
}

func TestLRUOrder(t *testing.T) {
	t.Parallel()
	// Small enough for a single shard, so that the order is global.
	c := New[int](3)
	if len(c.shards) != 1 {
		t.Fatalf("%d shards for 3 entries, want 1", len(c.shards))
	}
	c.Add(key(1), 1)
	c.Add(key(2), 2)
	c.Add(key(3), 3)
	if v, ok := c.Get(key(1)); !ok || v != 1 { // 1 becomes most recent
		t.Fatalf("Get(1) = %d, %v", v, ok)
	}
	c.Add(key(4), 4) // evicts 2, the least recently used
	if _, ok := c.Get(key(2)); ok {
		t.Error("least recently used entry survived eviction")
	}
	for _, i := range []int{1, 3, 4} {
		if v, ok := c.Get(key(i)); !ok || v != i {
			t.Errorf("Get(%d) = %d, %v; want %d, true", i, v, ok, i)
		}
	}
	c.Add(key(3), 33) // replace keeps the count
	if v, _ := c.Get(key(3)); v != 33 || c.Len() != 3 {
		t.Errorf("after replace: Get(3) = %d, Len = %d", v, c.Len())
	}
	c.Remove(key(3))
	c.Remove(key(3))
	if _, ok := c.Get(key(3)); ok || c.Len() != 2 {
		t.Errorf("after Remove: found = %v, Len = %d", ok, c.Len())
	}
	// Removing the only entries empties the list cleanly.
	c.Remove(key(1))
	c.Remove(key(4))
	s := &c.shards[0]
	if s.list.Front() != nil || s.list.Back() != nil || c.Len() != 0 {
		t.Error("list not empty after removing every entry")
	}
	c.Add(key(5), 5)
	if v, ok := c.Get(key(5)); !ok || v != 5 {
		t.Errorf("Get(5) after emptying = %d, %v", v, ok)
	}
}

func TestDue(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	last := base.UnixNano()
	for _, tc := range []struct {
		at       time.Duration
		interval time.Duration
		want     bool
	}{
		{0, time.Second, false},
		{time.Second - 1, time.Second, false},
		{time.Second, time.Second, true},
		{time.Hour, time.Second, true},
		{-time.Nanosecond, time.Second, true}, // clock set back
		{0, -1, true},                         // always check
	} {
		if got := Due(last, base.Add(tc.at), tc.interval); got != tc.want {
			t.Errorf("Due(+%v, every %v) = %v, want %v", tc.at, tc.interval, got, tc.want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	c := New[int](50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := key((g*7 + i) % 200)
				switch i % 3 {
				case 0:
					c.Add(k, i)
				case 1:
					c.Get(k)
				case 2:
					if i%30 == 2 {
						c.Remove(k)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > 50 {
		t.Fatalf("%d entries, want at most 50", n)
	}
	// The lists agree with the maps.
	for i := range c.shards {
		s := &c.shards[i]
		count := 0
		for n := s.list.Front(); n != nil; n = n.Next() {
			if s.m[n.Value.key] != n {
				t.Fatal("list node missing from map")
			}
			count++
		}
		if count != len(s.m) {
			t.Fatalf("shard %d: list has %d nodes, map %d", i, count, len(s.m))
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	c := New[int](10_000)
	keys := make([]Key, 1000)
	for i := range keys {
		keys[i] = key(i)
		c.Add(keys[i], i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(keys[i%len(keys)])
			i++
		}
	})
}

func TestCacheSumMatchesSHA256(t *testing.T) {
	t.Parallel()
	c := New[int](1)
	var disabled *Cache[int]
	for _, n := range []int{0, 1, 63, 64, 511, 512, 513, 700, 1024, 5000} {
		s := strings.Repeat("x", n) + fmt.Sprint(n)
		want := sha256.Sum256([]byte(s))
		if got := c.Sum(s); got != want {
			t.Errorf("Sum of %d bytes = %x, want %x", len(s), got, want)
		}
		if got := disabled.Sum(s); got != want {
			t.Errorf("nil Cache: Sum of %d bytes differs", len(s))
		}
	}
}

func BenchmarkSum(b *testing.B) {
	c := New[int](1)
	s := strings.Repeat("x", 700)
	b.ReportAllocs()
	for b.Loop() {
		c.Sum(s)
	}
}

func TestClear(t *testing.T) {
	t.Parallel()
	c := New[int](100)
	for i := range 50 {
		c.Add(key(i), i)
	}
	c.Clear()
	if n := c.Len(); n != 0 {
		t.Fatalf("Len after Clear = %d", n)
	}
	for i := range 50 {
		if _, ok := c.Get(key(i)); ok {
			t.Fatalf("entry %d survived Clear", i)
		}
	}
	// The cache keeps working, with its full capacity: it holds what a
	// new cache fed the same keys holds.
	fresh := New[int](100)
	for i := range 100 {
		c.Add(key(i), i)
		fresh.Add(key(i), i)
	}
	if n, want := c.Len(), fresh.Len(); n != want {
		t.Fatalf("Len after refilling = %d, want %d", n, want)
	}
	var nilCache *Cache[int]
	nilCache.Clear() // a disabled cache: nothing to do, no panic
}
