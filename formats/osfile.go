package formats

import (
	"fmt"
	"io"
	"os"
	"sync"

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
	// writeMu makes WriteAt calls take turns. Buffered writes to one file
	// take its inode lock in the kernel (ext4, XFS, btrfs: one writer at a
	// time whatever the offsets), where a second writer spins on the lock
	// while the first copies; waiting here it sleeps instead (interleaved,
	// at priority, load 15: qcow2→raw CPU 0.209→0.181 s and wall
	// 0.169→0.148 s, raw→raw CPU 0.60→0.55 s, medians of 9-11).
	writeMu sync.Mutex
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

// maxWriteBytes caps one write(2) call. The kernel sizes the page-cache
// folios of a buffered write from the write's length and alignment
// (Linux 6.x ext4, XFS): a call covering an aligned 2 MiB gets order-9
// folios, one of 1 MiB order 8, one of 128 KiB order 5. On a guest whose
// free memory is reported to the host (virtio-balloon free page
// reporting, at pageblock order 9), high-order folios come from blocks
// the host discarded, and the first copy into each faults on the host:
// measured on such a VM (Linux 6.18, ext4, 832 MiB written from one
// buffer), aligned 2 MiB calls cost 1.0-2.9 s of system time against
// 0.3-0.6 s for 128 KiB, always (kmem:mm_page_alloc: 416 order-9
// allocations); 1 MiB calls (order 8) were as cheap as 128 KiB in some
// series and 3x dearer in others (when the order-8 free list was empty
// and order-8 folios were split from reported blocks); 64-256 KiB cost
// the same in every series. qemu-img's 2 MiB writes start at extent
// boundaries, not 2 MiB ones, so they get folios of orders 0-8, which is
// why its raw→raw takes 0.4 s in one series and 2 s in the next.
const maxWriteBytes = 128 << 10

// reserveMinBytes is the smallest write whose range is allocated before
// it is written (reserveBeforeWrite): one system call more pays off over
// 8 write calls or more.
const reserveMinBytes = 8 * maxWriteBytes

func (o *osFile) WriteAt(p []byte, off int64) (int, error) {
	if !o.writable {
		return 0, fmt.Errorf("%s: %w", o.f.Name(), ErrReadOnly)
	}
	o.writeMu.Lock()
	defer o.writeMu.Unlock()
	if len(p) >= reserveMinBytes && !o.device {
		reserveBeforeWrite(o.f, off, int64(len(p)))
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
