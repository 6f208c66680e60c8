package vmdk

import (
	"bytes"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// gate holds the first call that passes it until released; it says when
// that call has arrived. Later calls pass straight through.
type gate struct {
	once     sync.Once
	arrived  chan struct{}
	released chan struct{}
}

func newGate() *gate { return &gate{arrived: make(chan struct{}), released: make(chan struct{})} }

func (g *gate) pass() {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.arrived)
		<-g.released
	}
}

// gatedParent is a parent image whose first read waits at a gate.
type gatedParent struct {
	data []byte
	gate *gate
}

func (p *gatedParent) ReadAt(b []byte, off int64) (int, error) {
	p.gate.pass()
	return copy(b, p.data[off:]), nil
}
func (p *gatedParent) Size() int64    { return int64(len(p.data)) }
func (p *gatedParent) Format() string { return "test" }
func (p *gatedParent) Close() error   { return nil }
func (p *gatedParent) Extents(off, length int64) ([]formats.Extent, error) {
	return imageio.AllData(off, length), nil
}

// gatedFile is a child extent file whose first write of a whole grain waits
// at a gate.
type gatedFile struct {
	*fileio.Mem
	gate *gate
}

func (f *gatedFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == defaultGrain*sectorSize {
		f.gate.pass()
	}
	return f.Mem.WriteAt(p, off)
}

func parentBytes(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i/sectorSize) | 0x80 // never zero
	}
	return b
}

// TestDeltaGrainPublishedAfterData: while a delta disk's writer fills a new
// grain (the parent's bytes copied in around a partial write, or a whole
// grain written), a concurrent read of a sector of that grain the write does
// not touch returns the parent's bytes, never the zeros of a grain whose
// table entry is published before its data is in place.
func TestDeltaGrainPublishedAfterData(t *testing.T) {
	const grain = defaultGrain * sectorSize
	const capacity = 8 * grain
	for _, tc := range []struct {
		name   string
		off    int64 // the write
		length int
		gateOn string // which call the write blocks in
	}{
		{"partial grain, parent being read", grain + 1000, 3000, "parent"},
		{"whole grain, data being written", 2 * grain, grain, "file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			free := newGate()
			close(free.released) // a gate nobody holds
			parent := &gatedParent{data: parentBytes(capacity), gate: free}
			var f formats.File = fileio.NewMem("child.vmdk", nil)
			if tc.gateOn == "parent" {
				parent.gate = g
			} else {
				f = &gatedFile{Mem: fileio.NewMem("child.vmdk", nil), gate: g}
			}
			sp, err := newSparseWriter(f, capacity, false, nil, formats.Limits{}, false)
			if err != nil {
				t.Fatal(err)
			}
			sp.parent = parent

			data := bytes.Repeat([]byte{0x3c}, tc.length)
			done := make(chan error, 1)
			go func() { done <- sp.writeAt(data, tc.off) }()
			<-g.arrived // the write is inside the grain's allocation

			// A sector of the same grain the write does not touch.
			probe := tc.off - tc.off%grain + grain - sectorSize
			if tc.length == grain {
				probe = tc.off + sectorSize
			}
			got := make([]byte, sectorSize)
			if err := sp.readAt(got, probe); err != nil {
				t.Fatal(err)
			}
			old, updated := parent.data[probe:probe+sectorSize], bytes.Repeat([]byte{0x3c}, sectorSize)
			if !bytes.Equal(got, old) && !(tc.length == grain && bytes.Equal(got, updated)) {
				t.Errorf("concurrent read of sector %d during the grain's allocation: %x..., want the parent's %x...", probe/sectorSize, got[:8], old[:8])
			}

			close(g.released)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			want := bytes.Clone(parent.data)
			copy(want[tc.off:], data)
			all := make([]byte, capacity)
			if err := sp.readAt(all, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all, want) {
				t.Error("content after the write differs")
			}
		})
	}
}
