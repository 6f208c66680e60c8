//go:build linux

package rescue

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens read-only with O_DIRECT.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
}
