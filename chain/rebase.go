package chain

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/compare"
	"github.com/vdiskio/vdisk/formats"
)

// chunkBytes is how much of each chain one comparison step reads.
const chunkBytes = 2 << 20

// RebaseOptions are the choices of qemu-img rebase.
type RebaseOptions struct {
	// Name is the backing reference stored in the top ("" flattens: the top
	// becomes a standalone image). Format is the stored backing format.
	Name, Format string
	// BackingPath is where the new backing file is, when known: ranges the
	// old chain reads from that same file are not compared.
	BackingPath string
	// Unsafe changes only the link (-u): no data is read or written.
	Unsafe bool
	// Progress, when set, is called with bytes examined and the total.
	Progress func(done, total int64)
}

// RebaseStats counts what a safe rebase did.
type RebaseStats struct {
	ComparedBytes int64 // bytes read from both chains and compared
	WrittenBytes  int64 // bytes written into the top
}

// Rebase points top at newBacking (nil with opts.Name "" flattens). In
// safe mode, for every cluster top does not allocate, the content of top's
// current backing chain is compared with newBacking's and written into top
// where they differ, so top reads the same afterwards. The link is
// rewritten last, after the data is flushed. On success top owns
// newBacking; on error the caller still does.
func Rebase(ctx context.Context, top formats.Writable, newBacking formats.Image, opts RebaseOptions) (RebaseStats, error) {
	var st RebaseStats
	setter, ok := top.(formats.BackingSetter)
	if !ok {
		return st, formats.Unsupportedf(imageName(top), "rebase of a %s image (changing its backing link)", top.Format())
	}
	if !opts.Unsafe {
		var old formats.Image
		if b, ok := top.(formats.Backer); ok {
			old = b.Backing()
			if old == nil && b.BackingName() != "" {
				return st, fmt.Errorf("%s: safe rebase needs the old backing file %q open: %w", imageName(top), b.BackingName(), formats.ErrInvalidOption)
			}
		}
		var err error
		if st, err = copyDifferences(ctx, top, old, newBacking, opts.BackingPath, opts.Progress); err != nil {
			return st, err
		}
	}
	if err := top.Flush(); err != nil {
		return st, err
	}
	return st, setter.SetBacking(opts.Name, opts.Format, newBacking)
}

// copyDifferences writes into top the ranges top does not allocate where
// old and new differ, at top's cluster granularity: a chain.Difference of
// old against new says which clusters differ (reading neither where both
// read as zeros, nor where old reads new's own file, newPath, through its
// chain, as qemu-img rebase skips what the old chain does not allocate
// above the new backing), and those are copied from old.
func copyDifferences(ctx context.Context, top formats.Writable, old, new formats.Image, newPath string, progress func(int64, int64)) (RebaseStats, error) {
	var st RebaseStats
	size := top.Size()
	exts, err := top.Extents(0, size)
	if err != nil {
		return st, err
	}
	cs := clusterSize(top)
	if old == nil {
		old = zeroImage(size)
	} else if old.Size() < size {
		old = padded{old, size}
	}
	view := NewDifference(old, new, newPath, cs)
	buf := make([]byte, chunkBytes)
	for _, e := range exts {
		if e.Kind != formats.Unallocated {
			continue
		}
		for off := e.Offset; off < e.End(); off += chunkBytes {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			n := min(chunkBytes, e.End()-off)
			if progress != nil {
				progress(off, size)
			}
			before := view.ReadBytes()
			diff, err := view.Extents(off, n)
			if err != nil {
				return st, err
			}
			st.ComparedBytes += (view.ReadBytes() - before) / 2
			w, err := writeDiffering(top, old, new, diff, buf)
			st.WrittenBytes += w
			if err != nil {
				return st, err
			}
		}
	}
	if progress != nil {
		progress(size, size)
	}
	return st, nil
}

// writeDiffering copies from old into top the extents of diff that are
// not Unallocated (they differ from new), in chunks of buf, cut on top's
// clusters by the view's grain.
func writeDiffering(top formats.Writable, old, new formats.Image, diff []formats.Extent, buf []byte) (int64, error) {
	var written int64
	for _, d := range diff {
		if d.Kind == formats.Unallocated {
			continue
		}
		for off := d.Offset; off < d.End(); {
			n := min(int64(len(buf)), d.End()-off)
			if d.Kind == formats.Zero {
				clear(buf[:n]) // zeros as data, as qemu-img rebase writes them
			} else if err := readInto(old, buf[:n], off); err != nil {
				return written, err
			}
			if _, err := top.WriteAt(buf[:n], off); err != nil {
				return written, err
			}
			written += n
			off += n
		}
	}
	return written, nil
}

// zeroImage is an image of n bytes of zeros (no backing).
type zeroImage int64

func (z zeroImage) ReadAt(p []byte, off int64) (int, error) { clear(p); return len(p), nil }
func (z zeroImage) Size() int64                             { return int64(z) }
func (z zeroImage) Format() string                          { return "zero" }
func (z zeroImage) Close() error                            { return nil }
func (z zeroImage) Extents(off, length int64) ([]formats.Extent, error) {
	return []formats.Extent{{Offset: off, Length: length, Kind: formats.Zero, HostOffset: -1}}, nil
}

// readsZero reports whether img (nil: no image) reads as zeros over
// [off, off+n) without reading data; past img's end it reads zeros.
func readsZero(img formats.Image, off, n int64) (bool, error) {
	if img == nil || off >= img.Size() {
		return true, nil
	}
	return compare.KnownZero(img, off, min(n, img.Size()-off))
}

// readInto reads img at off into p, zeros past its end (nil reads zeros).
func readInto(img formats.Image, p []byte, off int64) error {
	clear(p)
	if img == nil || off >= img.Size() {
		return nil
	}
	n := min(int64(len(p)), img.Size()-off)
	if _, err := img.ReadAt(p[:n], off); err != nil {
		return fmt.Errorf("%s: reading %d bytes at %d: %w", imageName(img), n, off, err)
	}
	return nil
}

func clusterSize(img formats.Image) int64 {
	if c, ok := img.(formats.ClusterSizer); ok && c.ClusterSize() > 0 {
		return c.ClusterSize()
	}
	return 64 << 10
}

// imageName names img in errors: its backing path when known, else format.
func imageName(img formats.Image) string {
	if n, ok := img.(interface{ Name() string }); ok {
		return n.Name()
	}
	return img.Format() + " image"
}

// padded is an image read as size bytes: zeros past its own end (an old
// backing smaller than the top).
type padded struct {
	formats.Image
	size int64
}

func (p padded) Size() int64 { return p.size }

func (p padded) ReadAt(b []byte, off int64) (int, error) {
	if err := readInto(p.Image, b, off); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p padded) Extents(off, length int64) ([]formats.Extent, error) {
	inner := p.Image.Size()
	var out []formats.Extent
	if off < inner {
		exts, err := formats.ChainExtents(p.Image, off, min(length, inner-off))
		if err != nil {
			return nil, err
		}
		out = exts
	}
	if end := off + length; end > inner {
		start := max(off, inner)
		out = append(out, formats.Extent{Offset: start, Length: end - start, Kind: formats.Zero, HostOffset: -1})
	}
	return out, nil
}
