package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
)

// ddArgs are qemu-img dd's operands.
type ddArgs struct {
	in, out           string
	blockBytes        int64
	count, skip       int64
	countSet, skipSet bool
}

func newDDCommand(g *globals) *cobra.Command {
	var format, outFormat string
	var hash hashFlags
	cmd := &cobra.Command{
		Use:   "dd [-f fmt] [-O output_fmt] [--hash alg,... [--hash-log FILE]] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output",
		Short: "Copy part of an image into a new image (qemu-img dd: count includes the skipped blocks)",
		RunE: func(cmd *cobra.Command, args []string) error {
			dd, err := parseDD(args)
			if err != nil {
				return err
			}
			// The output may be no file the input uses (dd of= equal to if=).
			sources := &convert.FileSet{}
			sources.Add(dd.in)
			if err := sources.Check(dd.out); err != nil {
				return err
			}
			src, err := g.open(cmd.Context(), dd.in, format, sources.Watch)
			if err != nil {
				return err
			}
			defer src.Close()
			end := src.Size()
			if dd.countSet && dd.count <= end/dd.blockBytes {
				end = dd.count * dd.blockBytes
			}
			start := dd.skip * dd.blockBytes
			if dd.skipSet && (dd.skip > src.Size()/dd.blockBytes || start > end) {
				return fmt.Errorf("cannot skip to specified offset")
			}
			hr, err := hash.start(cmd, args)
			if err != nil {
				return err
			}
			var opts convert.Options
			if hr != nil {
				opts.Hash = hr.hashes
			}
			if err := copyRange(cmd, g, src, start, end-start, dd.out, outFormat, sources, opts); err != nil || hr == nil {
				return err
			}
			return hr.finish(cmd.OutOrStdout(), dd.in, src.Format(), dd.out, outFormat, nil)
		},
	}
	hash.register(cmd.Flags())
	cmd.Flags().StringVarP(&format, "format", "f", "", "input format (probed when omitted)")
	cmd.Flags().StringVarP(&outFormat, "output-format", "O", "raw", "output format")
	return cmd
}

// parseDD parses if=, of=, bs=, count= and skip=.
func parseDD(args []string) (ddArgs, error) {
	dd := ddArgs{blockBytes: 512}
	for _, a := range args {
		key, val, ok := strings.Cut(a, "=")
		if !ok {
			return dd, fmt.Errorf("unrecognized operand %s", a)
		}
		var err error
		switch key {
		case "if":
			dd.in = val
		case "of":
			dd.out = val
		case "bs":
			dd.blockBytes, err = formats.ParseSize(val)
			if err == nil && dd.blockBytes <= 0 {
				err = fmt.Errorf("must be positive")
			}
		case "count":
			dd.count, err = formats.ParseSize(val)
			dd.countSet = true
		case "skip":
			dd.skip, err = formats.ParseSize(val)
			dd.skipSet = true
		default:
			return dd, fmt.Errorf("unrecognized operand %s", a)
		}
		if err != nil {
			return dd, fmt.Errorf("invalid %s: %q: %v", key, val, err)
		}
	}
	switch {
	case dd.in == "":
		return dd, fmt.Errorf("must specify if=input")
	case dd.out == "":
		return dd, fmt.Errorf("must specify of=output")
	case dd.count > 0 && dd.count > (1<<62)/dd.blockBytes, dd.skip > (1<<62)/dd.blockBytes:
		return dd, fmt.Errorf("count or skip is too large")
	}
	return dd, nil
}

// copyRange writes [start, start+length) of src to a new image at out.
func copyRange(cmd *cobra.Command, g *globals, src formats.Image, start, length int64, out, outFormat string, sources *convert.FileSet, copyOpts convert.Options) error {
	drv, err := formats.Lookup(outFormat)
	if err != nil {
		return err
	}
	opts, err := formats.ParseOptions(drv.CreateOptions, "")
	if err != nil {
		return err
	}
	open, err := g.openOptions("")
	if err != nil {
		return err
	}
	dst, output, err := convert.CreateOutput(cmd.Context(), out, drv, length, opts, open, convert.OutputOptions{Sources: sources, Warn: g.warn(cmd), Locks: &g.locks})
	if err != nil {
		return err
	}
	section := convert.Section(src, start, length)
	copyOpts.TargetIsZero = output.TargetIsZero()
	err = convert.Copy(cmd.Context(), dst, section, copyOpts)
	if err == nil {
		err = dst.Flush()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		output.Abort()
		return err
	}
	return output.Commit(false)
}
