//go:build linux || darwin || freebsd

package sparse

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// seekRuns finds runs with lseek SEEK_DATA/SEEK_HOLE (Linux, macOS and
// FreeBSD share the calls and their errors: ENXIO past the last data,
// EINVAL or EOPNOTSUPP where the file system does not tell).
func seekRuns(f *os.File, off, length int64) ([]Run, error) {
	if length <= 0 {
		return nil, nil
	}
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

// blocksAllocated is st_blocks × 512 (POSIX's unit for st_blocks).
func blocksAllocated(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks) * 512, nil
}
