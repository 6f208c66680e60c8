package sparse

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Native returns macOS's Ops: SEEK_DATA/SEEK_HOLE and fcntl F_PUNCHHOLE
// (APFS). macOS has no call that reserves blocks at an offset (F_PREALLOCATE
// grows from the physical end of file), so Allocate is unsupported, as it is
// for qemu on macOS.
func Native() Ops { return darwinOps{} }

type darwinOps struct{}

func (darwinOps) Runs(f *os.File, off, length int64) ([]Run, error) {
	return seekRuns(f, off, length)
}

// PunchHole calls fcntl(F_PUNCHHOLE, struct fpunchhole). struct fpunchhole
// is {uint32 fp_flags; uint32 reserved; off_t fp_offset; off_t fp_length},
// the first 24 bytes of fstore_t ({uint32 fst_flags; int32 fst_posmode;
// off_t fst_offset; off_t fst_length; off_t fst_bytesalloc}), so FcntlFstore
// passes it with flags and posmode zero. APFS needs offset and length
// aligned to its block size; an unaligned or unsupported request is
// reported unsupported so the caller writes zeros.
func (darwinOps) PunchHole(f *os.File, off, length int64) error {
	req := unix.Fstore_t{Offset: off, Length: length}
	err := unix.FcntlFstore(f.Fd(), unix.F_PUNCHHOLE, &req)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY):
		return fmt.Errorf("%s: fcntl F_PUNCHHOLE: %w (%v)", f.Name(), errors.ErrUnsupported, err)
	}
	return fmt.Errorf("%s: fcntl F_PUNCHHOLE: %w", f.Name(), err)
}

func (darwinOps) Allocate(f *os.File, off, length int64) error {
	return unsupported(f, "reserving blocks (no fallocate on macOS)")
}

func (darwinOps) Allocated(f *os.File) (int64, error) { return blocksAllocated(f) }
