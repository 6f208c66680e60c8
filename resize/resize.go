// Package resize changes the virtual size of an image of any format, as
// `qemu-img resize` does: growing (optionally preallocating the new part),
// shrinking only when asked, and sizes given as "N", "+N" or "-N".
package resize

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// Options control Image. The zero value grows without preallocation and
// refuses to shrink.
type Options struct {
	// Shrink allows a smaller size (qemu's --shrink): the data past the new
	// end is lost.
	Shrink bool
	// Preallocation is qemu's --preallocation for the grown part: "" or
	// "off", "metadata", "falloc" (reserve blocks) or "full" (write zeros).
	// Formats whose images cannot preallocate refuse anything but off.
	Preallocation string
}

// Check reports an unknown preallocation mode (before any image is
// opened, as qemu-img does).
func (o Options) Check() error {
	if !slices.Contains([]string{"off", "metadata", "falloc", "full"}, o.mode()) {
		return &qemuError{fmt.Sprintf("Invalid preallocation mode '%s'", o.Preallocation), formats.ErrInvalidOption}
	}
	return nil
}

func (o Options) mode() string {
	if o.Preallocation == "" {
		return "off"
	}
	return o.Preallocation
}

// Preallocator is implemented by images that can allocate a range of their
// file in one of the preallocation modes (raw).
type Preallocator interface {
	Preallocate(ctx context.Context, off, length int64, mode string) error
}

// ErrShrink is returned for a smaller size without Options.Shrink.
var ErrShrink = errors.New("use the --shrink option to perform a shrink operation")

// Image sets img's virtual size to newSize bytes and flushes it. img must
// be open writable and implement formats.Resizer. A preallocation that
// fails or is cancelled puts the image back to its old size, so nothing
// half-grown is left. Errors use qemu's wording, which clients (CDI) look
// for.
func Image(ctx context.Context, img formats.Image, newSize int64, opts Options) error {
	if err := opts.Check(); err != nil {
		return err
	}
	mode := opts.mode()
	r, ok := img.(formats.Resizer)
	if !ok {
		return &qemuError{"image format driver does not support resize", formats.ErrUnsupported}
	}
	if newSize < img.Size() && !opts.Shrink {
		return ErrShrink
	}
	if err := grow(ctx, r, img, newSize, opts.Shrink, mode); err != nil {
		return err
	}
	if w, ok := img.(formats.Writable); ok {
		return w.Flush()
	}
	return nil
}

func grow(ctx context.Context, r formats.Resizer, img formats.Image, newSize int64, shrink bool, mode string) error {
	old := img.Size()
	if mode == "off" || newSize <= old {
		return r.Resize(ctx, newSize, shrink)
	}
	p, ok := img.(Preallocator)
	if !ok {
		return &qemuError{fmt.Sprintf("Unsupported preallocation mode '%s' for format %s", mode, img.Format()), formats.ErrUnsupported}
	}
	if err := r.Resize(ctx, newSize, shrink); err != nil {
		return err
	}
	if err := p.Preallocate(ctx, old, newSize-old, mode); err != nil {
		if rerr := r.Resize(context.WithoutCancel(ctx), old, true); rerr != nil {
			return fmt.Errorf("%w (and restoring the size %d: %v)", err, old, rerr)
		}
		return err
	}
	return nil
}

// qemuError is an error in qemu's words (which clients match) that wraps
// a formats sentinel for errors.Is.
type qemuError struct {
	msg  string
	kind error
}

func (e *qemuError) Error() string { return e.msg }
func (e *qemuError) Unwrap() error { return e.kind }

// ParseSize parses qemu-img resize's size argument against the current
// size cur: "N" (absolute), "+N" (grow by) or "-N" (shrink by), N with
// qemu's suffixes (formats.ParseSize).
func ParseSize(cur int64, arg string) (int64, error) {
	sign := int64(0)
	switch {
	case strings.HasPrefix(arg, "+"):
		sign, arg = 1, arg[1:]
	case strings.HasPrefix(arg, "-"):
		sign, arg = -1, arg[1:]
	}
	n, err := formats.ParseSize(arg)
	if err != nil {
		return 0, fmt.Errorf("invalid image size specified: %v", err)
	}
	size := n
	if sign != 0 {
		size = cur + sign*n
	}
	if size < 0 || (sign > 0 && size < cur) {
		return 0, fmt.Errorf("new image size %d is out of range", size)
	}
	return size, nil
}
