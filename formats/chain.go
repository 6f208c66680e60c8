package formats

import (
	"fmt"
	"io"
)

// ChainExtents reports the status of [off, off+length) through img's backing
// chain: a range Unallocated in one layer is asked of the layer below, with
// Depth counting layers. Ranges no layer allocates stay Unallocated (they
// read as zeros) with the depth of the bottom layer reached; ranges past the
// end of a shorter backing image read as zeros and are reported Unallocated.
func ChainExtents(img Image, off, length int64) ([]Extent, error) {
	return chainExtents(img, off, length, 0)
}

func chainExtents(img Image, off, length int64, depth int) ([]Extent, error) {
	exts, err := img.Extents(off, length)
	if err != nil {
		return nil, err
	}
	var backing Image
	if b, ok := img.(Backer); ok {
		backing = b.Backing()
	}
	out := make([]Extent, 0, len(exts))
	for _, e := range exts {
		e.Depth = depth
		if e.Kind != Unallocated || backing == nil || e.Offset >= backing.Size() {
			out = AppendExtent(out, e)
			continue
		}
		below := min(e.Length, backing.Size()-e.Offset)
		sub, err := chainExtents(backing, e.Offset, below, depth+1)
		if err != nil {
			return nil, err
		}
		for _, s := range sub {
			out = AppendExtent(out, s)
		}
		if below < e.Length {
			out = AppendExtent(out, Extent{Offset: e.Offset + below, Length: e.Length - below,
				Kind: Unallocated, HostOffset: -1, Depth: depth})
		}
	}
	return out, nil
}

// AppendExtent appends e to out, merging it into the last extent when
// Mergeable. Drivers use it to keep their answers small.
func AppendExtent(out []Extent, e Extent) []Extent {
	if n := len(out); n > 0 && Mergeable(out[n-1], e) {
		out[n-1].Length += e.Length
		return out
	}
	return append(out, e)
}

// Mergeable reports whether b continues a: contiguous, with equal status,
// layer, compression and file, and contiguous host offsets (or none).
func Mergeable(a, b Extent) bool {
	return a.End() == b.Offset && a.Kind == b.Kind && a.Depth == b.Depth &&
		a.Compressed == b.Compressed && a.HostFile == b.HostFile &&
		((a.HostOffset < 0 && b.HostOffset < 0) || (a.HostOffset >= 0 && a.HostOffset+a.Length == b.HostOffset))
}

// MergeExtents merges adjacent extents of equal status; drivers may use it
// to tidy their answer.
func MergeExtents(exts []Extent) []Extent {
	var out []Extent
	for _, e := range exts {
		out = AppendExtent(out, e)
	}
	return out
}

// ReadBacking fills p with the content at off of backing (which may be nil or
// shorter than the range: the rest reads as zeros). Drivers use it for
// Unallocated ranges.
func ReadBacking(backing Image, p []byte, off int64) error {
	n := 0
	if backing != nil && off < backing.Size() {
		n = int(min(int64(len(p)), backing.Size()-off))
		if _, err := backing.ReadAt(p[:n], off); err != nil && err != io.EOF {
			return err
		}
	}
	clear(p[n:])
	return nil
}

// ClipRead bounds a ReadAt of len(p) bytes at off on an image of size bytes:
// it returns how many bytes to read and the error to return with them
// (io.EOF when the read is cut short, an error for a negative offset).
func ClipRead(p []byte, off, size int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	if rest := size - off; int64(len(p)) > rest {
		return int(rest), io.EOF
	}
	return len(p), nil
}

// CheckWrite validates a write of n bytes at off on an image of size bytes.
func CheckWrite(name string, n int, off, size int64) error {
	if off < 0 || off > size || int64(n) > size-off {
		return fmt.Errorf("%s: write of %d bytes at offset %d is outside the %d-byte disk", name, n, off, size)
	}
	return nil
}

// DataBlocks counts the blocks of blockBytes that hold data anywhere in
// img's chain (what a new image of that block size must allocate). Drivers'
// Measure uses it.
func DataBlocks(img Image, blockBytes int64) (int64, error) {
	var count int64
	next := int64(0) // first block not yet counted
	size := img.Size()
	for start := int64(0); start < size; start += 1 << 30 {
		exts, err := ChainExtents(img, start, min(size-start, 1<<30))
		if err != nil {
			return 0, err
		}
		for _, e := range exts {
			if e.Kind != Data {
				continue
			}
			first, last := max(e.Offset/blockBytes, next), (e.End()-1)/blockBytes
			if last >= first {
				count += last - first + 1
				next = last + 1
			}
		}
	}
	return count, nil
}
