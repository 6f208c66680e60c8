package chain

import (
	"bytes"
	"os"
	"sync"
	"sync/atomic"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// DefaultGrainBytes is the granularity a Difference compares at when the
// caller gives none: qemu's default cluster size.
const DefaultGrainBytes = 64 << 10

// Difference is a read-only view of an image (src) against a base image:
// it reads as src, and its Extents say, grain by grain, whether src differs
// from base there. A grain that reads the same in both is Unallocated (an
// overlay of base may leave it to base), one that reads as zeros in src but
// not in base is Zero, any other differing grain is Data. Copying the view
// with convert's TopLayerOnly into an overlay of base (convert -B) writes
// exactly the grains that differ.
//
// Ranges that read as zeros in both without reading data (unallocated or
// zero through each chain) are not read. When base is a layer of src's own
// backing chain (found by file identity through BackingPath), ranges src
// reads from that layer or below are not read either: they are base.
type Difference struct {
	src, base  formats.Image
	grainBytes int64
	baseDepth  int  // layer of src's chain that is base's file; 0: none
	keepOwn    bool // src's own allocations are reported as they are

	mu           sync.Mutex // the buffers
	bufSrc, bufB []byte

	readBytes atomic.Int64 // bytes read from src and base to compare
}

// NewDifference makes the view of src against base (opened at basePath, ""
// when unknown) comparing in grains of grainBytes (DefaultGrainBytes when
// ≤ 0; a power of two). The view does not own src or base.
func NewDifference(src, base formats.Image, basePath string, grainBytes int64) *Difference {
	if grainBytes <= 0 || grainBytes&(grainBytes-1) != 0 {
		grainBytes = DefaultGrainBytes
	}
	return &Difference{src: src, base: base, grainBytes: grainBytes, baseDepth: layerOf(src, basePath)}
}

// layerOf returns the depth (1 for the direct backing) of the layer of
// img's chain that is the file at path, or 0.
func layerOf(img formats.Image, path string) int {
	if path == "" {
		return 0
	}
	want, err := os.Stat(path)
	if err != nil {
		return 0
	}
	for depth := 1; depth <= formats.DefaultMaxChainDepth; depth++ {
		b, ok := img.(formats.Backer)
		if !ok || b.Backing() == nil {
			return 0
		}
		if fi, err := os.Stat(b.BackingPath()); err == nil && os.SameFile(fi, want) {
			return depth
		}
		img = b.Backing()
	}
	return 0
}

// KeepOwnLayer makes the view report what src's own layer allocates as
// allocated (Data or Zero), compared or not, as a safe rebase keeps the
// top's clusters; only the rest is compared with base. It returns d.
func (d *Difference) KeepOwnLayer() *Difference {
	d.keepOwn = true
	return d
}

// ReadBytes is how many bytes the view has read (from src and base
// together) to compare them.
func (d *Difference) ReadBytes() int64 { return d.readBytes.Load() }

func (d *Difference) ReadAt(p []byte, off int64) (int, error) { return d.src.ReadAt(p, off) }
func (d *Difference) Size() int64                             { return d.src.Size() }
func (d *Difference) Format() string                          { return d.src.Format() }

// Close does nothing: the view owns neither image.
func (d *Difference) Close() error { return nil }

// Extents reports [off, off+length) grain by grain as described on
// Difference, in chunks of chunkBytes.
func (d *Difference) Extents(off, length int64) ([]formats.Extent, error) {
	var out []formats.Extent
	end := min(off+length, d.src.Size())
	for pos := off; pos < end; {
		next := min(end, (pos/chunkBytes+1)*chunkBytes)
		exts, err := d.chunkExtents(pos, next-pos)
		if err != nil {
			return nil, err
		}
		for _, e := range exts {
			out = appendExtent(out, e)
		}
		pos = next
	}
	return out, nil
}

// chunkExtents does one chunk: src's own allocations when they are kept,
// then the ranges known to be the same without reading (zeros in both, or
// src reading base's own layer), then the rest compared grain by grain.
func (d *Difference) chunkExtents(off, n int64) ([]formats.Extent, error) {
	if !d.keepOwn {
		return d.rangeExtents(off, n)
	}
	own, err := d.src.Extents(off, n)
	if err != nil {
		return nil, err
	}
	var out []formats.Extent
	for _, e := range own {
		if e.Kind != formats.Unallocated {
			out = append(out, formats.Extent{Offset: e.Offset, Length: e.Length, Kind: e.Kind, HostOffset: -1})
			continue
		}
		sub, err := d.rangeExtents(e.Offset, e.Length)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// rangeExtents classifies [off, off+n), within one chunk.
func (d *Difference) rangeExtents(off, n int64) ([]formats.Extent, error) {
	same := func(o, l int64) formats.Extent {
		return formats.Extent{Offset: o, Length: l, Kind: formats.Unallocated, HostOffset: -1}
	}
	zs, err := readsZero(d.src, off, n)
	if err != nil {
		return nil, err
	}
	zb, err := readsZero(d.base, off, n)
	if err != nil {
		return nil, err
	}
	if zs && zb {
		return []formats.Extent{same(off, n)}, nil
	}
	if d.baseDepth == 0 {
		return d.compare(off, n)
	}
	cexts, err := formats.ChainExtents(d.src, off, n)
	if err != nil {
		return nil, err
	}
	var out []formats.Extent
	for _, e := range cexts {
		if e.Depth >= d.baseDepth {
			out = append(out, same(e.Offset, e.Length))
			continue
		}
		// Compare whole grains: widen to the grid, clipped to the chunk.
		lo := max(off, e.Offset/d.grainBytes*d.grainBytes)
		hi := min(off+n, (e.End()+d.grainBytes-1)/d.grainBytes*d.grainBytes)
		if k := len(out); k > 0 && out[k-1].End() > lo {
			lo = out[k-1].End() // already covered by the previous compare
		}
		if lo >= hi {
			continue
		}
		sub, err := d.compare(lo, hi-lo)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return clip(out, off, off+n), nil
}

// clip trims extents to [lo, hi), dropping overlaps with earlier extents
// (a widened compare may cover the start of the next chain extent).
func clip(exts []formats.Extent, lo, hi int64) []formats.Extent {
	var out []formats.Extent
	pos := lo
	for _, e := range exts {
		s, t := max(e.Offset, pos), min(e.End(), hi)
		if s >= t {
			continue
		}
		e.Offset, e.Length = s, t-s
		out = appendExtent(out, e)
		pos = t
	}
	return out
}

// compare reads [off, off+n) of src and base and classifies each grain.
func (d *Difference) compare(off, n int64) ([]formats.Extent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bufSrc == nil {
		d.bufSrc, d.bufB = make([]byte, chunkBytes), make([]byte, chunkBytes)
	}
	bs, bb := d.bufSrc[:n], d.bufB[:n]
	if err := readInto(d.src, bs, off); err != nil {
		return nil, err
	}
	if err := readInto(d.base, bb, off); err != nil {
		return nil, err
	}
	d.readBytes.Add(2 * n)
	var out []formats.Extent
	for i := int64(0); i < n; {
		end := min(n, (off+i)/d.grainBytes*d.grainBytes+d.grainBytes-off)
		kind := formats.Unallocated
		if !bytes.Equal(bs[i:end], bb[i:end]) {
			kind = formats.Data
			if zero.Is(bs[i:end]) {
				kind = formats.Zero
			}
		}
		out = appendExtent(out, formats.Extent{Offset: off + i, Length: end - i, Kind: kind, HostOffset: -1})
		i = end
	}
	return out, nil
}

// appendExtent appends e to out, merging it into the last extent when it
// continues it.
func appendExtent(out []formats.Extent, e formats.Extent) []formats.Extent {
	if k := len(out); k > 0 && out[k-1].Continues(e) {
		out[k-1].Length += e.Length
		return out
	}
	return append(out, e)
}
