package main

import (
	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
)

func newDDCommand(g *globals) *cobra.Command {
	var format, outFormat string
	var hash hashFlags
	cmd := &cobra.Command{
		Use:   "dd [-f fmt] [-O output_fmt] [--hash alg,... [--hash-log FILE]] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output",
		Short: "Copy part of an image into a new image (qemu-img dd: count includes the skipped blocks)",
		RunE: func(cmd *cobra.Command, args []string) error {
			dd, err := convert.ParseDD(args)
			if err != nil {
				return err
			}
			// The output may be no file the input uses (dd of= equal to if=).
			sources := &imagefile.FileSet{}
			sources.Add(dd.In)
			if err := sources.Check(dd.Out); err != nil {
				return err
			}
			src, err := g.open(cmd.Context(), dd.In, format, sources.Watch)
			if err != nil {
				return err
			}
			defer src.Close()
			start, length, err := dd.Range(src.Size())
			if err != nil {
				return err
			}
			hr, err := hash.start(cmd, args)
			if err != nil {
				return err
			}
			var opts convert.Options
			if hr != nil {
				opts.Hash = hr.hashes
			}
			if err := copyRange(cmd, g, src, start, length, dd.Out, outFormat, sources, opts); err != nil || hr == nil {
				return err
			}
			return hr.finish(cmd.OutOrStdout(), dd.In, src.Format(), dd.Out, outFormat, nil)
		},
	}
	hash.register(cmd.Flags())
	cmd.Flags().StringVarP(&format, "format", "f", "", "input format (probed when omitted)")
	cmd.Flags().StringVarP(&outFormat, "output-format", "O", "raw", "output format")
	return cmd
}

// copyRange writes [start, start+length) of src to a new image at out.
func copyRange(cmd *cobra.Command, g *globals, src formats.Image, start, length int64, out, outFormat string, sources *imagefile.FileSet, copyOpts convert.Options) error {
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
	dst, output, err := imagefile.Create(cmd.Context(), out, drv, length, opts, open, imagefile.Options{Sources: sources, Warn: g.warn(cmd), Locks: &g.locks})
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
