package imagefile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/source/remote"
)

// ErrSameFile: the output would overwrite the input (convert.ErrSameFile).
var ErrSameFile = errors.New("input and output are the same file")

// CouldNotOpen words a failure to open path as qemu-img does ("Could not
// open 'FILE': ..."), with the C library's wording for a missing file or a
// permission error ("No such file or directory"): clients match these
// phrases on qemu-img's stderr (Nova tells a missing disk that way).
func CouldNotOpen(path string, err error) error {
	path = remote.Redact(path) // a presigned URL's query is never shown
	var why string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "No such file or directory"
	case errors.Is(err, fs.ErrPermission):
		why = "Permission denied"
	default:
		return fmt.Errorf("Could not open '%s': %w", path, err)
	}
	return fmt.Errorf("Could not open '%s': %s: %w", path, why, err)
}

// FsyncPath fsyncs a file or directory by path (the image has closed its
// own descriptors by then).
func FsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// OpenExisting opens the existing image at path for writing (-n); an image
// on a block device is opened through the device (the whole device is the
// file).
func OpenExisting(ctx context.Context, path string, open formats.OpenOptions, direct bool) (formats.Image, error) {
	d, err := resolveDest(path)
	if err != nil {
		return nil, err
	}
	if d.kind != destDevice {
		return formats.Open(ctx, path, open)
	}
	dev, err := openDevice(path, direct, false)
	if err != nil {
		return nil, err
	}
	dev.end = dev.capacity
	img, err := formats.OpenFile(ctx, dev, open)
	if err != nil {
		dev.Close()
		return nil, err
	}
	if img.Format() != "raw" {
		// A container format's writer allocates at the end of its file,
		// which on a device is the device's end: refused before anything
		// is written rather than failing at the first new cluster.
		img.Close()
		return nil, fmt.Errorf("%s: %w: writing into an existing %s image on a block device (-n) is not supported (vdisk allocates new clusters at the end of the file, here the end of the device); convert without -n to write a new %s image onto the device",
			path, formats.ErrUnsupported, img.Format(), img.Format())
	}
	return img, nil
}
