package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/compare"
	"github.com/vdiskio/vdisk/formats"
)

// compare exit codes, as qemu-img's.
const (
	compareSame      = 0
	compareDiffer    = 1
	compareOpenError = 2
	compareStatusErr = 3
	compareReadError = 4
)

func newCompareCommand(g *globals) *cobra.Command {
	var fmt1, fmt2 string
	var strict, progress bool
	cmd := &cobra.Command{
		Use:   "compare [-f fmt] [-F fmt] [-p] [-q] [-s] filename1 filename2",
		Short: "Compare the contents of two images (exit 0 same, 1 different, 2+ error)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			imgs := make([]formats.Image, 2)
			for i, f := range []string{fmt1, fmt2} {
				img, err := g.open(cmd.Context(), args[i], f, nil)
				if err != nil {
					return exitWith(compareOpenError, err)
				}
				defer img.Close()
				imgs[i] = img
			}
			out := cmd.OutOrStdout()
			if g.quiet {
				out = io.Discard
			}
			res, err := compare.Images(cmd.Context(), imgs[0], imgs[1], compare.Options{Strict: strict})
			return printCompare(out, res, strict, err)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&fmt1, "format", "f", "", "first image format")
	f.StringVarP(&fmt2, "second-format", "F", "", "second image format")
	f.BoolVarP(&strict, "strict", "s", false, "strict mode: sizes and allocation must match too")
	f.BoolVarP(&progress, "progress", "p", false, "accepted for qemu-img compatibility")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

// printCompare words res as qemu-img compare does and returns its exit
// status.
func printCompare(out io.Writer, res compare.Result, strict bool, err error) error {
	if res.SizeMismatch {
		if strict {
			fmt.Fprintln(out, "Strict mode: Image size mismatch!")
			return exitWith(compareDiffer, nil)
		}
		fmt.Fprintln(out, "Warning: Image size mismatch!")
	}
	var se *compare.StatusError
	var re *compare.ReadError
	switch {
	case errors.As(err, &se):
		return exitWith(compareStatusErr, err)
	case errors.As(err, &re):
		return exitWith(compareReadError, err)
	case err != nil:
		return err
	case res.StatusMismatch:
		fmt.Fprintf(out, "Strict mode: Offset %d block status mismatch!\n", res.Offset)
		return exitWith(compareDiffer, nil)
	case !res.Identical:
		fmt.Fprintf(out, "Content mismatch at offset %d!\n", res.Offset)
		return exitWith(compareDiffer, nil)
	}
	fmt.Fprintln(out, "Images are identical.")
	return nil
}
