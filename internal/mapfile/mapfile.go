package mapfile

import (
	"errors"
	"runtime/debug"
)

// Mapping is a mapped range of a file. Close unmaps it; one that is
// dropped without Close (a conversion abandoned halfway) is unmapped when
// the garbage collector finds it unreachable.
type Mapping struct {
	bytes []byte // the caller's range
	pages *pages // what is mapped, shared with the cleanup
}

// pages are the mapped pages, from a page boundary; nil once unmapped.
type pages struct{ whole []byte }

// Bytes are the mapped bytes of the range asked for.
func (m *Mapping) Bytes() []byte { return m.bytes }

// ErrFault is what Guard returns when the function touched a mapped page
// that is gone (the file shrank, or the disk failed).
var ErrFault = errors.New("mapfile: fault reading a mapped page")

// Guard runs fn, turning a memory fault inside it (a mapped page that
// cannot be read) into ErrFault instead of a crash.
func Guard(fn func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); ok { // a runtime.Error for a memory fault
				err = ErrFault
				return
			}
			panic(r)
		}
	}()
	fn()
	return nil
}
