//go:build !linux

package formats

import "os"

// reserveBeforeWrite does nothing here: the measured gain (Linux ext4's
// per-block delayed allocation) is Linux's, and other OSes' preallocation
// calls change the file's size or its sparseness.
func reserveBeforeWrite(f *os.File, off, length int64) {}
