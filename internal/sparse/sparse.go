// Package sparse finds and makes holes in files, per OS, behind one
// interface (Ops):
//
//   - finding holes: lseek SEEK_DATA/SEEK_HOLE on Linux, macOS and FreeBSD;
//     FSCTL_QUERY_ALLOCATED_RANGES on Windows;
//   - punching holes: fallocate PUNCH_HOLE|KEEP_SIZE on Linux, fcntl
//     F_PUNCHHOLE on macOS, fspacectl SPACECTL_DEALLOC on FreeBSD,
//     FSCTL_SET_SPARSE + FSCTL_SET_ZERO_DATA on Windows;
//   - reserving blocks: fallocate on Linux, posix_fallocate on FreeBSD,
//     the file's allocation size on Windows (non-sparse files);
//   - the bytes a file occupies: st_blocks × 512, or the allocation size.
//
// Where an OS or a file system has no such call, the portable fallback
// (Fallback) answers correctly but without holes: every byte is data,
// punching a hole reports errors.ErrUnsupported (callers then write zeros)
// and so does reserving blocks (callers refuse preallocation=falloc by name).
// Native returns this OS's Ops; the package functions use it.
package sparse

import (
	"errors"
	"fmt"
	"os"
)

// Run is a range of a file that is either data or a hole.
type Run struct {
	Offset, Length int64
	Hole           bool
}

// Ops are one OS's hole operations on open files.
type Ops interface {
	// Runs lists the data and hole runs of f in [off, off+length), in
	// order, covering the whole range (past EOF is a hole). A file system
	// that cannot tell reports one data run.
	Runs(f *os.File, off, length int64) ([]Run, error)
	// PunchHole deallocates [off, off+length) of f, keeping its size; the
	// range then reads as zeros. errors.ErrUnsupported (wrapped) when the OS
	// or file system cannot, so that the caller writes zeros instead.
	PunchHole(f *os.File, off, length int64) error
	// Allocate reserves blocks for [off, off+length) of f without changing
	// what it reads; errors.ErrUnsupported (wrapped) when it cannot.
	Allocate(f *os.File, off, length int64) error
	// Allocated is the number of bytes f occupies on disk.
	Allocated(f *os.File) (int64, error)
}

// Fallback is the portable Ops: everything is data, holes cannot be
// punched nor blocks reserved, and a file occupies its size.
func Fallback() Ops { return portable{} }

// Runs lists the data and hole runs of f in [off, off+length) with Native.
func Runs(f *os.File, off, length int64) ([]Run, error) { return Native().Runs(f, off, length) }

// PunchHole deallocates [off, off+length) of f with Native.
func PunchHole(f *os.File, off, length int64) error { return Native().PunchHole(f, off, length) }

// Allocate reserves blocks for [off, off+length) of f with Native.
func Allocate(f *os.File, off, length int64) error { return Native().Allocate(f, off, length) }

// Allocated is the number of bytes f occupies on disk, with Native.
func Allocated(f *os.File) (int64, error) { return Native().Allocated(f) }

// AllocatedPath is Allocated for a path.
func AllocatedPath(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return Allocated(f)
}

// portable is the fallback Ops.
type portable struct{}

func (portable) Runs(f *os.File, off, length int64) ([]Run, error) {
	if length <= 0 {
		return nil, nil
	}
	return []Run{{Offset: off, Length: length}}, nil
}

func (portable) PunchHole(f *os.File, off, length int64) error {
	return unsupported(f, "punching holes")
}

func (portable) Allocate(f *os.File, off, length int64) error {
	return unsupported(f, "reserving blocks")
}

func (portable) Allocated(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func unsupported(f *os.File, what string) error {
	return fmt.Errorf("%s: %s: %w", f.Name(), what, errors.ErrUnsupported)
}
