package faultfile

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/vdiskio/vdisk/formats"
)

// Writes is a formats.File whose writes stop working at a chosen write: a
// disk that dies (or fills up) in the middle of an operation. Reads are
// served from the inner file; WriteAt and Truncate calls are counted from 0,
// and the call numbered FailAt and every call after it fail with an error
// wrapping syscall.EIO without touching the file. Sync succeeds (it is no
// write), without reaching the inner file: the failure model is a write
// that never happens, and every write before it having reached the file;
// skipping the fsync keeps a test that interrupts at every write fast.
// A test runs an operation once with FailAt < 0 to count its
// writes, then once per write index to see what every interruption leaves.
type Writes struct {
	inner  formats.File
	failAt int

	mu     sync.Mutex
	writes int
}

// FailWrites wraps inner so that write number failAt (from 0) and all later
// ones fail; failAt < 0 never fails.
func FailWrites(inner formats.File, failAt int) *Writes {
	return &Writes{inner: inner, failAt: failAt}
}

// Calls is the number of WriteAt and Truncate calls made (failed or not).
func (f *Writes) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// next counts a write call and reports whether it must fail.
func (f *Writes) next() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.writes
	f.writes++
	return f.failAt >= 0 && n >= f.failAt
}

func (f *Writes) fault(op string, off int64) error {
	return &formats.Error{File: f.Name(), Structure: op, Offset: off, Kind: syscall.EIO,
		Msg: fmt.Sprintf("injected write failure (write %d and later fail)", f.failAt)}
}

// WriteAt writes through until the failing write.
func (f *Writes) WriteAt(p []byte, off int64) (int, error) {
	if f.next() {
		return 0, f.fault("write", off)
	}
	return f.inner.WriteAt(p, off)
}

// Truncate counts as a write.
func (f *Writes) Truncate(size int64) error {
	if f.next() {
		return f.fault("truncate", size)
	}
	return f.inner.Truncate(size)
}

func (f *Writes) ReadAt(p []byte, off int64) (int, error) { return f.inner.ReadAt(p, off) }
func (f *Writes) Size() (int64, error)                    { return f.inner.Size() }
func (f *Writes) Sync() error                             { return nil }
func (f *Writes) Close() error                            { return f.inner.Close() }
func (f *Writes) Name() string                            { return f.inner.Name() }
