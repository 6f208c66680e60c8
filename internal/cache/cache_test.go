package cache

import (
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

func bytesOf(b []byte) int64 { return int64(len(b)) }

// TestLRUBound: beyond the limit, the least recently used value goes (and
// the eviction callback sees it); Get refreshes a value.
func TestLRUBound(t *testing.T) {
	c := New[int, []byte](3, nil, bytesOf)
	var evicted []int
	c.OnEvict(func(k int, _ []byte) { evicted = append(evicted, k) })
	for k := range 3 {
		c.Put(k, make([]byte, 8), false)
	}
	c.Get(0) // 1 is now the oldest
	c.Put(3, make([]byte, 8), false)
	if _, ok := c.Get(1); ok || len(evicted) != 1 || evicted[0] != 1 {
		t.Errorf("after a fourth value: 1 kept %v, evicted %v; want 1 evicted", ok, evicted)
	}
	for _, k := range []int{0, 2, 3} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("value %d was dropped", k)
		}
	}
	c.Put(3, make([]byte, 8), false) // replacing is no eviction
	if c.Len() != 3 || len(evicted) != 1 {
		t.Errorf("replacing: %d values, evicted %v", c.Len(), evicted)
	}
}

// TestBudget: values are charged to the budget and refunded when dropped;
// when it is spent the cache drops its own first, and a value that cannot
// fit is not kept unless it must be.
func TestBudget(t *testing.T) {
	b := formats.NewBudget(100)
	c := New[int, []byte](10, b, bytesOf)
	c.Put(1, make([]byte, 40), false)
	c.Put(2, make([]byte, 40), false)
	if b.Used() != 80 {
		t.Fatalf("budget used %d, want 80", b.Used())
	}
	if !c.Put(3, make([]byte, 40), false) {
		t.Fatal("a value that fits once the oldest goes was not kept")
	}
	if _, ok := c.Get(1); ok || b.Used() != 80 {
		t.Errorf("oldest kept %v, budget used %d; want it dropped, 80", ok, b.Used())
	}
	if c.Put(4, make([]byte, 200), false) || c.Len() != 0 || b.Used() != 0 {
		t.Errorf("a value larger than the budget: kept, or %d values and %d bytes left", c.Len(), b.Used())
	}
	if !c.Put(5, make([]byte, 200), true) {
		t.Fatal("a value that must be kept was not")
	}
	if _, ok := c.Get(5); !ok {
		t.Error("the must-keep value is not there")
	}
	c.Put(6, make([]byte, 10), false) // drops 5 (uncharged) to make room
	if b.Used() != 10 {
		t.Errorf("budget used %d after dropping an uncharged value, want 10", b.Used())
	}
}
