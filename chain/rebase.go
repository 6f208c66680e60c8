package chain

import (
	"bytes"
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
		if st, err = copyDifferences(ctx, top, old, newBacking, opts.Progress); err != nil {
			return st, err
		}
	}
	if err := top.Flush(); err != nil {
		return st, err
	}
	return st, setter.SetBacking(opts.Name, opts.Format, newBacking)
}

// copyDifferences writes into top the ranges top does not allocate where
// old and new differ, at top's cluster granularity.
func copyDifferences(ctx context.Context, top formats.Writable, old, new formats.Image, progress func(int64, int64)) (RebaseStats, error) {
	var st RebaseStats
	size := top.Size()
	exts, err := top.Extents(0, size)
	if err != nil {
		return st, err
	}
	cs := clusterSize(top)
	bufOld, bufNew := make([]byte, chunkBytes), make([]byte, chunkBytes)
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
			zo, err := readsZero(old, off, n)
			if err != nil {
				return st, err
			}
			zn, err := readsZero(new, off, n)
			if err != nil {
				return st, err
			}
			if zo && zn {
				continue
			}
			if err := readInto(old, bufOld[:n], off); err != nil {
				return st, err
			}
			if err := readInto(new, bufNew[:n], off); err != nil {
				return st, err
			}
			st.ComparedBytes += n
			w, err := writeDiffering(top, bufOld[:n], bufNew[:n], off, cs)
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

// writeDiffering writes the clusters of old (at off in top) that differ
// from new.
func writeDiffering(top formats.Writable, old, new []byte, off, cs int64) (int64, error) {
	var written int64
	for i := int64(0); i < int64(len(old)); {
		// Clusters of top, aligned to the image, not to off.
		end := min(int64(len(old)), (off+i)/cs*cs+cs-off)
		if !bytes.Equal(old[i:end], new[i:end]) {
			if _, err := top.WriteAt(old[i:end], off+i); err != nil {
				return written, err
			}
			written += end - i
		}
		i = end
	}
	return written, nil
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
