package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
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
			img, err := g.openAs(cmd.Context(), args[0], format, convert.LockInfo, func(o *formats.OpenOptions) { o.NoBacking, o.MetadataOnly = !chain, true })
			if err != nil {
				return err
			}
			defer img.Close()
			infos := imageinfo.Chain(remote.Redact(g.imageName(args[0])), img, chain)
			// What is inside the disk (vdisk's own; qemu-img shows none).
			var inside *diskContents
			if cmd.Root().Use != "qemu-img" && (chain || !hasBacking(img)) {
				inside = describeContents(img)
			}
			if inside != nil && output == "json" {
				infos[0] = append(infos[0], formats.Field{Key: "vdisk-partitions", Value: inside.object()})
			}
			kind := g.spool.compression(args[0])
			if kind != "" && output == "json" {
				infos[0] = append(infos[0], formats.Field{Key: "vdisk-compression", Value: string(kind)})
			}
			if a := g.archiveInfo(args[0]); a != nil && output == "json" {
				infos[0] = append(infos[0], formats.Field{Key: "vdisk-archive", Value: a})
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
				inside.print(cmd.OutOrStdout())
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

func printInfos(w io.Writer, output string, chain bool, infos []formats.Object) error {
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
		printHumanInfo(w, info)
	}
	return nil
}

func field(obj formats.Object, key string) (any, bool) {
	for _, f := range obj {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// printHumanInfo prints an ImageInfo as qemu-img info does.
func printHumanInfo(w io.Writer, info formats.Object) {
	get := func(k string) any { v, _ := field(info, k); return v }
	size := get("virtual-size").(int64)
	fmt.Fprintf(w, "image: %v\n", get("filename"))
	fmt.Fprintf(w, "file format: %v\n", get("format"))
	fmt.Fprintf(w, "virtual size: %s (%d bytes)\n", humanSize(size), size)
	if actual, ok := get("actual-size").(int64); ok {
		fmt.Fprintf(w, "disk size: %s\n", humanSize(actual))
	} else {
		fmt.Fprintln(w, "disk size: unavailable")
	}
	if v, ok := field(info, "encrypted"); ok {
		fmt.Fprintf(w, "encrypted: %v\n", map[bool]string{true: "yes", false: "no"}[v.(bool)])
	}
	if v, ok := field(info, "cluster-size"); ok {
		fmt.Fprintf(w, "cluster_size: %d\n", v)
	}
	if v, ok := field(info, "backing-filename"); ok {
		full := get("full-backing-filename")
		if full != v {
			fmt.Fprintf(w, "backing file: %v (actual path: %v)\n", v, full)
		} else {
			fmt.Fprintf(w, "backing file: %v\n", v)
		}
		if f, ok := field(info, "backing-filename-format"); ok {
			fmt.Fprintf(w, "backing file format: %v\n", f)
		}
	}
	if snaps, ok := field(info, "snapshots"); ok {
		printSnapshots(w, snaps.([]any))
	}
	if fs, ok := field(info, "format-specific"); ok {
		data, _ := field(fs.(formats.Object), "data")
		fmt.Fprintln(w, "Format specific information:")
		printHumanValue(w, data, 1)
	}
}

func printSnapshots(w io.Writer, snaps []any) {
	fmt.Fprintln(w, "Snapshot list:")
	fmt.Fprintf(w, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT")
	for _, s := range snaps {
		o := s.(formats.Object)
		get := func(k string) any { v, _ := field(o, k); return v }
		date := time.Unix(get("date-sec").(int64), 0).Format("2006-01-02 15:04:05")
		clockSec := get("vm-clock-sec").(uint64)
		clock := fmt.Sprintf("%02d:%02d:%02d.%03d", clockSec/3600, clockSec/60%60, clockSec%60, get("vm-clock-nsec").(uint64)/1e6)
		fmt.Fprintf(w, "%-9v %-16v %8s %19s %12s %10d\n", get("id"), get("name"),
			humanSize(int64(get("vm-state-size").(uint64))), date, clock, get("icount"))
	}
}

// printHumanValue prints format-specific data: keys with '-' as spaces,
// nested values indented by four spaces, list items as [N]:.
func printHumanValue(w io.Writer, v any, depth int) {
	pad := strings.Repeat("    ", depth)
	switch x := v.(type) {
	case formats.Object:
		for _, f := range x {
			key := strings.ReplaceAll(f.Key, "-", " ")
			if isComposite(f.Value) {
				fmt.Fprintf(w, "%s%s:\n", pad, key)
				printHumanValue(w, f.Value, depth+1)
			} else {
				fmt.Fprintf(w, "%s%s: %v\n", pad, key, f.Value)
			}
		}
	case []any:
		for i, item := range x {
			if isComposite(item) {
				fmt.Fprintf(w, "%s[%d]:\n", pad, i)
				printHumanValue(w, item, depth+1)
			} else {
				fmt.Fprintf(w, "%s[%d]: %v\n", pad, i, item)
			}
		}
	default:
		fmt.Fprintf(w, "%s%v\n", pad, x)
	}
}

func isComposite(v any) bool {
	switch v.(type) {
	case formats.Object, []any:
		return true
	}
	return false
}
