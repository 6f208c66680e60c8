package formats

import (
	"fmt"
	"io"
)

// File is the storage a driver reads and writes: an OS file, a block device,
// a temporary output file, memory in tests, an object in a remote store.
// ReadAt must be safe for concurrent use. A File opened read-only returns an
// error wrapping ErrReadOnly from WriteAt and Truncate.
//
// What a file can do beyond this is an optional interface found by type
// assertion: Syncer, HoleFinder, ExtentsFile, HolePuncher, Preallocator, AllocationSizer,
// FixedSizer, SequentialFile. OS files (OpenOSFile, NewOSFile) implement
// them all where the OS allows; ReaderAtFile implements none.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Size is the current length of the file in bytes.
	Size() (int64, error)
	Truncate(size int64) error
	Close() error
	// Name is the name the file was opened by (used in messages and to
	// resolve the references it contains through a Resolver).
	Name() string
}

// Syncer is a File that can make its written bytes durable (fsync).
type Syncer interface {
	Sync() error
}

// FileRun is a range of a File that holds data or is a hole (reads as
// zeros and occupies no storage).
type FileRun struct {
	Offset, Length int64
	Hole           bool
}

// HoleFinder is a File that knows where its holes are (SEEK_DATA and
// SEEK_HOLE on an OS file). Runs covers [off, off+length) in order.
type HoleFinder interface {
	Runs(off, length int64) ([]FileRun, error)
}

// HolePuncher is a File that can deallocate a range, which then reads as
// zeros (fallocate PUNCH_HOLE and its equivalents). An error means the range
// is unchanged and the caller writes zeros instead.
type HolePuncher interface {
	PunchHole(off, length int64) error
}

// Preallocator is a File that can reserve storage for a range without
// writing it (preallocation=falloc).
type Preallocator interface {
	Allocate(off, length int64) error
}

// AllocationSizer is a File that knows how many bytes it occupies on its
// storage (the "actual-size" of `info`).
type AllocationSizer interface {
	AllocatedBytes() (int64, error)
}

// FixedSizer is a File whose size cannot change: a block device, a
// fixed-size remote volume. FixedSize reports whether this open file is so.
type FixedSizer interface {
	FixedSize() bool
}

// SequentialFile is a File that can only be written in increasing offset
// order and cannot be read back: a pipe, stdout, an upload stream.
// Sequential reports whether this open file is so.
type SequentialFile interface {
	Sequential() bool
}

// Sync makes f's writes durable when f is a Syncer; other files have
// nothing to sync.
func Sync(f File) error {
	if s, ok := f.(Syncer); ok {
		return s.Sync()
	}
	return nil
}

// IsSequential reports whether f is a SequentialFile that says so.
func IsSequential(f File) bool {
	s, ok := f.(SequentialFile)
	return ok && s.Sequential()
}

// IsFixedSize reports whether f is a FixedSizer that says so.
func IsFixedSize(f File) bool {
	s, ok := f.(FixedSizer)
	return ok && s.FixedSize()
}

// ReaderAtFile adapts r, holding size bytes, to a read-only File named name
// (the name appears in messages and is what references in the image are
// resolved against). Close closes r when it is an io.Closer.
func ReaderAtFile(r io.ReaderAt, size int64, name string) File {
	return &readerAtFile{r: r, size: size, name: name}
}

type readerAtFile struct {
	r    io.ReaderAt
	size int64
	name string
}

func (f *readerAtFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.name, off)
	}
	if off >= f.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.size-off)
	n, err := f.r.ReadAt(p[:want], off)
	if n == int(want) && int64(len(p)) > want {
		return n, io.EOF
	}
	if err == io.EOF && n == int(want) && int64(len(p)) == want {
		err = nil
	}
	return n, err
}

func (f *readerAtFile) WriteAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("%s: %w", f.name, ErrReadOnly)
}

func (f *readerAtFile) Truncate(int64) error { return fmt.Errorf("%s: %w", f.name, ErrReadOnly) }
func (f *readerAtFile) Size() (int64, error) { return f.size, nil }
func (f *readerAtFile) Name() string         { return f.name }

func (f *readerAtFile) Close() error {
	if c, ok := f.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
