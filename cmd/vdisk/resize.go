package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
)

func newResizeCommand(g *globals) *cobra.Command {
	var format string
	var shrink bool
	cmd := &cobra.Command{
		Use:   "resize [-f fmt] [--shrink] [-q] filename [+|-]size",
		Short: "Change an image's virtual size",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := g.open(args[0], format, func(o *formats.OpenOptions) { o.Writable, o.NoBacking = true, true })
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
			if err := r.Resize(newSize, shrink); err != nil {
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
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
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
