package blockdev

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Size is the size in bytes of the disk f (ioctl DIOCGMEDIASIZE, an off_t).
func Size(f *os.File) (int64, error) {
	size, err := unix.IoctlGetInt(int(f.Fd()), unix.DIOCGMEDIASIZE)
	if err != nil {
		return 0, fmt.Errorf("%s: DIOCGMEDIASIZE: %w", f.Name(), err)
	}
	return int64(size), nil
}
