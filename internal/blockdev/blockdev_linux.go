package blockdev

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Size is the size in bytes of the block device f (ioctl BLKGETSIZE64).
func Size(f *os.File) (int64, error) {
	var size uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
	if errno != 0 {
		return 0, fmt.Errorf("%s: BLKGETSIZE64: %w", f.Name(), errno)
	}
	return int64(size), nil
}
