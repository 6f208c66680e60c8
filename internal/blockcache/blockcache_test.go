package blockcache

import (
	"bytes"
	"errors"
	"io"
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

// TestReader: reads across blocks of uneven lengths return the stream's
// bytes and io.EOF at its end; a failed load fails the read and is loaded
// again by the next; read-ahead loads the blocks after the one read, each
// once, and Wait waits for them.
func TestReader(t *testing.T) {
	lengths := []int64{5, 1, 7, 3, 4}
	var stream []byte
	var starts []int64
	for i, n := range lengths {
		starts = append(starts, int64(len(stream)))
		for range n {
			stream = append(stream, byte(i*16+len(stream)))
		}
	}
	var mu sync.Mutex
	loads := map[int]int{}
	failing := -1
	r := &Reader{Size: int64(len(stream)), Count: len(lengths), Ahead: 2}
	r.Cache.Budget = 1 << 20
	r.Find = func(at int64) int {
		i := len(starts) - 1
		for starts[i] > at {
			i--
		}
		return i
	}
	r.Span = func(i int) (int64, int64) { return starts[i], lengths[i] }
	r.Load = func(i int) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		loads[i]++
		if i == failing {
			return nil, errors.New("boom")
		}
		return stream[starts[i] : starts[i]+lengths[i]], nil
	}
	failing = 2
	if _, err := r.ReadAt(make([]byte, 3), 6); err == nil {
		t.Fatal("a read over a failing block succeeded")
	}
	r.Wait()
	mu.Lock()
	failing = -1
	mu.Unlock()
	for off := range int64(len(stream)) {
		for n := range int64(len(stream)) - off + 2 {
			p := make([]byte, n)
			got, err := r.ReadAt(p, off)
			want := min(n, int64(len(stream))-off)
			if int64(got) != want || (want < n) != (err == io.EOF) || (want == n && err != nil) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d, %v", n, off, got, err)
			}
			if !bytes.Equal(p[:got], stream[off:off+want]) {
				t.Fatalf("ReadAt(%d bytes, %d) reads %x, want %x", n, off, p[:got], stream[off:off+want])
			}
		}
	}
	r.Wait()
	for i := range lengths {
		if want := map[bool]int{true: 2, false: 1}[i == 2]; loads[i] != want {
			t.Errorf("block %d loaded %d times, want %d", i, loads[i], want)
		}
	}
}
