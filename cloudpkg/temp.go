package cloudpkg

import (
	"errors"
	"os"
	"runtime"

	"github.com/vdiskio/vdisk/formats"
)

// tempFile is a scratch file beside the output: unlinked at creation where
// the OS allows it (it vanishes however the process ends), removed on
// Close elsewhere (Windows).
type tempFile struct {
	formats.File
	path string // "" once unlinked
}

func newTempFile(dir, pattern string) (*tempFile, error) {
	osf, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	f := &tempFile{File: formats.NewOSFile(osf), path: osf.Name()}
	if runtime.GOOS != "windows" && os.Remove(osf.Name()) == nil {
		f.path = ""
	}
	return f, nil
}

// Runs forwards to the OS file's hole finder (SEEK_DATA, SEEK_HOLE).
func (f *tempFile) Runs(off, length int64) ([]formats.FileRun, error) {
	if h, ok := f.File.(formats.HoleFinder); ok {
		return h.Runs(off, length)
	}
	return []formats.FileRun{{Offset: off, Length: length}}, nil
}

func (f *tempFile) Close() error {
	err := f.File.Close()
	if f.path != "" {
		if rerr := os.Remove(f.path); err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	return err
}

// kept is the temporary file as the inner image writer sees it: its Close
// leaves the file open for the packaging that follows.
type kept struct{ *tempFile }

func (kept) Close() error { return nil }
