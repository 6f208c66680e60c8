package sparse

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Native returns FreeBSD's Ops: SEEK_DATA/SEEK_HOLE, fspacectl
// SPACECTL_DEALLOC (FreeBSD 14+) and posix_fallocate.
func Native() Ops { return freebsdOps{} }

type freebsdOps struct{}

// FreeBSD's fspacectl(2), not yet in x/sys/unix: sys/syscall.h and
// sys/fcntl.h.
const (
	sysFspacectl    = 580
	spacectlDealloc = 1
)

// spacectlRange is struct spacectl_range {off_t r_offset; off_t r_len;}.
type spacectlRange struct {
	Offset, Length int64
}

func (freebsdOps) Runs(f *os.File, off, length int64) ([]Run, error) {
	return seekRuns(f, off, length)
}

// PunchHole calls fspacectl(fd, SPACECTL_DEALLOC, &range, 0, &rest) until
// rest is empty (the kernel may stop early). A kernel without the call
// (ENOSYS, before 14.0) or a file system without it is unsupported.
func (freebsdOps) PunchHole(f *os.File, off, length int64) error {
	req := spacectlRange{Offset: off, Length: length}
	for req.Length > 0 {
		var rest spacectlRange
		_, _, errno := unix.Syscall6(sysFspacectl, f.Fd(), spacectlDealloc,
			uintptr(unsafe.Pointer(&req)), 0, uintptr(unsafe.Pointer(&rest)), 0)
		if errno != 0 {
			return bsdError(f, "fspacectl SPACECTL_DEALLOC", errno)
		}
		if rest.Length >= req.Length {
			return fmt.Errorf("%s: fspacectl SPACECTL_DEALLOC made no progress at offset %d", f.Name(), req.Offset)
		}
		req = rest
	}
	return nil
}

// Allocate calls posix_fallocate, which returns its error as the result
// (not in errno); ZFS answers EINVAL.
func (freebsdOps) Allocate(f *os.File, off, length int64) error {
	r1, _, errno := unix.Syscall(unix.SYS_POSIX_FALLOCATE, f.Fd(), uintptr(off), uintptr(length))
	if errno == 0 && r1 != 0 {
		errno = unix.Errno(r1)
	}
	if errno != 0 {
		return bsdError(f, "posix_fallocate", errno)
	}
	return nil
}

func (freebsdOps) Allocated(f *os.File) (int64, error) { return blocksAllocated(f) }

func bsdError(f *os.File, call string, errno unix.Errno) error {
	switch errno {
	case unix.ENOSYS, unix.EOPNOTSUPP, unix.EINVAL, unix.ENODEV:
		return fmt.Errorf("%s: %s: %w (%v)", f.Name(), call, errors.ErrUnsupported, errno)
	}
	return fmt.Errorf("%s: %s: %w", f.Name(), call, errno)
}
