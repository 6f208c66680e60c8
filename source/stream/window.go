package stream

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vdiskio/vdisk/internal/zero"
)

// pageBytes is the unit the window holds decoded bytes in.
const pageBytes = 1 << 20

// DefaultWindowBytes bounds the decoded bytes held ahead of the lowest
// byte not yet read (16 pages).
const DefaultWindowBytes = 16 << 20

// errClosed: the image was closed while a read or the producer waited.
var errClosed = errors.New("stream closed")

// page is one pageBytes piece of the decoded stream.
type page struct {
	data     []byte // nil while every byte written is zero
	consumed int    // bytes read so far
	done     bool   // every byte read: data released
}

// window holds the decoded stream between the lowest page not yet read
// completely (base) and what the producer has written (produced). The
// producer blocks while the window is full; readers block until the
// bytes they want are produced.
type window struct {
	name     string
	maxPages int

	mu       sync.Mutex
	cond     *sync.Cond
	base     int64   // index of held[0]
	held     []*page // pages base, base+1, ...
	produced int64   // bytes written by the producer, contiguous from 0
	end      int64   // the stream's size once it ended, else -1
	err      error   // the producer's failure
	closed   bool
	free     [][]byte // released page buffers, reused
	peak     int      // the most pages held at once (tests check the bound)
}

func newWindow(name string, windowBytes int64) *window {
	w := &window{name: name, maxPages: int(max(2, windowBytes/pageBytes)), end: -1}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// pageFor returns the page holding byte off for the producer, waiting
// while the window is full; nil once the window is closed.
func (w *window) pageFor(off int64) *page {
	idx := off / pageBytes
	for !w.closed && idx-w.base >= int64(w.maxPages) {
		w.cond.Wait()
	}
	if w.closed {
		return nil
	}
	for int64(len(w.held)) <= idx-w.base {
		w.held = append(w.held, &page{})
	}
	w.peak = max(w.peak, len(w.held))
	return w.held[idx-w.base]
}

// write appends b to the stream.
func (w *window) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(b) > 0 {
		p := w.pageFor(w.produced)
		if p == nil {
			return errClosed
		}
		at := int(w.produced % pageBytes)
		n := min(len(b), pageBytes-at)
		if p.data == nil && !zero.Is(b[:n]) {
			p.data = w.buffer()
		}
		if p.data != nil {
			copy(p.data[at:], b[:n])
		}
		b = b[n:]
		w.produced += int64(n)
		w.cond.Broadcast()
	}
	return nil
}

// zeros appends n zero bytes to the stream.
func (w *window) zeros(n int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for n > 0 {
		if w.pageFor(w.produced) == nil {
			return errClosed
		}
		step := min(n, pageBytes-w.produced%pageBytes)
		w.produced += step // a fresh buffer is zeros, a nil one reads so
		n -= step
		w.cond.Broadcast()
	}
	return nil
}

// finish ends the stream: at its produced size, or with err.
func (w *window) finish(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
	} else {
		w.end = w.produced
	}
	w.cond.Broadcast()
}

func (w *window) buffer() []byte {
	if k := len(w.free); k > 0 {
		b := w.free[k-1]
		w.free = w.free[:k-1]
		clear(b)
		return b
	}
	return make([]byte, pageBytes)
}

// read copies the stream's bytes at off into p (they must be produced
// or the stream ended), waiting for the producer. Bytes past the end of
// the stream read as zeros.
func (w *window) read(p []byte, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(p) > 0 {
		idx := off / pageBytes
		at := int(off % pageBytes)
		n := min(len(p), pageBytes-at)
		for !w.closed && w.err == nil && w.end < 0 && w.produced < off+int64(n) {
			w.cond.Wait()
		}
		switch {
		case w.closed:
			return errClosed
		case w.end >= 0 && off >= w.end:
			clear(p) // past the stream's end: the provisional size's zeros
			return nil
		case w.err != nil && w.produced < off+int64(n):
			return w.err
		case idx < w.base || w.held[idx-w.base].done:
			return fmt.Errorf("%s: read at offset %d: the stream has already passed it (a stream is read once, in order)", w.name, off)
		}
		if w.end >= 0 {
			n = int(min(int64(n), w.end-off))
		}
		pg := w.held[idx-w.base]
		if pg.data != nil {
			copy(p[:n], pg.data[at:])
		} else {
			clear(p[:n])
		}
		w.consume(pg, idx, n)
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// consume counts n bytes of page idx read, releasing it when all are and
// sliding the window past released pages.
func (w *window) consume(pg *page, idx int64, n int) {
	pg.consumed += n
	length := int64(pageBytes)
	if w.end >= 0 {
		length = min(length, w.end-idx*pageBytes)
	}
	if int64(pg.consumed) < length {
		return
	}
	pg.done = true
	if pg.data != nil {
		w.free = append(w.free, pg.data)
		pg.data = nil
	}
	for len(w.held) > 0 && w.held[0].done {
		w.held[0] = nil
		w.held = w.held[1:]
		w.base++
	}
	if len(w.free) > 2 {
		w.free = w.free[:2] // keep a couple of buffers for reuse, let the rest go
	}
	w.cond.Broadcast()
}

// ended reports the stream's size once it has ended.
func (w *window) ended() (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.end, w.end >= 0
}

func (w *window) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.held, w.free = nil, nil
	w.cond.Broadcast()
}
