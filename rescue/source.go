package rescue

import (
	"fmt"
	"io"
	"os"
)

// Source is a disk or file being rescued, opened read-only: never written,
// never locked.
type Source struct {
	f    sourceFile
	size int64
}

// sourceFile is what a Source reads: an OS file, or a remote File (an NBD
// export) from Job.OpenRemote.
type sourceFile interface {
	io.ReaderAt
	Name() string
	Close() error
}

// RemoteSource makes a Source of an open remote file of size bytes.
func RemoteSource(f sourceFile, size int64) *Source { return &Source{f: f, size: size} }

// OpenSource opens path (a block device or a file) read-only; direct asks
// for O_DIRECT (uncached reads, where the OS has them: see openDirect), so
// a failing disk's reads are not retried and cached by the kernel on their
// way.
func OpenSource(path string, direct bool) (*Source, error) {
	var f *os.File
	var err error
	if direct {
		f, err = openDirect(path)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	// Seeking to the end gives a block device's size as well as a file's.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: finding the size: %w", path, err)
	}
	return &Source{f: f, size: size}, nil
}

// ReadAt reads from the source.
func (s *Source) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

// Size is the source's size in bytes.
func (s *Source) Size() int64 { return s.size }

// Name is the path it was opened with.
func (s *Source) Name() string { return s.f.Name() }

// Close closes it.
func (s *Source) Close() error { return s.f.Close() }
