package imagefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/hostfile"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// errCannotGrow is qemu's wording for an image that does not fit its device.
const errCannotGrow = "Cannot grow device files"

// deviceFile is a block device seen as a new file that may grow up to the
// device's capacity, so that every driver writes onto it as onto a fresh
// file: its size is what was written (or truncated to) so far, reads past
// that end see EOF, and, for container formats (zeroGrow), a range the file
// grows over is zeroed on the device first. Writing past the capacity is
// qemu's "Cannot grow device files".
type deviceFile struct {
	f        *os.File
	capacity int64 // device bytes (BLKGETSIZE64)
	zeroGrow bool  // zero the range the file grows over
	// direct, when not nil, is the device opened with O_DIRECT (-t none):
	// writes aligned to directAlign in offset, length and memory go
	// through it, the rest through f.
	direct *os.File

	mu  sync.Mutex
	end int64 // the file's size so far
}

func (d *deviceFile) Name() string { return d.f.Name() }

func (d *deviceFile) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	end := d.end
	d.mu.Unlock()
	n, eof := imageio.ClipRead(p, off, end)
	if n == 0 {
		return 0, eof
	}
	got, err := d.f.ReadAt(p[:n], off)
	if got < n {
		return got, err
	}
	return n, eof
}

func (d *deviceFile) WriteAt(p []byte, off int64) (int, error) {
	if err := d.grow(off + int64(len(p))); err != nil {
		return 0, err
	}
	if d.direct != nil && aligned(p, off) {
		n, err := d.direct.WriteAt(p, off)
		if err == nil || !errors.Is(err, syscall.EINVAL) {
			return n, err
		}
	}
	return d.f.WriteAt(p, off)
}

// directAlign is the alignment O_DIRECT writes get (the largest logical
// block size in use; smaller or unaligned writes are buffered).
const directAlign = 4096

func aligned(p []byte, off int64) bool {
	return len(p) > 0 && off%directAlign == 0 && len(p)%directAlign == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// grow extends the file's size to size, zeroing the new range when asked.
func (d *deviceFile) grow(size int64) error {
	if size > d.capacity {
		return fmt.Errorf("%s: %s (the device has %d bytes, the image needs %d)", d.f.Name(), errCannotGrow, d.capacity, size)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if size <= d.end {
		return nil
	}
	if d.zeroGrow {
		if err := d.zero(d.end, size-d.end); err != nil {
			return err
		}
	}
	d.end = size
	return nil
}

func (d *deviceFile) Size() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.end, nil
}

// Truncate sets the file's size: growing checks the capacity (and zeroes),
// shrinking only moves the end.
func (d *deviceFile) Truncate(size int64) error {
	if err := d.grow(size); err != nil {
		return err
	}
	d.mu.Lock()
	d.end = size
	d.mu.Unlock()
	return nil
}

// ZeroRange makes a range read as zeros with the device's own zeroing
// (discard that guarantees zeros, BLKZEROOUT), else by writing zeros.
func (d *deviceFile) ZeroRange(off, length int64) error {
	if err := d.grow(off + length); err != nil {
		return err
	}
	return d.zero(off, length)
}

func (d *deviceFile) zero(off, length int64) error {
	if err := hostfile.ZeroDevice(d.f, off, length); err == nil {
		return nil
	}
	return fileio.WriteZeros(d.f, off, length)
}

func (d *deviceFile) Sync() error { return d.f.Sync() }

// Close flushes the device (what was written must be on it when the
// command reports success) and closes it.
func (d *deviceFile) Close() error {
	err := d.f.Sync()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	if d.direct != nil {
		d.direct.Close()
	}
	return err
}

// streamFile is a sequential output on an OS file (a FIFO, a character
// device): a fileio.Stream that also closes the file.
type streamFile struct {
	*fileio.Stream
	f *os.File
}

func newStreamFile(f *os.File) *streamFile {
	return &streamFile{Stream: fileio.NewStream(f, f.Name()), f: f}
}

func (s *streamFile) Close() error { return s.f.Close() }

var (
	_ formats.File = (*deviceFile)(nil)
	_ formats.File = (*streamFile)(nil)
	_ io.Closer    = (*streamFile)(nil)
)
