//go:build linux

package hostfile

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DirectFlag is the open flag for I/O that bypasses the page cache.
const DirectFlag = unix.O_DIRECT

// DeviceSize is a block device's size in bytes (BLKGETSIZE64).
func DeviceSize(f *os.File) (int64, error) {
	var size uint64
	if err := ioctlPtr(f, unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != nil {
		return 0, fmt.Errorf("%s: BLKGETSIZE64: %w", f.Name(), err)
	}
	return int64(size), nil
}

// DeviceReadOnly reports whether a block device is set read-only
// (blockdev --setro, losetup -r): open(O_RDWR) succeeds on such a device but
// writes fail, so it is checked before anything is written.
func DeviceReadOnly(f *os.File) (bool, error) {
	var ro int32
	if err := ioctlPtr(f, unix.BLKROGET, unsafe.Pointer(&ro)); err != nil {
		return false, fmt.Errorf("%s: BLKROGET: %w", f.Name(), err)
	}
	return ro != 0, nil
}

// ZeroDevice makes [off, off+length) of a block device read as zeros: a
// discard that guarantees zeros (fallocate PUNCH_HOLE on the device) where
// the device supports it, else BLKZEROOUT (the kernel writes zeros itself
// when the device has no zeroing command). ErrUnsupported when neither works.
func ZeroDevice(f *os.File, off, length int64) error {
	if length <= 0 {
		return nil
	}
	fd := int(f.Fd())
	if unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length) == nil {
		return nil
	}
	rng := [2]uint64{uint64(off), uint64(length)}
	err := ioctlPtr(f, unix.BLKZEROOUT, unsafe.Pointer(&rng))
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return ErrUnsupported
	}
	return fmt.Errorf("%s: BLKZEROOUT %d+%d: %w", f.Name(), off, length, err)
}

func ioctlPtr(f *os.File, req uint, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}
