//go:build !unix

package hostfile

import "os"

// KeepOwner keeps the permission bits (this OS has no Unix owners).
func KeepOwner(f *os.File, st os.FileInfo) error { return f.Chmod(st.Mode().Perm()) }

// TryLock is not implemented here: every temporary counts as in use, so
// none is removed.
func TryLock(f *os.File) (bool, error) { return false, ErrUnsupported }

// SameDevice is false here: no device nodes.
func SameDevice(a, b os.FileInfo) bool { return false }
