package chain

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// CommitOptions are the choices of qemu-img commit.
type CommitOptions struct {
	// Depth is how many layers, from the top, are committed: 1 (the
	// default) commits the top into its backing file, 2 the top and its
	// backing into the backing's backing, and so on. base is that layer.
	Depth int
	// Empty empties the top afterwards (qemu-img commit without -d and
	// without -b); the top must be a formats.Emptier opened writable.
	Empty bool
	// Progress, when set, is called with bytes examined and the total.
	Progress func(done, total int64)
}

// CommitStats counts what a commit wrote into the base.
type CommitStats struct {
	DataBytes, ZeroBytes int64
}

// Commit writes every range allocated in the Depth layers from top down
// (data as read through top, zeros as zeros) into base, which must be
// opened separately, writable (with its own backing chain, so that zeros
// over it are recorded as zeros), and be the layer below them. A base smaller
// than top is grown first, as qemu does. The base is flushed before the top
// is emptied (opts.Empty).
func Commit(ctx context.Context, top formats.Image, base formats.Writable, opts CommitOptions) (CommitStats, error) {
	var st CommitStats
	depth := max(opts.Depth, 1)
	size := top.Size()
	if base.Size() < size {
		r, ok := base.(formats.Resizer)
		if !ok {
			return st, formats.Unsupportedf(imageName(base), "committing into a smaller %s base (it cannot be resized)", base.Format())
		}
		if err := r.Resize(ctx, size, false); err != nil {
			return st, err
		}
	}
	exts, err := aboveBase(top, 0, size, depth)
	if err != nil {
		return st, err
	}
	buf := make([]byte, chunkBytes)
	for _, e := range exts {
		for off := e.Offset; off < e.End(); off += chunkBytes {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if opts.Progress != nil {
				opts.Progress(off, size)
			}
			n := min(chunkBytes, e.End()-off)
			if err := commitRange(top, base, e.Kind, buf[:n], off); err != nil {
				return st, err
			}
			if e.Kind == formats.Zero {
				st.ZeroBytes += n
			} else {
				st.DataBytes += n
			}
		}
	}
	if err := base.Flush(); err != nil {
		return st, err
	}
	if opts.Progress != nil {
		opts.Progress(size, size)
	}
	if !opts.Empty {
		return st, nil
	}
	em, ok := top.(formats.Emptier)
	if !ok {
		return st, formats.Unsupportedf(imageName(top), "emptying a %s image after commit (use -d)", top.Format())
	}
	return st, em.MakeEmpty()
}

// commitRange copies one chunk of an allocated extent into base.
func commitRange(top formats.Image, base formats.Writable, kind formats.ExtentKind, buf []byte, off int64) error {
	if kind == formats.Zero {
		if z, ok := base.(formats.ZeroWriter); ok {
			return z.WriteZeroes(off, int64(len(buf)))
		}
		clear(buf)
	} else if _, err := top.ReadAt(buf, off); err != nil {
		return fmt.Errorf("%s: reading %d bytes at %d: %w", imageName(top), len(buf), off, err)
	}
	_, err := base.WriteAt(buf, off)
	return err
}

// aboveBase lists the extents of [off, off+length) that one of the depth
// layers from img down allocates (Data or Zero), in order.
func aboveBase(img formats.Image, off, length int64, depth int) ([]formats.Extent, error) {
	exts, err := img.Extents(off, length)
	if err != nil {
		return nil, err
	}
	var backing formats.Image
	if b, ok := img.(formats.Backer); ok {
		backing = b.Backing()
	}
	var out []formats.Extent
	for _, e := range exts {
		if e.Kind != formats.Unallocated {
			out = append(out, e)
			continue
		}
		if depth <= 1 || backing == nil || e.Offset >= backing.Size() {
			continue
		}
		sub, err := aboveBase(backing, e.Offset, min(e.Length, backing.Size()-e.Offset), depth-1)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}
