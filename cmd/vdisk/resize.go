package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
)

func newResizeCommand(g *globals) *cobra.Command {
	var format string
	var shrink bool
	var prealloc string
	cmd := &cobra.Command{
		Use:   "resize [-f fmt] [--shrink] [-q] filename [+|-]size",
		Short: "Change an image's virtual size",
		RunE: func(cmd *cobra.Command, args []string) error {
			// Flags are not parsed after the file name (so "-1G" is a size);
			// qemu's "FILE -- -10M" and "--shrink" after the file still work.
			args, err := resizeArgs(args, &shrink)
			if err != nil {
				return err
			}
			if prealloc != "off" && !slices.Contains([]string{"falloc", "full", "metadata"}, prealloc) {
				return fmt.Errorf("Invalid preallocation mode '%s'", prealloc)
			}
			img, err := g.openAs(cmd.Context(), args[0], format, convert.LockResize, func(o *formats.OpenOptions) { o.Writable, o.NoBacking = true, true })
			if err != nil {
				return err
			}
			defer img.Close()
			newSize, err := resizeTarget(img.Size(), args[1])
			if err != nil {
				return err
			}
			r, ok := img.(formats.Resizer)
			if !ok {
				return fmt.Errorf("image format driver does not support resize")
			}
			if newSize < img.Size() && !shrink {
				return fmt.Errorf("use the --shrink option to perform a shrink operation")
			}
			if err := resizeWith(cmd.Context(), r, img, newSize, shrink, prealloc); err != nil {
				return err
			}
			if w, ok := img.(formats.Writable); ok {
				if err := w.Flush(); err != nil {
					return err
				}
			}
			if !g.quiet {
				fmt.Fprintln(cmd.OutOrStdout(), "Image resized.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // "-1G" after the filename is a size, not flags
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.BoolVar(&shrink, "shrink", false, "allow shrinking")
	f.StringVar(&prealloc, "preallocation", "off", "preallocate the new part: off, falloc or full (raw)")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

// resizeArgs takes the file name and size out of what follows the flags:
// a "--" before a negative size is dropped, a --shrink after the file name
// counts.
func resizeArgs(args []string, shrink *bool) ([]string, error) {
	var rest []string
	for _, a := range args {
		switch {
		case a == "--":
		case a == "--shrink":
			*shrink = true
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) != 2 {
		return nil, fmt.Errorf("Expecting image file name and size")
	}
	return rest, nil
}

// preallocator is an image that can allocate a range of its file (raw).
type preallocator interface {
	Preallocate(ctx context.Context, off, length int64, mode string) error
}

// resizeWith resizes img, preallocating the new part when asked (raw:
// falloc reserves blocks, full writes zeros). Formats that cannot say so
// in qemu's words, which clients such as CDI look for to retry without.
func resizeWith(ctx context.Context, r formats.Resizer, img formats.Image, newSize int64, shrink bool, prealloc string) error {
	old := img.Size()
	if prealloc == "off" || newSize <= old {
		return r.Resize(ctx, newSize, shrink)
	}
	p, ok := img.(preallocator)
	if !ok {
		return fmt.Errorf("Unsupported preallocation mode '%s' for format %s", prealloc, img.Format())
	}
	if err := r.Resize(ctx, newSize, shrink); err != nil {
		return err
	}
	if err := p.Preallocate(ctx, old, newSize-old, prealloc); err != nil {
		// Interrupted or failed: the image goes back to its size, so that
		// nothing half-grown is left behind.
		if rerr := r.Resize(context.WithoutCancel(ctx), old, true); rerr != nil {
			return fmt.Errorf("%w (and restoring the size %d: %v)", err, old, rerr)
		}
		return err
	}
	return nil
}

// resizeTarget parses "N", "+N" or "-N" relative to the current size.
func resizeTarget(cur int64, arg string) (int64, error) {
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
