package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/resize"
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
			opts := resize.Options{Shrink: shrink, Preallocation: prealloc}
			if err := opts.Check(); err != nil {
				return err
			}
			img, err := g.openAs(cmd.Context(), args[0], format, imagefile.LockResize, func(o *formats.OpenOptions) { o.Writable, o.NoBacking = true, true })
			if err != nil {
				return err
			}
			defer img.Close()
			newSize, err := resize.ParseSize(img.Size(), args[1])
			if err != nil {
				return err
			}
			if err := resize.Image(cmd.Context(), img, newSize, opts); err != nil {
				return err
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
