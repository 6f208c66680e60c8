package raw

import (
	"context"
	"errors"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "raw"

func init() {
	formats.Register(&formats.Driver{
		Name:          Name,
		Probe:         func(formats.ProbeInput) int { return formats.ProbeRaw },
		Open:          Open,
		Create:        imageio.CreateWith(Create),
		CreateOptions: formats.OptionSpecsOf(CreateOptions{}),
		Measure:       measure,
	})
}

// CreateOptions are qemu's raw create options, typed: the zero value is
// qemu-img's defaults.
type CreateOptions struct {
	Preallocation string `opt:"preallocation" default:"off" values:"off,falloc,full" help:"Preallocation mode (allowed values: off, falloc, full)"`
}

// Image is an open raw image.
type Image struct {
	f      formats.File
	size   int64
	stream bool // f takes writes in offset order only (a pipe): sized at Flush
}

// Open opens f as a raw image.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if err := opts.Limits.CheckVirtualSize(f.Name(), size); err != nil {
		return nil, err
	}
	return &Image{f: f, size: size}, nil
}

// Create makes a raw image of req.Size bytes in req.File.
func Create(ctx context.Context, req formats.CreateRequest) (*Image, error) {
	if req.Size < 0 {
		return nil, fmt.Errorf("%s: negative size", req.Name)
	}
	img := &Image{f: req.File, size: req.Size}
	var opts CreateOptions
	if err := req.Options.Decode(&opts); err != nil {
		return nil, err
	}
	mode := opts.Preallocation
	if sf, ok := req.File.(formats.SequentialWriter); ok && sf.Sequential() {
		// A stream is written in order: the tail is padded at Flush.
		if mode != "" && mode != "off" {
			return nil, formats.Unsupportedf(req.Name, "Unsupported preallocation mode '%s': preallocation is unsupported for this non-regular file", mode)
		}
		img.stream = true
		return img, nil
	}
	if err := req.File.Truncate(req.Size); err != nil {
		return nil, err
	}
	switch mode {
	case "falloc":
		pa, ok := req.File.(formats.Preallocator)
		if !ok {
			return nil, formats.Unsupportedf(req.Name, "Unsupported preallocation mode 'falloc': preallocation is unsupported for this non-regular file")
		}
		if err := pa.Allocate(0, req.Size); err != nil {
			if errors.Is(err, errors.ErrUnsupported) {
				return nil, formats.Unsupportedf(req.Name, "preallocation=falloc on this OS or file system (%v)", err)
			}
			return nil, fmt.Errorf("%s: preallocating: %w", req.Name, err)
		}
	case "full":
		if err := fileio.ZeroFill(ctx, req.File, 0, req.Size); err != nil {
			return nil, fmt.Errorf("%s: preallocating: %w", req.Name, err)
		}
	}
	return img, nil
}

func (img *Image) Size() int64    { return img.size }
func (img *Image) Format() string { return Name }
func (img *Image) Close() error   { return img.f.Close() }

// ReadAt reads the file's bytes.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(p, off, img.size)
	if n == 0 {
		return 0, eof
	}
	got, err := img.f.ReadAt(p[:n], off)
	if got < n {
		if err == nil {
			err = fmt.Errorf("%s: short read at offset %d", img.f.Name(), off+int64(got))
		}
		return got, err
	}
	return n, eof
}

// Extents reports file holes as Zero and everything else as Data; host
// offsets equal virtual offsets.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	return imageio.FileExtents(img.f, off, off, min(length, img.size-off))
}

// WriteAt writes bytes in place.
func (img *Image) WriteAt(p []byte, off int64) (int, error) {
	if err := imageio.CheckWrite(img.f.Name(), len(p), off, img.size); err != nil {
		return 0, err
	}
	return img.f.WriteAt(p, off)
}

// WriteZeroes punches a hole (or writes zeros where holes are not possible).
func (img *Image) WriteZeroes(off, length int64) error {
	if err := imageio.CheckWrite(img.f.Name(), 0, off, img.size); err != nil || length > img.size-off {
		return fmt.Errorf("%s: zero range %d+%d outside the disk", img.f.Name(), off, length)
	}
	return fileio.ZeroRange(img.f, off, length)
}

// ConcurrentWrites is true for a file: raw writes are positional writes
// into it at the same offsets, which io.WriterAt allows in parallel on
// disjoint ranges, and raw keeps no metadata to update. A stream takes its
// writes in order, one at a time.
func (img *Image) ConcurrentWrites() bool { return !img.stream }

// Flush has nothing to do on a file (raw has no metadata); a stream is
// padded with zeros to the image's size.
func (img *Image) Flush() error {
	if img.stream {
		return img.f.Truncate(img.size)
	}
	return nil
}

// Sequential reports that the image is written to a stream, in order.
func (img *Image) Sequential() bool { return img.stream }

// Resize truncates or extends the file.
func (img *Image) Resize(ctx context.Context, newSize int64, shrink bool) error {
	if newSize < img.size && !shrink {
		return fmt.Errorf("%s: use the --shrink option to perform a shrink operation", img.f.Name())
	}
	if err := img.f.Truncate(newSize); err != nil {
		return err
	}
	img.size = newSize
	return nil
}

// Preallocate allocates [off, off+length) of the file (resize
// --preallocation): falloc reserves blocks, full writes zeros, metadata
// (which raw has none of) does nothing, as qemu treats it. Writing zeros
// stops with ctx's error once ctx is done.
func (img *Image) Preallocate(ctx context.Context, off, length int64, mode string) error {
	switch mode {
	case "falloc":
		pa, ok := img.f.(formats.Preallocator)
		if !ok {
			return formats.Unsupportedf(img.f.Name(), "Unsupported preallocation mode 'falloc': preallocation is unsupported for this non-regular file")
		}
		return pa.Allocate(off, length)
	case "full":
		return fileio.ZeroFill(ctx, img.f, off, length)
	case "metadata", "off":
		return nil
	}
	return formats.Unsupportedf(img.f.Name(), "Unsupported preallocation mode '%s'", mode)
}

// measure: a raw image needs its whole virtual size, allocated or not, as
// qemu reports it.
func measure(ctx context.Context, req formats.MeasureRequest) (formats.Measurement, error) {
	return formats.Measurement{Required: req.Size, FullyAllocated: req.Size, Bitmaps: -1}, nil
}

// RawRange: a raw image stores every byte at its own offset of the file
// (not a stream, which cannot be written out of band).
func (img *Image) RawRange(off int64) (formats.File, int64, int64) {
	if img.stream || off < 0 || off >= img.size {
		return nil, 0, 0
	}
	return img.f, off, img.size - off
}
