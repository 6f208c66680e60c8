// Package compare compares the guest-visible content of two images, as
// `qemu-img compare` does: ranges both images report as zero or
// unallocated (through their backing chains) are not read, the rest is
// compared in 2 MiB chunks and the first difference is located to its
// 512-byte sector. Images of different sizes are equal when the longer one
// reads as zeros past the shorter one's end; strict mode also requires
// equal sizes and equal block status (data, zero, unallocated) everywhere.
package compare

import (
	"bytes"
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// chunkBytes is how much of each image is read at a time.
const chunkBytes = 2 << 20

// sectorBytes is the granularity of a reported difference.
const sectorBytes = 512

// Options tune Images. The zero value is qemu-img compare's default.
type Options struct {
	// Strict (-s): a size difference or a block status difference is a
	// mismatch too.
	Strict bool
}

// Result is what Images found.
type Result struct {
	// Identical: the images read the same (and, in strict mode, have the
	// same size and block status).
	Identical bool
	// SizeMismatch: the sizes differ (a warning unless Strict, when it is
	// the mismatch itself).
	SizeMismatch bool
	// Offset is the first differing byte offset, at sector granularity, of
	// content or (StatusMismatch) of block status; -1 when Identical or
	// when only the sizes differ in strict mode.
	Offset int64
	// StatusMismatch: strict mode found different block status at Offset.
	StatusMismatch bool
}

// StatusError is a failure to query an image's allocation (qemu-img
// compare's exit code 3).
type StatusError struct{ Err error }

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// ReadError is a failure to read an image (exit code 4).
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Images compares a and b. A *StatusError or *ReadError says which kind of
// I/O failed; ctx is checked before every chunk.
func Images(ctx context.Context, a, b formats.Image, opts Options) (Result, error) {
	c := comparer{ctx: ctx, a: a, b: b}
	res := Result{Offset: -1, SizeMismatch: a.Size() != b.Size()}
	if res.SizeMismatch && opts.Strict {
		return res, nil
	}
	common := min(a.Size(), b.Size())
	if opts.Strict {
		off, err := c.compareStatus(common)
		if err != nil || off >= 0 {
			res.Offset, res.StatusMismatch = off, off >= 0
			return res, err
		}
	}
	off, err := c.compareRange(common)
	if err != nil || off >= 0 {
		res.Offset = off
		return res, err
	}
	longer := a
	if b.Size() > a.Size() {
		longer = b
	}
	off, err = c.zeroTail(longer, common)
	if err != nil || off >= 0 {
		res.Offset = off
		return res, err
	}
	res.Identical = true
	return res, nil
}

type comparer struct {
	ctx  context.Context
	a, b formats.Image
}

// compareRange compares [0, size) of both images, skipping ranges both
// report as zeros; it returns the first differing offset or -1.
func (c *comparer) compareRange(size int64) (int64, error) {
	bufA, bufB := make([]byte, chunkBytes), make([]byte, chunkBytes)
	for off := int64(0); off < size; off += chunkBytes {
		if err := c.ctx.Err(); err != nil {
			return -1, err
		}
		n := min(size-off, chunkBytes)
		za, errA := KnownZero(c.a, off, n)
		zb, errB := KnownZero(c.b, off, n)
		if err := firstErr(errA, errB); err != nil {
			return -1, &StatusError{fmt.Errorf("error checking sector allocation at offset %d: %v", off, err)}
		}
		if za && zb {
			continue
		}
		if err := readFull(c.a, bufA[:n], off); err != nil {
			return -1, err
		}
		if err := readFull(c.b, bufB[:n], off); err != nil {
			return -1, err
		}
		if d := FirstDifference(bufA[:n], bufB[:n]); d >= 0 {
			return off + d, nil
		}
	}
	return -1, nil
}

// FirstDifference returns the offset of the first 512-byte sector where a
// and b (of equal length) differ, or -1.
func FirstDifference(a, b []byte) int64 {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := 0; i < len(a); i += sectorBytes {
		end := min(len(a), i+sectorBytes)
		if !bytes.Equal(a[i:end], b[i:end]) {
			return int64(i)
		}
	}
	return -1
}

// blockStatus is the part of qemu's block status that strict mode compares:
// data, zero, whether any layer allocates the range, and whether the run
// reaches the end of the image (qemu's BDRV_BLOCK_EOF is part of the value
// it compares, so two identical runs differ when only one ends the image).
type blockStatus struct {
	kind formats.ExtentKind
	eof  bool
}

// statusWalker yields the block status of an image run by run.
type statusWalker struct {
	img  formats.Image
	exts []formats.Extent
}

// at returns the status at off and how far it lasts.
func (w *statusWalker) at(off int64) (blockStatus, int64, error) {
	for len(w.exts) > 0 && w.exts[0].End() <= off {
		w.exts = w.exts[1:]
	}
	if len(w.exts) == 0 {
		exts, err := formats.ChainExtents(w.img, off, min(w.img.Size()-off, 1<<30))
		if err != nil || len(exts) == 0 {
			return blockStatus{}, 0, &StatusError{fmt.Errorf("error checking sector allocation at offset %d: %v", off, err)}
		}
		w.exts = exts
	}
	e := w.exts[0]
	return blockStatus{kind: e.Kind, eof: e.End() >= w.img.Size()}, e.End() - off, nil
}

// compareStatus returns the first offset where the block status differs.
func (c *comparer) compareStatus(size int64) (int64, error) {
	wa, wb := &statusWalker{img: c.a}, &statusWalker{img: c.b}
	for off := int64(0); off < size; {
		if err := c.ctx.Err(); err != nil {
			return -1, err
		}
		sa, na, err := wa.at(off)
		if err != nil {
			return -1, err
		}
		sb, nb, err := wb.at(off)
		if err != nil {
			return -1, err
		}
		if sa != sb {
			return off, nil
		}
		off += min(na, nb)
	}
	return -1, nil
}

// zeroTail returns the first offset from off on where img does not read
// as zeros, or -1.
func (c *comparer) zeroTail(img formats.Image, off int64) (int64, error) {
	buf := make([]byte, chunkBytes)
	for ; off < img.Size(); off += chunkBytes {
		if err := c.ctx.Err(); err != nil {
			return -1, err
		}
		n := min(img.Size()-off, chunkBytes)
		z, err := KnownZero(img, off, n)
		if err != nil {
			return -1, &StatusError{err}
		}
		if z {
			continue
		}
		if err := readFull(img, buf[:n], off); err != nil {
			return -1, err
		}
		for i := 0; i < int(n); i += sectorBytes {
			if !zero.Is(buf[i:min(int(n), i+sectorBytes)]) {
				return off + int64(i), nil
			}
		}
	}
	return -1, nil
}

// KnownZero reports whether every extent of [off, off+n) of img, through
// its backing chain, is Zero or Unallocated (so it reads as zeros without
// being read).
func KnownZero(img formats.Image, off, n int64) (bool, error) {
	exts, err := formats.ChainExtents(img, off, n)
	if err != nil {
		return false, err
	}
	for _, e := range exts {
		if e.Kind == formats.Data {
			return false, nil
		}
	}
	return true, nil
}

func readFull(img formats.Image, p []byte, off int64) error {
	if n, err := img.ReadAt(p, off); n < len(p) {
		return &ReadError{fmt.Errorf("error while reading offset %d: %v", off+int64(n), err)}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
