package imagefile

import (
	"fmt"
	"os"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/hostfile"
)

// FileSet records the files an input image uses (the image itself, its
// extents, its backing chain, its data file), so that no output replaces or
// overwrites one of them. Safe for concurrent use; a nil FileSet holds
// nothing.
type FileSet struct {
	mu    sync.Mutex
	files []recorded
}

type recorded struct {
	path string
	st   os.FileInfo
}

// Add records path (ignored when it cannot be stat'ed: nothing is there to
// overwrite).
func (s *FileSet) Add(path string) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = append(s.files, recorded{path: path, st: st})
}

// Watch makes opts record every file its resolver opens.
func (s *FileSet) Watch(opts *formats.OpenOptions) {
	opts.Resolver = watcher{next: opts.References(), set: s}
}

// watcher is a Resolver that records the path of every file it opens.
type watcher struct {
	next formats.Resolver
	set  *FileSet
}

func (w watcher) Resolve(from, ref string) (string, error) { return w.next.Resolve(from, ref) }

func (w watcher) Open(from, ref string, writable bool) (formats.File, error) {
	if path, err := w.next.Resolve(from, ref); err == nil {
		w.set.Add(path)
	}
	return w.next.Open(from, ref, writable)
}

// Unwrap returns the wrapped resolver (formats.PolicyName looks through).
func (w watcher) Unwrap() formats.Resolver { return w.next }

// Check returns an ErrSameFile error when path (symlinks followed, hard
// links and device nodes of the same device included) is a recorded file.
func (s *FileSet) Check(path string) error {
	if s == nil || path == "-" {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		if os.SameFile(st, f.st) || hostfile.SameDevice(st, f.st) {
			return fmt.Errorf("%w: %s is %s, which the input uses; write the output elsewhere", ErrSameFile, path, f.path)
		}
	}
	return nil
}
