package formats

import (
	"os"

	"github.com/vdiskio/vdisk/internal/sparse"
)

// NewOSFileOps is NewOSFile with the hole operations given, so tests run
// the portable fallback through the same File on any OS.
func NewOSFileOps(f *os.File, ops sparse.Ops) File {
	return &osFile{f: f, writable: true, holes: ops}
}

// NewSourceOSFileOps is a read-only source File of f (its size now taken as
// the size at open) with the hole operations given.
func NewSourceOSFileOps(f *os.File, ops sparse.Ops) (File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return &osFile{f: f, holes: ops, openSize: st.Size()}, nil
}
