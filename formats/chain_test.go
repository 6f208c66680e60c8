package formats

import (
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// layer is an image with fixed extents and an optional backing image.
type layer struct {
	size    int64
	exts    []Extent
	backing Image
}

func (l *layer) ReadAt(p []byte, off int64) (int, error) { return 0, io.EOF }
func (l *layer) Size() int64                             { return l.size }
func (l *layer) Format() string                          { return "test" }
func (l *layer) Close() error                            { return nil }
func (l *layer) Extents(off, length int64) ([]Extent, error) {
	var out []Extent
	for _, e := range l.exts {
		lo, hi := max(off, e.Offset), min(off+length, e.End())
		if lo < hi {
			e.HostOffset = -1
			e.Offset, e.Length = lo, hi-lo
			out = append(out, e)
		}
	}
	return out, nil
}
func (l *layer) Backing() Image        { return l.backing }
func (l *layer) BackingName() string   { return "base" }
func (l *layer) BackingPath() string   { return "base" }
func (l *layer) BackingFormat() string { return "test" }

// chain: a 10-unit top over an 8-unit base (unit 100 bytes).
func chain() Image {
	base := &layer{size: 800, exts: []Extent{
		{Offset: 0, Length: 300, Kind: Data}, {Offset: 300, Length: 500, Kind: Unallocated}}}
	return &layer{size: 1000, backing: base, exts: []Extent{
		{Offset: 0, Length: 200, Kind: Unallocated}, {Offset: 200, Length: 200, Kind: Zero},
		{Offset: 400, Length: 100, Kind: Data}, {Offset: 500, Length: 500, Kind: Unallocated}}}
}

func TestChainExtents(t *testing.T) {
	got, err := ChainExtents(chain(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := []Extent{
		{Offset: 0, Length: 200, Kind: Data, HostOffset: -1, Depth: 1},
		{Offset: 200, Length: 200, Kind: Zero, HostOffset: -1},
		{Offset: 400, Length: 100, Kind: Data, HostOffset: -1},
		{Offset: 500, Length: 300, Kind: Unallocated, HostOffset: -1, Depth: 1},
		{Offset: 800, Length: 200, Kind: Unallocated, HostOffset: -1}, // past the shorter base
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ChainExtents (-want +got):\n%s", d)
	}
}
