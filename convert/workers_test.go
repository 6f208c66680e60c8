package convert

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate holds every caller until want callers are inside at once, then lets
// all through; it records the most that were ever inside together. A guard
// (not a timing) opens it for good after 20 seconds so that a failing engine
// ends.
type gate struct {
	want     int
	mu       sync.Mutex
	inside   int
	most     int
	open     chan struct{}
	reached  bool
	timedOut bool
}

func newGate(want int) *gate { return &gate{want: want, open: make(chan struct{})} }

func (g *gate) enter() {
	g.mu.Lock()
	g.inside++
	g.most = max(g.most, g.inside)
	if g.inside >= g.want && !g.reached && !g.timedOut {
		g.reached = true
		close(g.open)
	}
	g.mu.Unlock()
	select {
	case <-g.open:
	case <-time.After(20 * time.Second):
		g.mu.Lock()
		if !g.timedOut && !g.reached {
			g.timedOut = true
			close(g.open)
		}
		g.mu.Unlock()
	}
}

func (g *gate) leave() {
	g.mu.Lock()
	g.inside--
	g.mu.Unlock()
}

// gatedSource is an image whose reads wait at a gate, like reads from a slow
// remote store that only pay off with many in flight.
type gatedSource struct {
	memImage
	gate *gate
}

func (s *gatedSource) ReadAt(p []byte, off int64) (int, error) {
	s.gate.enter()
	defer s.gate.leave()
	return s.memImage.ReadAt(p, off)
}

func patterned(size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i/4096 + 1)
	}
	return data
}

// TestWorkersHonoured: an explicit worker count puts that many reads in
// flight at once whatever the CPUs, up to MaxWorkers; the default stays at
// 8 but no more than the CPUs (and at least 2).
func TestWorkersHonoured(t *testing.T) {
	const chunk = 64 << 10
	for _, tc := range []struct {
		requested, want int
	}{
		{0, min(defaultWorkers, max(2, runtime.GOMAXPROCS(0)))},
		{1, 1},
		{16, 16},
		{MaxWorkers, MaxWorkers},
		{1000, MaxWorkers},
	} {
		src := &gatedSource{memImage: memImage{data: patterned(2 * MaxWorkers * chunk)}, gate: newGate(tc.want)}
		dst := &memImage{data: make([]byte, len(src.data))}
		err := Copy(context.Background(), dst, src, Options{Workers: tc.requested, ChunkBytes: chunk, TargetIsZero: true})
		if err != nil {
			t.Fatal(err)
		}
		if !src.gate.reached || src.gate.most != tc.want {
			t.Errorf("Workers %d: at most %d reads in flight, want %d", tc.requested, src.gate.most, tc.want)
		}
		if !bytes.Equal(dst.data, src.data) {
			t.Errorf("Workers %d: content differs", tc.requested)
		}
	}
}

// serialTarget counts writes in flight; it does not say it takes concurrent
// writes, so the engine must never overlap them. Each write yields the
// processor many times, leaving room for an overlapping one.
type serialTarget struct {
	memImage
	inside, most atomic.Int32
}

func (s *serialTarget) WriteAt(p []byte, off int64) (int, error) {
	n := s.inside.Add(1)
	defer s.inside.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	for range 200 {
		runtime.Gosched()
	}
	return s.memImage.WriteAt(p, off)
}

// concurrentTarget says it takes concurrent writes; its writes wait at a
// gate until several are in flight at once.
type concurrentTarget struct {
	memImage
	gate *gate
}

func (c *concurrentTarget) ConcurrentWrites() bool { return true }

func (c *concurrentTarget) WriteAt(p []byte, off int64) (int, error) {
	c.gate.enter()
	defer c.gate.leave()
	return c.memImage.WriteAt(p, off)
}

// TestWriteSerialisation: writes overlap only for a target that says it
// takes them (formats.ConcurrentWriter); every other target gets them one at
// a time.
func TestWriteSerialisation(t *testing.T) {
	const chunk, workers = 64 << 10, 8
	data := patterned(16 * workers * chunk)
	opts := Options{Workers: workers, ChunkBytes: chunk, TargetIsZero: true, OutOfOrder: true}

	serial := &serialTarget{memImage: memImage{data: make([]byte, len(data))}}
	if err := Copy(context.Background(), serial, &memImage{data: data}, opts); err != nil {
		t.Fatal(err)
	}
	if got := serial.most.Load(); got != 1 {
		t.Errorf("target without ConcurrentWrites: %d writes in flight at once, want 1", got)
	}
	if !bytes.Equal(serial.data, data) {
		t.Error("serial target: content differs")
	}

	conc := &concurrentTarget{memImage: memImage{data: make([]byte, len(data))}, gate: newGate(workers)}
	if err := Copy(context.Background(), conc, &memImage{data: data}, opts); err != nil {
		t.Fatal(err)
	}
	if !conc.gate.reached {
		t.Errorf("ConcurrentWriter target: at most %d writes in flight, want %d", conc.gate.most, workers)
	}
	if !bytes.Equal(conc.data, data) {
		t.Error("concurrent target: content differs")
	}
}
