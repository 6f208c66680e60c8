package blockcache

import (
	"io"
	"sync"
)

// Reader reads a stream cut into blocks, each loaded whole and kept in
// Cache: a read copies from every block it spans, each loaded once however
// many readers want it, and then starts loading up to Ahead blocks past
// the one it read, in the background, while the cache has room (dropping
// blocks behind the reader to make it).
type Reader struct {
	Cache Cache
	Size  int64 // the stream's bytes
	Count int   // its blocks
	Ahead int   // blocks loaded ahead of a read
	// Find returns the block holding byte at (0 <= at < Size).
	Find func(at int64) int
	// Span returns where block i lies in the stream: its first byte and
	// its length.
	Span func(i int) (start, bytes int64)
	// Load returns block i's bytes, Span's length of them (read-ahead
	// calls it in a goroutine of its own).
	Load func(i int) ([]byte, error)

	wg sync.WaitGroup // read-ahead loads
}

// ReadAt reads len(p) bytes at off (at least 0), io.EOF past Size; safe
// for concurrent use.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= r.Size {
			return n, io.EOF
		}
		i := r.Find(at)
		data, err := r.Block(i)
		if err != nil {
			return n, err
		}
		r.ReadAhead(i)
		start, _ := r.Span(i)
		n += copy(p[n:], data[at-start:])
	}
	return n, nil
}

// Block returns block i, from the cache or loaded (a failed load is not
// kept: the next read loads it again).
func (r *Reader) Block(i int) ([]byte, error) {
	_, bytes := r.Span(i)
	e, owner := r.Cache.Claim(i, bytes, false)
	if owner {
		data, err := r.Load(i)
		r.Cache.Publish(i, e, data, err)
	}
	return e.Wait()
}

// ReadAhead starts loading the Ahead blocks after block i that no one has
// loaded, while the cache has room for them.
func (r *Reader) ReadAhead(i int) {
	for j := i + 1; j <= i+r.Ahead && j < r.Count; j++ {
		_, bytes := r.Span(j)
		e, owner := r.Cache.ClaimAhead(j, bytes, i)
		if e == nil {
			return // no room
		}
		if owner {
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				data, err := r.Load(j)
				r.Cache.Publish(j, e, data, err)
			}()
		}
	}
}

// Wait waits for the read-ahead loads started so far.
func (r *Reader) Wait() { r.wg.Wait() }
