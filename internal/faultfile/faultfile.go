// Package faultfile is a formats.File that fails the way a dying disk does,
// for tests of code that must survive read errors (rescue, salvage,
// hashing): bad sectors that never read, intermittent sectors that fail a
// number of times and then read, and slow sectors that delay every read
// touching them. It counts the reads it serves per sector, so a test can
// prove that a resumed rescue does not read good areas again, and it
// refuses every write, so a test can prove the source is never written.
//
// A failing read behaves like pread on a block device: the bytes before the
// first failing sector are returned with an error wrapping syscall.EIO.
package faultfile

import (
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// Kind is how a faulty range misbehaves.
type Kind int

const (
	// Bad sectors fail every read.
	Bad Kind = iota
	// Intermittent sectors fail their first Failures reads, then read.
	Intermittent
	// Slow sectors read correctly after Delay.
	Slow
)

// Fault is a misbehaving byte range [Offset, Offset+Length), widened to
// whole sectors.
type Fault struct {
	Offset, Length int64
	Kind           Kind
	Failures       int           // Intermittent: failing reads per sector before it reads
	Delay          time.Duration // Slow: added to each read touching the range
}

// File wraps a formats.File (its content is what good sectors read).
type File struct {
	inner       formats.File
	sectorBytes int64
	faults      []Fault

	mu        sync.Mutex
	failures  map[int64]int // intermittent sector -> failures left
	reads     map[int64]int // sector -> reads that touched it
	readCalls int
	writes    int
}

// New wraps inner with the given faults and sector size (0 means 512).
func New(inner formats.File, sectorBytes int64, faults ...Fault) *File {
	if sectorBytes <= 0 {
		sectorBytes = 512
	}
	f := &File{inner: inner, sectorBytes: sectorBytes, faults: faults,
		failures: map[int64]int{}, reads: map[int64]int{}}
	for _, ft := range faults {
		if ft.Kind != Intermittent {
			continue
		}
		for s := ft.Offset / sectorBytes; s*sectorBytes < ft.Offset+ft.Length; s++ {
			f.failures[s] = ft.Failures
		}
	}
	return f
}

// SectorBytes is the sector size faults are widened to.
func (f *File) SectorBytes() int64 { return f.sectorBytes }

// ReadAt serves good sectors from the inner file and fails at the first bad
// (or still failing intermittent) sector of the request.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.Name(), off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	first, last := off/f.sectorBytes, (off+int64(len(p))-1)/f.sectorBytes
	delay, failAt := f.account(first, last)
	if delay > 0 {
		time.Sleep(delay)
	}
	if failAt < 0 {
		return f.inner.ReadAt(p, off)
	}
	good := max(0, failAt*f.sectorBytes-off)
	n, err := f.inner.ReadAt(p[:good], off)
	if err != nil && err != io.EOF {
		return n, err
	}
	return n, &formats.Error{File: f.Name(), Structure: fmt.Sprintf("sector %d", failAt),
		Offset: failAt * f.sectorBytes, Kind: syscall.EIO, Msg: "injected fault"}
}

// account counts the read of sectors [first, last] and returns the delay
// of the slow ranges it touches and the first sector that fails (-1: none).
func (f *File) account(first, last int64) (time.Duration, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readCalls++
	var delay time.Duration
	failAt := int64(-1)
	for _, ft := range f.faults {
		lo, hi := ft.Offset/f.sectorBytes, (ft.Offset+ft.Length-1)/f.sectorBytes
		if hi < first || lo > last {
			continue
		}
		switch ft.Kind {
		case Slow:
			delay += ft.Delay
		case Bad:
			if s := max(lo, first); failAt < 0 || s < failAt {
				failAt = s
			}
		}
	}
	for s := first; s <= last && (failAt < 0 || s < failAt); s++ {
		if left, ok := f.failures[s]; ok && left > 0 {
			f.failures[s] = left - 1
			failAt = s
		}
	}
	// A device stops at the failing sector: the sectors after it were not
	// read.
	end := last
	if failAt >= 0 {
		end = failAt
	}
	for s := first; s <= end; s++ {
		f.reads[s]++
	}
	return delay, failAt
}

// Reads returns the sum over the sectors in [off, off+length) of the reads
// that reached each (a read stops at its first failing sector).
func (f *File) Reads(off, length int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	total := 0
	for s := off / f.sectorBytes; s*f.sectorBytes < off+length; s++ {
		total += f.reads[s]
	}
	return total
}

// ReadCalls is the number of ReadAt calls served.
func (f *File) ReadCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readCalls
}

// Writes is the number of refused WriteAt and Truncate calls.
func (f *File) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// WriteAt is refused: a failing disk is a source, never written.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	f.writes++
	f.mu.Unlock()
	return 0, fmt.Errorf("%s: %w", f.Name(), formats.ErrReadOnly)
}

// Truncate is refused like WriteAt.
func (f *File) Truncate(int64) error {
	_, err := f.WriteAt(nil, 0)
	return err
}

func (f *File) Size() (int64, error) { return f.inner.Size() }
func (f *File) Sync() error          { return nil }
func (f *File) Close() error         { return f.inner.Close() }
func (f *File) Name() string         { return f.inner.Name() }
