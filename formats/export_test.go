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
