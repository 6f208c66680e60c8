package imagefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// destKind is what an output path names, which decides how it is written.
type destKind int

const (
	// destNew: nothing there. The image is written to a temporary file
	// beside it and renamed into place when complete.
	destNew destKind = iota
	// destReplace: an existing regular file, replaced the same way; the
	// temporary gets the old file's owner, group and mode first.
	destReplace
	// destInPlace: a regular file reached through one of this process's
	// descriptors (/dev/stdout redirected to a file): truncated and written
	// where it is, since renaming over it would not reach the descriptor.
	destInPlace
	// destDevice: a block device, written through (never replaced); it
	// must be large enough.
	destDevice
	// destStream: a character device or a FIFO (a pipe): written
	// through in offset order, so only sequential formats fit.
	destStream
)

// destination is an output path, classified.
type destination struct {
	path string // as the caller named it
	real string // symlinks followed: the file written, replaced or created
	kind destKind
	st   os.FileInfo // the existing file; nil for destNew
}

// maxLinks bounds symlink chains, as the kernel does (ELOOP).
const maxLinks = 40

// resolveDest classifies path. A symlink is followed: the file it points to
// is what gets written or replaced, and the link stays.
func resolveDest(path string) (destination, error) {
	d := destination{path: path}
	real, viaFD, err := followLinks(path)
	if err != nil {
		return d, err
	}
	d.real = real
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil // destNew, created at real (a dangling link's target)
	}
	if err != nil {
		return d, err
	}
	d.st = st
	m := st.Mode()
	switch {
	case m.IsDir():
		return d, fmt.Errorf("%s: is a directory", path)
	case m.IsRegular() && viaFD:
		d.kind, d.real = destInPlace, path
	case m.IsRegular():
		d.kind = destReplace
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
		// Devices and pipes are opened by the name given: the kernel
		// follows the links (magic /proc links included).
		d.kind, d.real = destDevice, path
	case m&fs.ModeSocket != 0:
		return d, fmt.Errorf("%s: is a socket; write to a file, a device or a pipe", path)
	default: // character device, FIFO
		d.kind, d.real = destStream, path
	}
	return d, nil
}

// followLinks follows the symlinks of path's last element and returns the
// file they lead to (which may not exist yet). viaFD reports a chain
// through /proc/*/fd or /dev/fd, whose targets are open descriptors rather
// than names a rename could replace.
func followLinks(path string) (real string, viaFD bool, err error) {
	real = path
	for range maxLinks {
		st, err := os.Lstat(real)
		if errors.Is(err, fs.ErrNotExist) {
			return real, viaFD, nil
		}
		if err != nil {
			return "", false, err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			return real, viaFD, nil
		}
		if isFDLink(real) {
			return real, true, nil
		}
		target, err := os.Readlink(real)
		if err != nil {
			return "", false, err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(real), target)
		}
		real = target
	}
	return "", false, fmt.Errorf("%s: too many levels of symbolic links", path)
}

// isFDLink reports a /proc/PID/fd/N, /proc/self/fd/N or /dev/fd/N name.
func isFDLink(p string) bool {
	dir := filepath.Dir(filepath.Clean(p))
	return dir == "/dev/fd" || (strings.HasPrefix(dir, "/proc/") && filepath.Base(dir) == "fd")
}
