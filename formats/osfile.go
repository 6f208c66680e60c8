package formats

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vdiskio/vdisk/internal/sparse"
)

// osFile is a File over an OS file or block device.
type osFile struct {
	f        *os.File
	writable bool
	device   bool // block device: fixed size from BLKGETSIZE64
}

// OpenOSFile opens a regular file or block device. A directory, FIFO, socket
// or character device is refused. Block devices are always read-only
// sources (P2V); writable=true on a device is refused.
func OpenOSFile(path string, writable bool) (File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	mode := st.Mode()
	device := mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0
	switch {
	case mode.IsDir():
		return nil, fmt.Errorf("%s: is a directory", path)
	case !mode.IsRegular() && !device:
		return nil, fmt.Errorf("%s: not a regular file or block device", path)
	case device && writable:
		return nil, fmt.Errorf("%s: block devices are opened read-only: %w", path, ErrReadOnly)
	}
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f, writable: writable, device: device}, nil
}

// NewOSFile wraps an already open *os.File (for example a temporary output
// file) as a writable File.
func NewOSFile(f *os.File) File { return &osFile{f: f, writable: true} }

// OSFileOf returns the *os.File behind a File made by this package, or nil.
func OSFileOf(f File) *os.File {
	if o, ok := f.(*osFile); ok {
		return o.f
	}
	return nil
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

func (o *osFile) WriteAt(p []byte, off int64) (int, error) {
	if !o.writable {
		return 0, fmt.Errorf("%s: %w", o.f.Name(), ErrReadOnly)
	}
	return o.f.WriteAt(p, off)
}

func (o *osFile) Size() (int64, error) {
	if o.device {
		var size uint64
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, o.f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
		if errno != 0 {
			return 0, fmt.Errorf("%s: BLKGETSIZE64: %w", o.f.Name(), errno)
		}
		return int64(size), nil
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

// FileExtents maps length bytes of f starting at file offset fileOff to
// extents at virtual offset virtOff: file holes (found with SEEK_DATA and
// SEEK_HOLE) are Zero, the rest Data, HostOffset being the file offset.
// A File that is not an OS file reports one Data extent. Drivers whose
// disk bytes are a plain file range (raw, fixed VHD, flat VMDK extents, ISO)
// use it so that converting them never reads holes.
func FileExtents(f File, virtOff, fileOff, length int64) ([]Extent, error) {
	if length <= 0 {
		return nil, nil
	}
	osf := OSFileOf(f)
	if osf == nil {
		return []Extent{{Offset: virtOff, Length: length, Kind: Data, HostOffset: fileOff}}, nil
	}
	runs, err := sparse.Runs(osf, fileOff, length)
	if err != nil {
		return nil, fmt.Errorf("%s: finding holes: %w", f.Name(), err)
	}
	exts := make([]Extent, 0, len(runs))
	for _, r := range runs {
		kind := Data
		if r.Hole {
			kind = Zero
		}
		exts = append(exts, Extent{Offset: r.Offset - fileOff + virtOff, Length: r.Length, Kind: kind, HostOffset: r.Offset})
	}
	return exts, nil
}
