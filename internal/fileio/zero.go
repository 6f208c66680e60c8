package fileio

import (
	"io"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/sparse"
)

// WriteZeros writes length zero bytes to w (a file or an image) at off,
// 1 MiB at a time.
func WriteZeros(f io.WriterAt, off, length int64) error {
	zero := make([]byte, min(length, 1<<20))
	for length > 0 {
		n := min(length, int64(len(zero)))
		if _, err := f.WriteAt(zero[:n], off); err != nil {
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
	if osf := formats.OSFileOf(f); osf != nil && sparse.PunchHole(osf, off, length) == nil {
		return nil
	}
	return WriteZeros(f, off, length)
}
