package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/iso"
)

// newISOCommand is `vdisk iso ls|extract|create`: browse an ISO 9660 image,
// take files out of it, or build one from a directory.
func newISOCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "iso",
		Short: "List, extract and create ISO 9660 images (Joliet, Rock Ridge)",
	}
	cmd.AddCommand(newISOLsCommand(), newISOExtractCommand(), newISOCreateCommand())
	return cmd
}

// openISO opens an ISO image file for browsing; the caller closes the file.
func openISO(path string) (*iso.FS, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() && st.Mode()&os.ModeDevice == 0 {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a regular file or block device", path)
	}
	size := st.Size()
	if st.Mode()&os.ModeDevice != 0 {
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	fsys, err := iso.Open(f, size, path)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("not an ISO 9660 image: %w", err)
	}
	return fsys, f, nil
}

func newISOLsCommand() *cobra.Command {
	var recursive bool
	var output string
	cmd := &cobra.Command{
		Use:   "ls IMAGE [PATH]",
		Short: "List the files of an ISO image (Rock Ridge or Joliet names)",
		Long: "List the directory PATH (default /) of an ISO 9660 image, or the file PATH itself,\n" +
			"with names as Rock Ridge gives them, else Joliet, else ISO 9660.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "human" && output != "json" {
				return fmt.Errorf("--output must be human or json, not %q", output)
			}
			fsys, f, err := openISO(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			entries, err := listISO(fsys, p, recursive)
			if err != nil {
				return err
			}
			if output == "json" {
				return printISOJSON(cmd.OutOrStdout(), entries)
			}
			for _, e := range entries {
				fmt.Fprintln(cmd.OutOrStdout(), formatISOEntry(e))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list subdirectories recursively")
	cmd.Flags().StringVar(&output, "output", "human", "output format: human or json")
	return cmd
}

// listISO returns the entries to print for path: a file itself, or a
// directory's contents (all of its tree with recursive).
func listISO(fsys *iso.FS, p string, recursive bool) ([]iso.Entry, error) {
	e, err := fsys.Lookup(p)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return []iso.Entry{e}, nil
	}
	if !recursive {
		return fsys.Entries(p)
	}
	var out []iso.Entry
	err = fsys.Walk(p, func(x iso.Entry) error {
		if x.Path != e.Path {
			out = append(out, x)
		}
		return nil
	})
	return out, err
}

func formatISOEntry(e iso.Entry) string {
	date := "                "
	if !e.ModTime.IsZero() {
		date = e.ModTime.UTC().Format("2006-01-02 15:04")
	}
	kind := "-"
	switch {
	case e.IsDir():
		kind = "d"
	case e.Link != "" || e.Mode&os.ModeSymlink != 0:
		kind = "l"
	}
	line := fmt.Sprintf("%s%s %12d %s %s", kind, e.Mode.Perm().String()[1:], e.Size, date, e.Path)
	if e.Link != "" {
		line += " -> " + e.Link
	}
	return line
}

func printISOJSON(w io.Writer, entries []iso.Entry) error {
	type item struct {
		Name  string `json:"name"`
		Path  string `json:"path"`
		Type  string `json:"type"`
		Size  int64  `json:"size"`
		Mode  string `json:"mode"`
		MTime string `json:"mtime,omitempty"`
		Link  string `json:"link,omitempty"`
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		it := item{Name: e.Name, Path: e.Path, Size: e.Size, Mode: fmt.Sprintf("%04o", uint32(e.Mode.Perm())), Link: e.Link}
		switch {
		case e.IsDir():
			it.Type = "directory"
		case e.Link != "":
			it.Type = "symlink"
		default:
			it.Type = "file"
		}
		if !e.ModTime.IsZero() {
			it.MTime = e.ModTime.UTC().Format(time.RFC3339)
		}
		items = append(items, it)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(items)
}

func newISOExtractCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "extract IMAGE PATH DEST",
		Short: "Extract a file or a directory tree from an ISO image into DEST",
		Long: "Extract the file PATH of an ISO 9660 image into the directory DEST (as DEST/NAME),\n" +
			"or the contents of the directory PATH into DEST. Nothing is written outside DEST:\n" +
			"names with \"..\" or \"/\" are refused and symbolic links are never followed out of it.",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, f, err := openISO(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return fsys.Extract(cmd.Context(), args[1], args[2])
		},
	}
}

func newISOCreateCommand() *cobra.Command {
	var out, label, epoch, bootImage, efiImage string
	var joliet, rockRidge, infoTable bool
	var loadSize uint16
	cmd := &cobra.Command{
		Use:   "create -o OUT.iso [--label L] [--joliet] [--rock-ridge] [--source-date-epoch N] [--boot PATH] [--efi-boot PATH] DIR",
		Short: "Build an ISO 9660 image from a directory",
		Long: "Build an ISO 9660 image of the directory DIR. --source-date-epoch (or the\n" +
			"SOURCE_DATE_EPOCH environment variable) sets every timestamp, so the same tree gives\n" +
			"the same bytes.\n\n" +
			"Example, a cloud-init NoCloud seed (user-data and meta-data at the root of DIR):\n" +
			"  vdisk iso create -o seed.iso --label cidata --joliet --rock-ridge seed/",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("an output file is required (-o OUT.iso)")
			}
			opts := iso.CreateOptions{VolumeID: label, Joliet: joliet, RockRidge: rockRidge}
			if epoch == "" {
				epoch = os.Getenv("SOURCE_DATE_EPOCH")
			}
			if epoch != "" {
				sec, err := strconv.ParseInt(epoch, 10, 64)
				if err != nil || sec < 0 {
					return fmt.Errorf("source date epoch %q: want seconds since 1970", epoch)
				}
				t := time.Unix(sec, 0).UTC()
				opts.SourceDateEpoch = &t
			}
			if bootImage != "" || efiImage != "" {
				opts.Boot = &iso.BootOptions{BIOSImage: bootImage, LoadSectors: loadSize, InfoTable: infoTable, EFIImage: efiImage}
			}
			if len(label) > 32 {
				return fmt.Errorf("label %q is longer than 32 bytes", label)
			}
			return iso.CreateFile(cmd.Context(), out, args[0], opts)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "the image to write")
	cmd.Flags().StringVar(&label, "label", "", "volume label (default CDROM)")
	cmd.Flags().BoolVar(&joliet, "joliet", false, "add Joliet names (Windows, 7-Zip)")
	cmd.Flags().BoolVar(&rockRidge, "rock-ridge", false, "add Rock Ridge names, permissions, times and symlinks")
	cmd.Flags().StringVar(&epoch, "source-date-epoch", "", "use this time (seconds since 1970) for every timestamp")
	cmd.Flags().StringVar(&bootImage, "boot", "", "El Torito BIOS boot image (no emulation), a path inside DIR")
	cmd.Flags().Uint16Var(&loadSize, "boot-load-size", 4, "512-byte sectors the BIOS loads from the boot image")
	cmd.Flags().BoolVar(&infoTable, "boot-info-table", false, "patch a boot info table into the BIOS boot image (isolinux)")
	cmd.Flags().StringVar(&efiImage, "efi-boot", "", "El Torito UEFI boot image (a FAT image), a path inside DIR")
	return cmd
}
