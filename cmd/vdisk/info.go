package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/source/remote"
)

func newInfoCommand(g *globals) *cobra.Command {
	var format, output string
	var chain bool
	cmd := &cobra.Command{
		Use:   "info [-f fmt] [--output=human|json] [--backing-chain] filename",
		Short: "Show an image's format, sizes and format-specific details",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			img, err := g.openAs(cmd.Context(), args[0], format, imagefile.LockInfo, func(o *formats.OpenOptions) { o.NoBacking, o.MetadataOnly = !chain, true })
			if err != nil {
				return err
			}
			defer img.Close()
			infos := imageinfo.Chain(remote.Redact(g.imageName(args[0])), img, chain)
			// What is inside the disk (vdisk's own; qemu-img shows none).
			var inside *fsys.Contents
			if cmd.Root().Use != "qemu-img" && (chain || !hasBacking(img)) {
				inside = fsys.DescribeContents(img)
			}
			if inside != nil && output == "json" {
				infos[0].Contents = inside
			}
			kind := g.spool.compression(args[0])
			if kind != "" && output == "json" {
				infos[0].Compression = string(kind)
			}
			if a := g.archiveInfo(args[0]); a != nil && output == "json" {
				infos[0].Archive = a
			}
			if err := printInfos(cmd.OutOrStdout(), output, chain, infos); err != nil {
				return err
			}
			if kind != "" && output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "source compression: %s\n", kind)
			}
			if output != "json" {
				g.printArchive(cmd.OutOrStdout(), args[0])
			}
			if inside != nil && output != "json" {
				inside.WriteHuman(cmd.OutOrStdout())
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	cmd.Flags().StringVar(&output, "output", "human", "output format: human or json")
	cmd.Flags().BoolVar(&chain, "backing-chain", false, "show every image of the backing chain")
	return cmd
}

func checkOutput(output string) error {
	if output != "human" && output != "json" {
		return fmt.Errorf("--output must be human or json, not %q", output)
	}
	return nil
}

func printInfos(w io.Writer, output string, chain bool, infos []*imageinfo.ImageInfo) error {
	if output == "json" {
		if chain {
			return writeJSON(w, infos)
		}
		return writeJSON(w, infos[0])
	}
	for i, info := range infos {
		if i > 0 {
			fmt.Fprintln(w)
		}
		info.WriteHuman(w)
	}
	return nil
}

func hasBacking(img formats.Image) bool {
	b, ok := img.(formats.Backer)
	return ok && b.BackingName() != ""
}
