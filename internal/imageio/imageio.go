// Package imageio holds the helpers format drivers share to implement
// formats.Image: bounds of reads and writes, reading through to a backing
// image, building Extents answers, and counting allocated blocks for Measure.
// Library users never need them; they live here so that package formats
// stays the contract only.
package imageio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vdiskio/vdisk/formats"
)

// AllData is the Extents answer of an image that cannot tell allocation.
func AllData(off, length int64) []formats.Extent {
	if length <= 0 {
		return nil
	}
	return []formats.Extent{{Offset: off, Length: length, Kind: formats.Data, HostOffset: -1}}
}

// AppendExtent appends e to out, merging it into the last extent when e
// continues it. Drivers use it to keep their answers small.
func AppendExtent(out []formats.Extent, e formats.Extent) []formats.Extent {
	if n := len(out); n > 0 && out[n-1].Continues(e) {
		out[n-1].Length += e.Length
		return out
	}
	return append(out, e)
}

// MergeExtents merges adjacent extents that continue each other.
func MergeExtents(exts []formats.Extent) []formats.Extent {
	var out []formats.Extent
	for _, e := range exts {
		out = AppendExtent(out, e)
	}
	return out
}

// ReadBacking fills p with the content at off of backing (which may be nil or
// shorter than the range: the rest reads as zeros). Drivers use it for
// Unallocated ranges.
func ReadBacking(backing formats.Image, p []byte, off int64) error {
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

// ReadClipped is the ReadAt of an image of size bytes whose read fills
// all of the p it is given or fails: the read is bounded by ClipRead, and
// a failed one returns no bytes.
func ReadClipped(p []byte, off, size int64, read func(p []byte, off int64) error) (int, error) {
	n, eof := ClipRead(p, off, size)
	if n == 0 {
		return 0, eof
	}
	if err := read(p[:n], off); err != nil {
		return 0, err
	}
	return n, eof
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
// Measure uses it; ctx is checked between 1 GiB slices.
func DataBlocks(ctx context.Context, img formats.Image, blockBytes int64) (int64, error) {
	var count int64
	next := int64(0) // first block not yet counted
	size := img.Size()
	for start := int64(0); start < size; start += 1 << 30 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		exts, err := formats.ChainExtents(img, start, min(size-start, 1<<30))
		if err != nil {
			return 0, err
		}
		for _, e := range exts {
			if e.Kind != formats.Data {
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

// FileExtents maps length bytes of f starting at file offset fileOff to
// extents at virtual offset virtOff: holes of a formats.HoleFinder are Zero,
// the rest Data, HostOffset being the file offset. A File that cannot tell
// its holes reports one Data extent; a formats.ExtentsFile (an NBD export)
// is asked for its allocation. Drivers whose disk bytes are a plain
// file range (raw, fixed VHD, flat VMDK extents, ISO) use it so that
// converting them never reads holes.
func FileExtents(f formats.File, virtOff, fileOff, length int64) ([]formats.Extent, error) {
	if length <= 0 {
		return nil, nil
	}
	if ef, ok := f.(formats.ExtentsFile); ok {
		return shiftExtents(ef, virtOff, fileOff, length)
	}
	hf, ok := f.(formats.HoleFinder)
	if !ok {
		return []formats.Extent{{Offset: virtOff, Length: length, Kind: formats.Data, HostOffset: fileOff}}, nil
	}
	runs, err := hf.Runs(fileOff, length)
	if err != nil {
		return nil, fmt.Errorf("%s: finding holes: %w", f.Name(), err)
	}
	exts := make([]formats.Extent, 0, len(runs))
	for _, r := range runs {
		kind := formats.Data
		if r.Hole {
			kind = formats.Zero
		}
		exts = append(exts, formats.Extent{Offset: r.Offset - fileOff + virtOff, Length: r.Length, Kind: kind, HostOffset: r.Offset})
	}
	return exts, nil
}

// shiftExtents asks f for [fileOff, fileOff+length) and moves the answer to
// virtual offset virtOff, checking that it covers the range in order.
func shiftExtents(f formats.ExtentsFile, virtOff, fileOff, length int64) ([]formats.Extent, error) {
	exts, err := f.FileExtents(fileOff, length)
	if err != nil {
		return nil, fmt.Errorf("%s: allocation status: %w", f.Name(), err)
	}
	out := make([]formats.Extent, 0, len(exts))
	next := fileOff
	for _, e := range exts {
		if e.Offset != next || e.Length <= 0 {
			return nil, fmt.Errorf("%s: allocation status: extent %d+%d where %d was expected", f.Name(), e.Offset, e.Length, next)
		}
		next = e.End()
		e.HostOffset = e.Offset
		e.Offset += virtOff - fileOff
		out = append(out, e)
	}
	if next != fileOff+length {
		return nil, fmt.Errorf("%s: allocation status covers %d of %d bytes", f.Name(), next-fileOff, length)
	}
	return out, nil
}

// Opened returns a driver's Open result as a formats.Image: a nil interface
// when err is set. Returning a typed nil pointer (*Image)(nil) in the
// interface instead would make a caller's `if img != nil { img.Close() }`
// call a method on nil.
func Opened[T formats.Image](img T, err error) (formats.Image, error) {
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Created is Opened for a driver's Create result.
func Created[T formats.Writable](img T, err error) (formats.Writable, error) {
	if err != nil {
		return nil, err
	}
	return img, nil
}

// OpenWith is a driver's typed Open (returning its *Image) as a
// formats.Driver's Open, through Opened.
func OpenWith[T formats.Image](open func(context.Context, formats.File, formats.OpenOptions) (T, error)) func(context.Context, formats.File, formats.OpenOptions) (formats.Image, error) {
	return func(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
		return Opened(open(ctx, f, opts))
	}
}

// CreateWith is a driver's typed Create as a formats.Driver's Create,
// through Created.
func CreateWith[T formats.Writable](create func(context.Context, formats.CreateRequest) (T, error)) func(context.Context, formats.CreateRequest) (formats.Writable, error) {
	return func(ctx context.Context, req formats.CreateRequest) (formats.Writable, error) {
		return Created(create(ctx, req))
	}
}

// StopTrying reports whether a driver trying the locators of one parent in
// turn should give up after err instead of trying the next: a backing loop
// or a limit (depth, metadata budget), which no other name of the parent
// can cure.
func StopTrying(err error) bool {
	return errors.Is(err, formats.ErrLimit) || errors.Is(err, formats.ErrBackingLoop)
}

// UserFiles returns a Resolver that opens the OS files in paths, which the
// user supplied (VDI's --parent), whatever the policy of base, and leaves
// every other reference to base. A driver passes it in the options of
// formats.OpenReference so that a user-chosen parent is opened as a layer of
// the chain: the depth limit, loop detection and the metadata budget apply,
// the reference policy does not.
func UserFiles(base formats.Resolver, paths ...string) formats.Resolver {
	return &userFiles{base: base, paths: paths}
}

type userFiles struct {
	base  formats.Resolver
	paths []string
}

func (u *userFiles) Resolve(from, ref string) (string, error) {
	if slices.Contains(u.paths, ref) {
		return ref, nil
	}
	return u.base.Resolve(from, ref)
}

func (u *userFiles) Open(from, ref string, writable bool) (formats.File, error) {
	if slices.Contains(u.paths, ref) {
		return formats.OpenOSFile(ref, writable)
	}
	return u.base.Open(from, ref, writable)
}

// Unwrap is the resolver under the user's files (formats.PolicyName).
func (u *userFiles) Unwrap() formats.Resolver { return u.base }
