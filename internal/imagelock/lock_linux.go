//go:build linux

package imagelock

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockByte takes a shared open-file-description lock on one byte.
func lockByte(f *os.File, off int64) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: off, Len: 1}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// lockedByOther reports whether another open file description holds a lock
// on the byte that an exclusive lock would conflict with.
func lockedByOther(f *os.File, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}

// unlockAll drops every lock of f's open file description. A descriptor
// copied into a child that has forked but not yet exec'd (another
// goroutine starting a process) refers to the same description and would
// keep its locks after f is closed; unlocking first does not wait for it.
func unlockAll(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: 0, Len: 0}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}
