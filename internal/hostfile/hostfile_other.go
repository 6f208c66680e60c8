//go:build !linux

package hostfile

import (
	"fmt"
	"os"
)

// DirectFlag is 0: this OS has no O_DIRECT open flag (qemu falls back the
// same way).
const DirectFlag = 0

// DeviceSize is not implemented on this OS.
func DeviceSize(f *os.File) (int64, error) {
	return 0, fmt.Errorf("%s: block device size: %w", f.Name(), ErrUnsupported)
}

// DeviceReadOnly is not known on this OS: writes report it.
func DeviceReadOnly(f *os.File) (bool, error) { return false, nil }

// ZeroDevice is not implemented on this OS: callers write zeros.
func ZeroDevice(f *os.File, off, length int64) error { return ErrUnsupported }
