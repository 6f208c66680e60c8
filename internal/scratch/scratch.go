package scratch

import (
	"errors"
	"os"
	"runtime"

	"github.com/vdiskio/vdisk/formats"
)

// File is a scratch file, read and written as a formats.File.
type File struct {
	formats.File
	path string // "" once unlinked
}

// Create makes a scratch file in dir, its name made from pattern as
// os.CreateTemp makes it.
func Create(dir, pattern string) (*File, error) {
	osf, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	f := &File{File: formats.NewOSFile(osf), path: osf.Name()}
	if runtime.GOOS != "windows" && os.Remove(osf.Name()) == nil {
		f.path = ""
	}
	return f, nil
}

// Runs forwards to the OS file's hole finder (SEEK_DATA, SEEK_HOLE).
func (f *File) Runs(off, length int64) ([]formats.FileRun, error) {
	if h, ok := f.File.(formats.HoleFinder); ok {
		return h.Runs(off, length)
	}
	return []formats.FileRun{{Offset: off, Length: length}}, nil
}

// Close closes the file and removes it if it was not unlinked at creation.
func (f *File) Close() error {
	err := f.File.Close()
	if f.path != "" {
		if rerr := os.Remove(f.path); err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	return err
}
