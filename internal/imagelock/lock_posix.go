//go:build unix && !linux

package imagelock

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockByte takes a shared POSIX lock on one byte (this OS has no
// open-file-description locks; qemu falls back the same way, and such
// locks are dropped when the process closes any descriptor of the file).
func lockByte(f *os.File, off int64) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: off, Len: 1}
	return unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
}

// lockedByOther reports whether another process holds a lock on the byte.
func lockedByOther(f *os.File, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}

// unlockAll drops this process's locks on f's file.
func unlockAll(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: 0, Len: 0}
	return unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
}
