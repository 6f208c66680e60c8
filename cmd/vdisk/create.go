package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
)

func newCreateCommand(g *globals) *cobra.Command {
	var format, backing, backingFormat string
	var createOpts []string
	var unsafe bool
	cmd := &cobra.Command{
		Use:   "create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]",
		Short: "Create a new image",
		Args:  cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if optionsHelp(cmd, format, createOpts) {
				return nil
			}
			if len(args) == 0 {
				return fmt.Errorf("expecting a filename")
			}
			drv, err := formats.Lookup(format)
			if err != nil {
				return err
			}
			opts, err := formats.ParseOptions(drv.CreateOptions, strings.Join(createOpts, ","))
			if err != nil {
				return err
			}
			open, err := g.openOptions("", backing)
			if err != nil {
				return err
			}
			if err := setBacking(&opts, drv, backing, backingFormat); err != nil {
				return err
			}
			size, err := createSize(cmd.Context(), args, opts, open, unsafe)
			if err != nil {
				return err
			}
			if err := opts.Set("size", fmt.Sprint(size)); err != nil {
				return err
			}
			size = formats.RoundSize(size) // the line above shows the request
			if !g.quiet {
				fmt.Fprintf(cmd.OutOrStdout(), "Formatting '%s', fmt=%s%s\n", args[0], drv.Name, describeOptions(opts))
			}
			// The new image may not replace its own backing file.
			sources := &imagefile.FileSet{}
			sources.Watch(&open)
			img, out, err := imagefile.Create(cmd.Context(), args[0], drv, size, opts, open, imagefile.Options{Sources: sources, Warn: g.warn(cmd), Locks: &g.locks})
			if err != nil {
				return err
			}
			if err := img.Flush(); err != nil {
				img.Close()
				out.Abort()
				return err
			}
			if err := img.Close(); err != nil {
				out.Abort()
				return err
			}
			return out.Commit(false)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "raw", "image format")
	f.StringVarP(&backing, "backing", "b", "", "backing file (relative to the new image's directory)")
	f.StringVarP(&backingFormat, "backing-format", "F", "", "backing file format")
	f.StringArrayVarP(&createOpts, "options", "o", nil, "create options k=v[,k=v...]; -o help lists them")
	f.BoolVarP(&unsafe, "unsafe", "u", false, "do not open the backing file (the size must be given)")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

func setBacking(opts *formats.Options, drv *formats.Driver, backing, backingFormat string) error {
	if backing == "" {
		if backingFormat != "" {
			return fmt.Errorf("-F requires -b")
		}
		return nil
	}
	if err := opts.Set("backing_file", backing); err != nil {
		return fmt.Errorf("format %s does not support backing files: %w", drv.Name, err)
	}
	if backingFormat != "" {
		return opts.Set("backing_fmt", backingFormat)
	}
	return nil
}

// createSize is the positional size, -o size, or the backing file's size.
func createSize(ctx context.Context, args []string, opts formats.Options, open formats.OpenOptions, unsafe bool) (int64, error) {
	var size int64 = -1
	if opts.IsSet("size") {
		size = opts.Size("size")
	}
	if len(args) == 2 {
		n, err := formats.ParseSize(args[1])
		if err != nil {
			return 0, fmt.Errorf("invalid image size specified: %v; you may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes", err)
		}
		size = n
	}
	if size < 0 {
		backing := opts.String("backing_file")
		if backing == "" || unsafe {
			return 0, fmt.Errorf("image creation needs a size parameter")
		}
		n, err := formats.BackingSize(ctx, args[0], backing, opts.String("backing_fmt"), open)
		if err != nil {
			return 0, err
		}
		size = n
	}
	if err := open.Limits.CheckVirtualSize(args[0], size); err != nil {
		return 0, err
	}
	return size, nil
}

// describeOptions lists options for the "Formatting" line: size and what
// the user set.
func describeOptions(opts formats.Options) string {
	var b strings.Builder
	for _, k := range opts.Keys() {
		fmt.Fprintf(&b, " %s=%s", k, opts.String(k))
	}
	return b.String()
}
