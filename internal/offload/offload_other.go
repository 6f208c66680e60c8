//go:build !linux

package offload

import "os"

// Copy offloads nothing on this OS: the caller copies the whole range.
func Copy(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) (int64, error) {
	return 0, nil
}

// CloneAll clones nothing on this OS.
func CloneAll(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) (bool, error) {
	return false, nil
}
