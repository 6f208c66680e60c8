package imageio

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// layer is an image with fixed extents and an optional backing image.
type layer struct {
	size    int64
	exts    []formats.Extent
	backing formats.Image
}

func (l *layer) ReadAt(p []byte, off int64) (int, error) { return 0, io.EOF }
func (l *layer) Size() int64                             { return l.size }
func (l *layer) Format() string                          { return "test" }
func (l *layer) Close() error                            { return nil }
func (l *layer) Extents(off, length int64) ([]formats.Extent, error) {
	var out []formats.Extent
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
func (l *layer) Backing() formats.Image { return l.backing }
func (l *layer) BackingName() string    { return "base" }
func (l *layer) BackingPath() string    { return "base" }
func (l *layer) BackingFormat() string  { return "test" }

// chain: a 10-unit top over an 8-unit base (unit 100 bytes).
func chain() formats.Image {
	base := &layer{size: 800, exts: []formats.Extent{
		{Offset: 0, Length: 300, Kind: formats.Data}, {Offset: 300, Length: 500, Kind: formats.Unallocated}}}
	return &layer{size: 1000, backing: base, exts: []formats.Extent{
		{Offset: 0, Length: 200, Kind: formats.Unallocated}, {Offset: 200, Length: 200, Kind: formats.Zero},
		{Offset: 400, Length: 100, Kind: formats.Data}, {Offset: 500, Length: 500, Kind: formats.Unallocated}}}
}

func TestDataBlocks(t *testing.T) {
	for _, tc := range []struct{ block, want int64 }{
		{100, 3},  // units 0, 1 (base) and 4 (top)
		{200, 2},  // blocks 0 and 2
		{512, 1},  // all in block 0
		{1000, 1}, // one block
		{50, 6},
	} {
		got, err := DataBlocks(context.Background(), chain(), tc.block)
		if err != nil || got != tc.want {
			t.Errorf("DataBlocks(%d) = %d, %v; want %d", tc.block, got, err, tc.want)
		}
	}
}

// TestReadClipped: a read is cut at the size with io.EOF, past the size
// reads nothing, a negative offset and a failed read return no bytes.
func TestReadClipped(t *testing.T) {
	const size = 10
	var calls [][2]int64
	read := func(p []byte, off int64) error {
		calls = append(calls, [2]int64{off, int64(len(p))})
		for i := range p {
			p[i] = byte(off) + byte(i)
		}
		if off == 7 {
			return errors.New("boom")
		}
		return nil
	}
	for _, c := range []struct {
		off, n, want int64
		eof, fails   bool
	}{
		{0, 4, 4, false, false},
		{6, 4, 4, false, false},
		{8, 4, 2, true, false},
		{10, 4, 0, true, false},
		{10, 0, 0, false, false},
		{-1, 4, 0, false, true},
		{7, 2, 0, false, true},
	} {
		calls = nil
		p := make([]byte, c.n)
		got, err := ReadClipped(p, c.off, size, read)
		switch {
		case int64(got) != c.want:
			t.Errorf("ReadClipped(%d bytes at %d) = %d bytes, want %d", c.n, c.off, got, c.want)
		case c.fails != (err != nil && err != io.EOF), c.eof != (err == io.EOF):
			t.Errorf("ReadClipped(%d bytes at %d): %v", c.n, c.off, err)
		case c.want > 0 && (len(calls) != 1 || calls[0] != [2]int64{c.off, c.want}):
			t.Errorf("ReadClipped(%d bytes at %d) read %v", c.n, c.off, calls)
		case c.want > 0 && p[c.want-1] != byte(c.off)+byte(c.want-1):
			t.Errorf("ReadClipped(%d bytes at %d) returned other bytes", c.n, c.off)
		}
	}
}
