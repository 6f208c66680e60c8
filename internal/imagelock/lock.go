package imagelock

import (
	"fmt"
	"os"
)

// Lock is the set of lock bytes held on one image file.
type Lock struct {
	f *os.File
}

// ConflictError is a lock another process holds, worded as qemu words it.
type ConflictError struct {
	Path   string
	Perm   string // qemu's permission name: "write", "resize", ...
	Shared bool   // the other process uses the permission this open would refuse it
}

func (e *ConflictError) Error() string {
	what := fmt.Sprintf("Failed to get %q lock", e.Perm)
	if e.Shared {
		what = fmt.Sprintf("Failed to get shared %q lock", e.Perm)
	}
	return fmt.Sprintf("%s: is another process using the image [%s]?", what, e.Path)
}

// Acquire takes mode's lock bytes on the file at path and checks that no
// other process's locks conflict, as qemu's raw_handle_perm_lock does. A
// conflict is a *ConflictError; on any error nothing stays locked. A mode
// that takes nothing (force share) returns a Lock holding nothing.
func Acquire(path string, mode Mode) (*Lock, error) {
	if mode.Use == 0 && mode.Shared == All {
		return &Lock{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	l := &Lock{f: f}
	if err := l.apply(path, mode); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

func (l *Lock) apply(path string, mode Mode) error {
	for i := range permBits {
		bit := Perm(1) << i
		if mode.Use&bit != 0 {
			if err := lockByte(l.f, permBase+int64(i)); err != nil {
				return fmt.Errorf("%s: Failed to lock byte %d: %w", path, permBase+i, err)
			}
		}
		if mode.Shared&bit == 0 {
			if err := lockByte(l.f, sharedBase+int64(i)); err != nil {
				return fmt.Errorf("%s: Failed to lock byte %d: %w", path, sharedBase+i, err)
			}
		}
	}
	for i := range permBits {
		if mode.Use&(1<<i) == 0 {
			continue
		}
		if busy, err := lockedByOther(l.f, sharedBase+int64(i)); err != nil || busy {
			return conflict(path, i, false, err)
		}
	}
	for i := range permBits {
		if mode.Shared&(1<<i) != 0 {
			continue
		}
		if busy, err := lockedByOther(l.f, permBase+int64(i)); err != nil || busy {
			return conflict(path, i, true, err)
		}
	}
	return nil
}

func conflict(path string, bit int, shared bool, err error) error {
	if err != nil {
		return fmt.Errorf("%s: testing lock byte: %w", path, err)
	}
	return &ConflictError{Path: path, Perm: permName(bit), Shared: shared}
}

// Release drops the locks (unlocking, then closing their descriptor).
// Safe on nil.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		unlockAll(l.f)
		l.f.Close()
		l.f = nil
	}
}
