// Package fileid identifies open files, so that a backing chain can refuse a
// file already in it and a driver can open an extent named twice only once:
// OS files by device and inode (os.SameFile; the volume and file index on
// Windows), other files (memory files, remote backends) by their cleaned
// absolute name.
package fileid

import (
	"os"
	"path/filepath"
)

// ID identifies one file. Compare two with Same.
type ID struct {
	info os.FileInfo
	name string
}

// Named is what Of needs of a file: its name, and Stat when it is an OS
// file (formats.File values are Named).
type Named interface {
	Name() string
}

type statter interface {
	Stat() (os.FileInfo, error)
}

// Of returns f's identity.
func Of(f Named) ID {
	if s, ok := f.(statter); ok {
		if fi, err := s.Stat(); err == nil {
			return ID{info: fi}
		}
	}
	return ID{name: absName(f.Name())}
}

// OfPath identifies a file by path (the naming image of a driver opened
// directly, without formats.OpenFile).
func OfPath(path string) ID {
	if fi, err := os.Stat(path); err == nil {
		return ID{info: fi}
	}
	return ID{name: absName(path)}
}

func absName(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return filepath.Clean(name)
}

// Same reports whether a and b identify the same file.
func (a ID) Same(b ID) bool {
	if a.info != nil && b.info != nil {
		return os.SameFile(a.info, b.info)
	}
	return a.info == nil && b.info == nil && a.name == b.name
}
