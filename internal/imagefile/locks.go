package imagefile

import (
	"errors"
	"io/fs"
	"os"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagelock"
)

// LockRole is how an image is used, which decides the qemu image locks
// taken on its files (see internal/imagelock).
type LockRole int

const (
	// LockRead: read-only use (map, check, compare, dd's input).
	LockRead LockRole = iota
	// LockSource: a conversion's input, which nobody may write or resize
	// meanwhile, raw included (qemu-img convert's rule).
	LockSource
	// LockWrite: the image is written (resize, check -r, convert -n).
	LockWrite
	// LockInfo: info, which reads only metadata.
	LockInfo
	// LockResize: resize, which writes and changes the size.
	LockResize
)

// Locks are the qemu image locks held on the files of open images.
type Locks struct{ held []*imagelock.Lock }

// Release drops every lock. Safe on nil.
func (l *Locks) Release() {
	if l == nil {
		return
	}
	for _, h := range l.held {
		h.Release()
	}
	l.held = nil
}

// Lock takes the locks for img, opened from path in role, and read locks
// on the files of its backing chain, as qemu takes them: a conflict with a
// running qemu (or another vdisk) is an error in qemu's words ("Failed to
// get "write" lock"). Names that are not local files (streams, NBD URLs)
// take none.
func (l *Locks) Lock(path string, img formats.Image, role LockRole) error {
	if path == "" || path == "-" {
		return nil
	}
	if err := l.take(path, modeFor(img.Format(), role)); err != nil {
		return err
	}
	if role == LockInfo {
		return nil // info opens no backing files
	}
	for layer := img; ; {
		b, ok := layer.(formats.Backer)
		if !ok || b.Backing() == nil || b.BackingPath() == "" {
			return nil
		}
		layer = b.Backing()
		if err := l.take(b.BackingPath(), modeFor(layer.Format(), LockRead)); err != nil {
			return err
		}
	}
}

// LockPath takes a writer's locks on path for an image of format that is
// about to be written or replaced (a destination).
func (l *Locks) LockPath(path, format string) error {
	return l.take(path, modeFor(format, LockWrite))
}

func (l *Locks) take(path string, mode imagelock.Mode) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil // not a local file (an NBD URL): no lock bytes to take
	}
	h, err := imagelock.Acquire(path, mode)
	if err != nil {
		return err
	}
	l.held = append(l.held, h)
	return nil
}

// modeFor is qemu 7.2's permission set for a role and format.
func modeFor(format string, role LockRole) imagelock.Mode {
	raw := format == "raw"
	switch role {
	case LockSource:
		return imagelock.Reader
	case LockWrite, LockResize:
		if raw && role == LockResize {
			return imagelock.Mode{Use: imagelock.RawWriter.Use | imagelock.Resize, Shared: imagelock.All}
		}
		if raw {
			return imagelock.RawWriter
		}
		return imagelock.Writer
	case LockInfo:
		if raw {
			return imagelock.Mode{Shared: imagelock.All}
		}
		return imagelock.Info
	}
	if raw {
		return imagelock.RawReader
	}
	return imagelock.Reader
}
