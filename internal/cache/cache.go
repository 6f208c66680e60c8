// Package cache is the bounded metadata cache the drivers share (qcow2 L2
// tables, VMDK grain tables, VHD sector bitmaps, VHDX BAT pages): a map
// with at most a given number of values, least recently used dropped
// first, every value charged to the image's metadata budget
// (formats.Budget). When the budget is spent the cache drops its own oldest
// values first; a value that still does not fit is not kept (the caller
// uses it once) unless the caller must keep it (a writer's dirty table).
package cache

import (
	"container/list"
	"sync"

	"github.com/vdiskio/vdisk/formats"
)

// Cache maps K to V; safe for concurrent use.
type Cache[K comparable, V any] struct {
	mu     sync.Mutex
	limit  int
	budget *formats.Budget
	size   func(V) int64
	evict  func(K, V)
	lru    *list.List // of *entry[K, V], most recently used first
	items  map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key     K
	val     V
	charged int64 // bytes charged to the budget for val
}

// New returns a cache of at most limit values (at least 1) whose value v
// costs size(v) bytes of budget (nil: no budget).
func New[K comparable, V any](limit int, budget *formats.Budget, size func(V) int64) *Cache[K, V] {
	return &Cache[K, V]{limit: max(limit, 1), budget: budget, size: size, lru: list.New(), items: map[K]*list.Element{}}
}

// OnEvict sets fn to be called with every value the cache drops, with the
// cache's lock held (fn must not use the cache). A writer flushes a dirty
// table there.
func (c *Cache[K, V]) OnEvict(fn func(K, V)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evict = fn
}

// Get returns the value for k and makes it the most recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*entry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Put keeps v for k (replacing a value it had) and reports whether it was
// kept: a value the budget cannot pay for, even with every other value
// dropped, is kept only when must is set.
func (c *Cache[K, V]) Put(k K, v V, must bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.drop(e, false)
	}
	cost := c.size(v)
	charged := cost
	for !c.budget.TryCharge(cost) {
		if c.lru.Len() == 0 {
			if !must {
				return false
			}
			charged = 0 // kept over budget: nothing to refund
			break
		}
		c.drop(c.lru.Back(), true)
	}
	c.items[k] = c.lru.PushFront(&entry[K, V]{key: k, val: v, charged: charged})
	for c.lru.Len() > c.limit {
		c.drop(c.lru.Back(), true)
	}
	return true
}

// Budget is the metadata budget the cache charges (the image's), for its
// users to charge their other structures to the same account.
func (c *Cache[K, V]) Budget() *formats.Budget { return c.budget }

// Len is the number of values held.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// drop removes e, refunding its charge; evicted says the cache chose to
// drop it (the eviction callback runs), rather than a Put replacing it.
func (c *Cache[K, V]) drop(e *list.Element, evicted bool) {
	en := c.lru.Remove(e).(*entry[K, V])
	delete(c.items, en.key)
	c.budget.Refund(en.charged)
	if evicted && c.evict != nil {
		c.evict(en.key, en.val)
	}
}
