//go:build !unix

package imagelock

import "os"

// lockByte does nothing here: qemu takes no such locks on this OS either.
func lockByte(f *os.File, off int64) error { return nil }

func lockedByOther(f *os.File, off int64) (bool, error) { return false, nil }

func unlockAll(f *os.File) error { return nil }
