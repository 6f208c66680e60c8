package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
)

func newMeasureCommand(g *globals) *cobra.Command {
	var format, outFormat, output, size, snapshot string
	var createOpts []string
	cmd := &cobra.Command{
		Use:   "measure [--output=human|json] [-O output_fmt] [-o options] [--size N | [-f fmt] [-l snapshot] filename]",
		Short: "Compute the size a new image would need",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if optionsHelp(cmd, outFormat, createOpts) {
				return nil
			}
			drv, err := formats.Lookup(outFormat)
			if err != nil {
				return err
			}
			if drv.Measure == nil {
				return fmt.Errorf("block driver '%s' does not support size measurement", drv.Name)
			}
			opts, err := formats.ParseOptions(drv.CreateOptions, strings.Join(createOpts, ","))
			if err != nil {
				return err
			}
			req := formats.MeasureRequest{Options: opts}
			switch {
			case size != "" && len(args) > 0:
				return fmt.Errorf("--size N cannot be used together with a filename")
			case size != "":
				if req.Size, err = formats.ParseSize(size); err != nil {
					return fmt.Errorf("invalid image size specified: %v", err)
				}
			case len(args) == 1:
				img, err := g.open(cmd.Context(), args[0], format, func(o *formats.OpenOptions) { o.Snapshot = snapshot })
				if err != nil {
					return err
				}
				defer img.Close()
				req.Source, req.Size = img, img.Size()
			default:
				return fmt.Errorf("either --size N or one filename must be specified")
			}
			m, err := drv.Measure(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printMeasure(cmd, output, m)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "input format (probed when omitted)")
	f.StringVarP(&outFormat, "output-format", "O", "raw", "output format")
	f.StringArrayVarP(&createOpts, "options", "o", nil, "output create options")
	f.StringVar(&output, "output", "human", "output format: human or json")
	f.StringVar(&size, "size", "", "virtual size of a new image")
	f.StringVarP(&snapshot, "snapshot", "l", "", "measure an internal snapshot")
	return cmd
}

func printMeasure(cmd *cobra.Command, output string, m formats.Measurement) error {
	w := cmd.OutOrStdout()
	if output == "json" {
		var obj imageinfo.Object
		if m.Bitmaps >= 0 {
			obj = append(obj, imageinfo.Field{Key: "bitmaps", Value: m.Bitmaps})
		}
		obj = append(obj, imageinfo.Field{Key: "required", Value: m.Required},
			imageinfo.Field{Key: "fully-allocated", Value: m.FullyAllocated})
		return writeJSON(w, obj)
	}
	fmt.Fprintf(w, "required size: %d\n", m.Required)
	fmt.Fprintf(w, "fully allocated size: %d\n", m.FullyAllocated)
	if m.Bitmaps >= 0 {
		fmt.Fprintf(w, "bitmaps size: %d\n", m.Bitmaps)
	}
	return nil
}
