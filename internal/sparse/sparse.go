// Package sparse wraps the Linux calls that find and make holes in files:
// lseek SEEK_DATA/SEEK_HOLE, fallocate PUNCH_HOLE and plain preallocation.
package sparse

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Run is a range of a file that is either data or a hole.
type Run struct {
	Offset, Length int64
	Hole           bool
}

// Runs lists the data and hole runs of f in [off, off+length), in order.
// Filesystems without SEEK_DATA report one data run.
func Runs(f *os.File, off, length int64) ([]Run, error) {
	end := off + length
	fd := int(f.Fd())
	var runs []Run
	for pos := off; pos < end; {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			// No data after pos: the rest (up to EOF and beyond) is a hole.
			return append(runs, Run{Offset: pos, Length: end - pos, Hole: true}), nil
		}
		if err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return append(runs, Run{Offset: pos, Length: end - pos}), nil
			}
			return nil, err
		}
		if data > pos {
			runs = append(runs, Run{Offset: pos, Length: min(data, end) - pos, Hole: true})
			pos = min(data, end)
			if pos >= end {
				break
			}
		}
		hole, err := unix.Seek(fd, pos, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, end)
		runs = append(runs, Run{Offset: pos, Length: hole - pos})
		pos = hole
	}
	return runs, nil
}

// PunchHole deallocates [off, off+length) of f, keeping its size; the range
// then reads as zeros.
func PunchHole(f *os.File, off, length int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
}

// Allocate reserves blocks for [off, off+length) of f (fallocate mode 0).
func Allocate(f *os.File, off, length int64) error {
	return unix.Fallocate(int(f.Fd()), 0, off, length)
}

// Allocated is the number of bytes f occupies on disk (st_blocks × 512).
func Allocated(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}

// AllocatedPath is Allocated for a path.
func AllocatedPath(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}
