package convert

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// yieldingSource gives up the processor before every read, so that the
// workers interleave as much as the scheduler lets them.
type yieldingSource struct{ memImage }

// Prefetch does nothing but yield: the planner stays ahead of the workers
// by prefetchBytes, as it does for an OS file.
func (s *yieldingSource) Prefetch(off, length int64) bool {
	runtime.Gosched()
	return true
}

func (s *yieldingSource) ReadAt(p []byte, off int64) (int, error) {
	runtime.Gosched()
	return s.memImage.ReadAt(p, off)
}

// TestOrderedCopyNeverStalls: with writes committed in offset order, the
// oldest uncommitted task must always get a chunk buffer. A worker that
// took its task before its buffer could be overtaken by another one, whose
// later results, waiting behind it, then held every buffer: the copy
// stopped for good (seen as a hang of raw→qcow2 with reads served from the
// page cache). A guard, not a timing, ends a stalled copy.
func TestOrderedCopyNeverStalls(t *testing.T) {
	src := &yieldingSource{memImage{data: patterned(4 << 20)}}
	for round := range 40 {
		dst := &seqTarget{memImage: memImage{data: make([]byte, len(src.data))}}
		done := make(chan error, 1)
		go func() {
			done <- Copy(context.Background(), dst, src, Options{Workers: 16, ChunkBytes: 4096, TargetIsZero: true})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: the copy stalled", round)
		}
		if dst.err != nil || !bytes.Equal(dst.data, src.data) {
			t.Fatalf("round %d: %v, content equal %v", round, dst.err, bytes.Equal(dst.data, src.data))
		}
	}
}

// prefetchSource records the prefetch hints it is given; its first read
// waits until the hints reach prefetchBytes past it (a guard, not a
// timing, lets it go after 20 seconds), as a cold disk's would. A warm one
// answers that it had nothing to read.
type prefetchSource struct {
	memImage
	warm      bool
	mu        sync.Mutex
	hinted    [][2]int64 // offset, length, in the order given
	ahead     chan struct{}
	unhinted  []int64 // reads outside every hint given before them
	timedOut  bool
	firstRead sync.Once
}

func (s *prefetchSource) Prefetch(off, length int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hinted = append(s.hinted, [2]int64{off, length})
	if off+length >= prefetchBytes && s.ahead != nil {
		close(s.ahead)
		s.ahead = nil
	}
	return !s.warm
}

func (s *prefetchSource) ReadAt(p []byte, off int64) (int, error) {
	s.firstRead.Do(func() {
		s.mu.Lock()
		ahead := s.ahead
		s.mu.Unlock()
		if ahead == nil {
			return
		}
		select {
		case <-ahead:
		case <-time.After(20 * time.Second):
			s.timedOut = true
		}
	})
	s.mu.Lock()
	covered := false
	for _, h := range s.hinted {
		covered = covered || (off >= h[0] && off+int64(len(p)) <= h[0]+h[1])
	}
	if !covered {
		s.unhinted = append(s.unhinted, off)
	}
	s.mu.Unlock()
	return s.memImage.ReadAt(p, off)
}

// TestCopyPrefetchesAhead: every chunk a source that takes prefetch hints
// is read is hinted before it is read, the hints run prefetchBytes ahead
// of the reads (the first read waits for that), and no hint covers a zero
// range, which is never read.
func TestCopyPrefetchesAhead(t *testing.T) {
	const size = prefetchBytes + 16<<20
	const hole = 8 << 20 // [8 MiB, 16 MiB) is zeros
	src := &prefetchSource{ahead: make(chan struct{})}
	src.data = patterned(size)
	clear(src.data[hole : 2*hole])
	src.exts = []formats.Extent{{Offset: 0, Length: hole}, {Offset: hole, Length: hole, Kind: formats.Zero},
		{Offset: 2 * hole, Length: size - 2*hole}}
	for _, ordered := range []bool{false, true} {
		src.hinted, src.unhinted, src.timedOut, src.ahead, src.firstRead = nil, nil, false, make(chan struct{}), sync.Once{}
		var dst formats.Writable = &memImage{data: make([]byte, size)}
		if ordered {
			dst = &seqTarget{memImage: memImage{data: make([]byte, size)}}
		}
		if err := Copy(context.Background(), dst, src, Options{TargetIsZero: true}); err != nil {
			t.Fatal(err)
		}
		if src.timedOut {
			t.Errorf("ordered %v: the first read was not hinted %d bytes ahead", ordered, prefetchBytes)
		}
		if len(src.unhinted) > 0 {
			t.Errorf("ordered %v: reads at %v were not hinted before them", ordered, src.unhinted)
		}
		for _, h := range src.hinted {
			if h[0] < 2*hole && h[0]+h[1] > hole {
				t.Errorf("ordered %v: hint %v covers the zero range", ordered, h)
			}
		}
	}
}

// TestSalvageDoesNotPrefetch: salvaging, a failing disk is read only where
// and as the salvage asks: no hints.
func TestSalvageDoesNotPrefetch(t *testing.T) {
	src := &prefetchSource{}
	src.data = patterned(8 << 20)
	dst := &memImage{data: make([]byte, len(src.data))}
	if err := Copy(context.Background(), dst, src, Options{Salvage: true, TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	if len(src.hinted) != 0 {
		t.Errorf("salvaging, the source was given %d prefetch hints", len(src.hinted))
	}
}

// TestWarmSourceNotHinted: a source whose first hints all find their data
// in memory gets no more of them.
func TestWarmSourceNotHinted(t *testing.T) {
	src := &prefetchSource{warm: true}
	src.data = patterned(32 << 20)
	dst := &memImage{data: make([]byte, len(src.data))}
	if err := Copy(context.Background(), dst, src, Options{TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	if len(src.hinted) != warmHints {
		t.Errorf("a warm source was given %d hints, want %d", len(src.hinted), warmHints)
	}
}
