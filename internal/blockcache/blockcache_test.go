package blockcache

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLoadOnceAndEvict: concurrent readers of one block load it once; the
// budget evicts the least recently used loaded block; a failed load is
// not kept; read-ahead claims nothing without room.
func TestLoadOnceAndEvict(t *testing.T) {
	c := &Cache{Budget: 300}
	var loads atomic.Int32
	get := func(i int) ([]byte, error) {
		e, owner := c.Claim(i, 100, false)
		if owner {
			loads.Add(1)
			c.Publish(i, e, []byte{byte(i)}, nil)
		}
		return e.Wait()
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() { defer wg.Done(); get(1) }()
	}
	wg.Wait()
	if loads.Load() != 1 {
		t.Fatalf("%d loads of one block", loads.Load())
	}
	get(2)
	get(3)
	get(1) // 1 is now the most recent
	get(4) // evicts 2
	before := loads.Load()
	get(1)
	get(3)
	if loads.Load() != before {
		t.Errorf("a recent block was evicted")
	}
	get(2)
	if loads.Load() != before+1 {
		t.Errorf("the oldest block was kept")
	}
	if e, _ := c.Claim(9, 1000, true); e != nil {
		t.Error("read-ahead claimed past the budget")
	}
	e, _ := c.Claim(7, 10, false)
	c.Publish(7, e, nil, errors.New("boom"))
	if _, owner := c.Claim(7, 10, false); !owner {
		t.Error("a failed block stayed cached")
	}
}
