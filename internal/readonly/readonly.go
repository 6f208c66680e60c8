// Package readonly is what the read-only sources share as formats.File: a
// compressed image read in place, a remote object and a split set are read
// where they are and never written, so each refuses WriteAt and Truncate
// with formats.ErrReadOnly, naming itself.
//
//	type Set struct {
//		readonly.File
//		...
//	}
//	s := &Set{File: readonly.New(path, "a split set is read-only")}
package readonly

import (
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// File is embedded by a read-only formats.File for its Name, WriteAt and
// Truncate; the embedding source reads and closes.
type File struct {
	name string // as shown: the name it was opened by (redacted for a URL)
	why  string // said after formats.ErrReadOnly; "" says nothing more
}

// New is the read-only side of a source called name; why, if not empty,
// follows formats.ErrReadOnly in the refusals.
func New(name, why string) File { return File{name: name, why: why} }

// Name is the name the source was opened by (references resolve beside it).
func (f File) Name() string { return f.name }

// WriteAt refuses: the source is read-only.
func (f File) WriteAt([]byte, int64) (int, error) { return 0, f.refusal() }

// Truncate refuses: the source is read-only.
func (f File) Truncate(int64) error { return f.refusal() }

func (f File) refusal() error {
	if f.why == "" {
		return fmt.Errorf("%s: %w", f.name, formats.ErrReadOnly)
	}
	return fmt.Errorf("%s: %w: %s", f.name, formats.ErrReadOnly, f.why)
}
