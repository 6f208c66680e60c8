package formats

import (
	"fmt"
	"io"
	"os"

	"github.com/vdiskio/vdisk/internal/blockdev"
	"github.com/vdiskio/vdisk/internal/sparse"
)

// osFile is a File over an OS file or disk device. It implements every
// optional File capability.
type osFile struct {
	f        *os.File
	writable bool
	device   bool // disk device: fixed size from the OS's disk-size call
	// holes are the hole operations, sparse.Native() unless a test picks
	// the portable fallback.
	holes sparse.Ops
	// openSize is the size of a regular file opened read-only (a source),
	// taken at open: a read that ends short of it means the file shrank
	// under vdisk, which is an ErrSourceChanged, never zeros. 0 otherwise.
	openSize int64
}

// OpenOSFile opens a regular file or disk device. A directory, FIFO, socket
// or a character device that is not a disk is refused. Disks (Linux and
// macOS block devices, FreeBSD's and macOS's raw character disks, Windows'
// \\.\PhysicalDriveN and volumes) are always read-only sources (P2V);
// writable=true on a disk is refused.
func OpenOSFile(path string, writable bool) (File, error) {
	if blockdev.IsDevicePath(path) {
		return openDisk(path, writable)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	mode := st.Mode()
	switch {
	case mode.IsDir():
		return nil, fmt.Errorf("%s: is a directory", path)
	case mode&os.ModeDevice != 0:
		return openDisk(path, writable)
	case !mode.IsRegular():
		return nil, fmt.Errorf("%s: not a regular file or block device", path)
	}
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	o := &osFile{f: f, writable: writable, holes: sparse.Native()}
	if !writable {
		if st, err := f.Stat(); err == nil {
			o.openSize = st.Size()
		}
	}
	return o, nil
}

// openDisk opens a device read-only and keeps it if the OS says it is a disk.
func openDisk(path string, writable bool) (File, error) {
	if writable {
		return nil, fmt.Errorf("%s: block devices are opened read-only: %w", path, ErrReadOnly)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !blockdev.IsDisk(f) {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file or block device", path)
	}
	return &osFile{f: f, device: true, holes: sparse.Native()}, nil
}

// NewOSFile wraps an already open *os.File (for example a temporary output
// file) as a writable File.
func NewOSFile(f *os.File) File { return &osFile{f: f, writable: true, holes: sparse.Native()} }

func (o *osFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.f.ReadAt(p, off)
	if err == io.EOF && off+int64(n) < o.openSize {
		return n, o.shrank(off + int64(n))
	}
	return n, err
}

// shrank is the error for a source found shorter than it was at open (at
// is where the bytes ran out).
func (o *osFile) shrank(at int64) error {
	now := "is gone"
	if st, err := o.f.Stat(); err == nil {
		now = fmt.Sprintf("is %d bytes now", st.Size())
	}
	return &Error{File: o.f.Name(), Structure: "file", Offset: at, Kind: ErrSourceChanged,
		Msg: fmt.Sprintf("was %d bytes when opened and %s: it shrank during the read", o.openSize, now)}
}

// checkSize returns ErrSourceChanged when a source opened read-only no
// longer holds the bytes up to end that it held at open.
func (o *osFile) checkSize(end int64) error {
	want := min(end, o.openSize)
	if want <= 0 {
		return nil
	}
	st, err := o.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < want {
		return o.shrank(st.Size())
	}
	return nil
}

// maxWriteBytes caps one write(2) call. Larger writes into the page cache
// ask the kernel for larger folios (Linux 6.x ext4, XFS: the folio order
// follows the write's length), which on a guest whose free memory is
// reported to the host (virtio-balloon free page reporting) come from
// pageblocks the host must fault in again: measured on such a VM (Linux
// 6.18, ext4), 1.5 GiB written in 2 MiB calls took 5-15x the time of the
// same bytes in 256 KiB calls, with 4x the system time; and in 256 KiB
// calls, in some series of runs, 2-3x the CPU time of 128 KiB calls
// (median 1.77 s against 0.63 s over 9 interleaved runs, cp
// --sparse=always, which writes 128 KiB, at 0.49). Other series show
// slow runs at every size, cp's 128 KiB included, but fewer the smaller
// the calls; 64 KiB cost the same as 128 KiB; the extra syscalls (8192
// per GiB) are not measurable.
const maxWriteBytes = 128 << 10

func (o *osFile) WriteAt(p []byte, off int64) (int, error) {
	if !o.writable {
		return 0, fmt.Errorf("%s: %w", o.f.Name(), ErrReadOnly)
	}
	done := 0
	for done < len(p) {
		n, err := o.f.WriteAt(p[done:min(len(p), done+maxWriteBytes)], off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (o *osFile) Size() (int64, error) {
	if o.device {
		return blockdev.Size(o.f)
	}
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (o *osFile) Truncate(size int64) error {
	if !o.writable {
		return fmt.Errorf("%s: %w", o.f.Name(), ErrReadOnly)
	}
	return o.f.Truncate(size)
}

func (o *osFile) Sync() error  { return o.f.Sync() }
func (o *osFile) Close() error { return o.f.Close() }
func (o *osFile) Name() string { return o.f.Name() }

// FixedSize is true for a disk device.
func (o *osFile) FixedSize() bool { return o.device }

// Runs finds the holes with the OS's call (SEEK_DATA/SEEK_HOLE,
// FSCTL_QUERY_ALLOCATED_RANGES), or reports all data.
func (o *osFile) Runs(off, length int64) ([]FileRun, error) {
	runs, err := o.holes.Runs(o.f, off, length)
	// A hole past a shrunk source's new end would read as zeros, and a
	// source cut short between two seeks fails the second (ENXIO): the
	// size, checked after the seeks, tells either case as a shrink.
	if cerr := o.checkSize(off + length); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	out := make([]FileRun, len(runs))
	for i, r := range runs {
		out[i] = FileRun{Offset: r.Offset, Length: r.Length, Hole: r.Hole}
	}
	return out, nil
}

// PunchHole deallocates a range; errors.ErrUnsupported (wrapped) where the
// OS or file system cannot.
func (o *osFile) PunchHole(off, length int64) error {
	if !o.writable {
		return fmt.Errorf("%s: %w", o.f.Name(), ErrReadOnly)
	}
	return o.holes.PunchHole(o.f, off, length)
}

// Allocate reserves blocks; errors.ErrUnsupported (wrapped) where the OS or
// file system cannot.
func (o *osFile) Allocate(off, length int64) error {
	if !o.writable {
		return fmt.Errorf("%s: %w", o.f.Name(), ErrReadOnly)
	}
	return o.holes.Allocate(o.f, off, length)
}

// AllocatedBytes is what the file occupies on disk.
func (o *osFile) AllocatedBytes() (int64, error) { return o.holes.Allocated(o.f) }

// Stat describes the open file (for file identity: os.SameFile).
func (o *osFile) Stat() (os.FileInfo, error) { return o.f.Stat() }
