//go:build !linux && !darwin && !freebsd && !windows

package blockdev

import (
	"errors"
	"fmt"
	"os"
)

// Size is unsupported on this OS: no disk-size call is wired here.
func Size(f *os.File) (int64, error) {
	return 0, fmt.Errorf("%s: disk size: %w", f.Name(), errors.ErrUnsupported)
}
