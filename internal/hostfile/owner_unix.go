//go:build unix

package hostfile

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// KeepOwner gives f the owner, group and permission bits of the file that
// st describes (the file f will replace), before f is renamed over it.
func KeepOwner(f *os.File, st os.FileInfo) error {
	if err := f.Chmod(st.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)); err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	var cur unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &cur); err == nil && cur.Uid == sys.Uid && cur.Gid == sys.Gid {
		return nil
	}
	if err := f.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
		return fmt.Errorf("keeping owner %d:%d of %s: %w", sys.Uid, sys.Gid, st.Name(), err)
	}
	// chown clears set-id bits; set the mode again.
	return f.Chmod(st.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky))
}

// TryLock takes an exclusive flock on f without waiting; false when another
// open file holds it. A temporary output holds it for its whole life, so a
// temporary nobody holds was left by a process that died.
func TryLock(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// SameDevice reports whether a and b are device nodes of the same device
// (two nodes with one major:minor are one disk).
func SameDevice(a, b os.FileInfo) bool {
	if a.Mode()&os.ModeDevice == 0 || b.Mode()&os.ModeDevice == 0 || a.Mode()&os.ModeCharDevice != b.Mode()&os.ModeCharDevice {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Rdev == sb.Rdev
}
