package sparse

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Native returns Linux's Ops: SEEK_DATA/SEEK_HOLE and fallocate.
func Native() Ops { return linuxOps{} }

type linuxOps struct{}

func (linuxOps) Runs(f *os.File, off, length int64) ([]Run, error) {
	return seekRuns(f, off, length)
}

func (linuxOps) PunchHole(f *os.File, off, length int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	return notSupported(f, "fallocate PUNCH_HOLE", err)
}

func (linuxOps) Allocate(f *os.File, off, length int64) error {
	return notSupported(f, "fallocate", unix.Fallocate(int(f.Fd()), 0, off, length))
}

func (linuxOps) Allocated(f *os.File) (int64, error) { return blocksAllocated(f) }

// notSupported wraps EOPNOTSUPP (a file system without the call) as
// errors.ErrUnsupported, and names the call in other errors.
func notSupported(f *os.File, call string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%s: %s: %w (%v)", f.Name(), call, errors.ErrUnsupported, err)
	}
	return fmt.Errorf("%s: %s: %w", f.Name(), call, err)
}
