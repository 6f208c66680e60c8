// Package fileio has formats.File implementations that are not OS files:
// memory files for tests and fuzzing, and files that fail on purpose.
package fileio

import (
	"fmt"
	"io"
	"sync"

	"github.com/vdiskio/vdisk/formats"
)

// Mem is a formats.File in memory, safe for concurrent use.
type Mem struct {
	mu       sync.RWMutex
	name     string
	data     []byte
	ReadOnly bool
}

// NewMem returns a memory file holding a copy of data.
func NewMem(name string, data []byte) *Mem {
	return &Mem{name: name, data: append([]byte(nil), data...)}
}

// Bytes returns a copy of the content.
func (m *Mem) Bytes() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]byte(nil), m.data...)
}

func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", m.name)
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ReadOnly {
		return 0, fmt.Errorf("%s: %w", m.name, formats.ErrReadOnly)
	}
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", m.name)
	}
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.grow(end)
	}
	return copy(m.data[off:], p), nil
}

func (m *Mem) grow(size int64) {
	if size <= int64(cap(m.data)) {
		m.data = m.data[:size]
		return
	}
	nd := make([]byte, size, max(size, 2*int64(cap(m.data))))
	copy(nd, m.data)
	m.data = nd
}

func (m *Mem) Size() (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.data)), nil
}

func (m *Mem) Truncate(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ReadOnly {
		return fmt.Errorf("%s: %w", m.name, formats.ErrReadOnly)
	}
	if size < int64(len(m.data)) {
		clear(m.data[size:])
		m.data = m.data[:size]
		return nil
	}
	m.grow(size)
	return nil
}

func (m *Mem) Sync() error  { return nil }
func (m *Mem) Close() error { return nil }
func (m *Mem) Name() string { return m.name }

// Faulty wraps a File and fails reads or writes that touch a byte range.
type Faulty struct {
	formats.File
	FailFrom, FailTo int64 // [FailFrom, FailTo) fails
	FailReads        bool
	FailWrites       bool
	FailSync         bool
	Err              error // the error returned; default io.ErrUnexpectedEOF
}

func (f *Faulty) hit(n int, off int64) bool {
	return off < f.FailTo && off+int64(n) > f.FailFrom
}

func (f *Faulty) err() error {
	if f.Err != nil {
		return f.Err
	}
	return io.ErrUnexpectedEOF
}

func (f *Faulty) ReadAt(p []byte, off int64) (int, error) {
	if f.FailReads && f.hit(len(p), off) {
		return 0, f.err()
	}
	return f.File.ReadAt(p, off)
}

func (f *Faulty) WriteAt(p []byte, off int64) (int, error) {
	if f.FailWrites && f.hit(len(p), off) {
		return 0, f.err()
	}
	return f.File.WriteAt(p, off)
}

func (f *Faulty) Sync() error {
	if f.FailSync {
		return f.err()
	}
	return formats.Sync(f.File)
}
