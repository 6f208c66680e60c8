package fileio

import (
	"context"
	"errors"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// zeroChunkBytes is how much WriteZeros writes per call.
const zeroChunkBytes = 1 << 20

// WriteZeros writes length zero bytes to w (a file or an image) at off,
// 1 MiB at a time.
func WriteZeros(w io.WriterAt, off, length int64) error {
	return ZeroFill(context.Background(), w, off, length)
}

// ZeroFill is WriteZeros that stops with ctx's error before the next
// 1 MiB write once ctx is done (preallocation=full of a large image).
func ZeroFill(ctx context.Context, w io.WriterAt, off, length int64) error {
	zero := make([]byte, min(length, zeroChunkBytes))
	for length > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(length, int64(len(zero)))
		if _, err := w.WriteAt(zero[:n], off); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}

// RangeZeroer is a File with its own way to make a range read as zeros
// (a block device's discard or BLKZEROOUT).
type RangeZeroer interface {
	ZeroRange(off, length int64) error
}

// ZeroRange makes [off, off+length) of f read as zeros: the file's own
// zeroing when it has one, a punched hole on an OS file that allows it,
// written zeros otherwise.
func ZeroRange(f formats.File, off, length int64) error {
	if z, ok := f.(RangeZeroer); ok {
		return z.ZeroRange(off, length)
	}
	if hp, ok := f.(formats.HolePuncher); ok && hp.PunchHole(off, length) == nil {
		return nil
	}
	return WriteZeros(f, off, length)
}

// Preallocate reserves [off, off+length) of f (preallocation=falloc): a
// formats.Preallocator's Allocate, or zeros written when f has none.
func Preallocate(ctx context.Context, f formats.File, off, length int64) error {
	if pa, ok := f.(formats.Preallocator); ok {
		err := pa.Allocate(off, length)
		if errors.Is(err, errors.ErrUnsupported) {
			return formats.Unsupportedf(f.Name(), "preallocation=falloc on this OS or file system (%v)", err)
		}
		return err
	}
	return ZeroFill(ctx, f, off, length)
}
