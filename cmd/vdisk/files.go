package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys"
	"github.com/vdiskio/vdisk/fsys/ext4"
	"github.com/vdiskio/vdisk/fsys/ntfs"
)

// The commands that read files inside a disk image: ls, cat, extract, tar.
// IMAGE is any image vdisk reads (a chain included); IMAGE:N names
// partition N. Without :N, a disk without a partition table is read as one
// file system, and a partitioned disk is read when exactly one partition
// holds a file system vdisk reads.

const imageArgHelp = "IMAGE is any disk image vdisk reads; IMAGE:N reads partition N (see `vdisk info`)."

// withVolume opens the file system an IMAGE[:N] argument names, runs fn
// on it and closes the image.
func (g *globals) withVolume(cmd *cobra.Command, arg, format string, fn func(*fsys.Volume) error) error {
	img, err := g.open(cmd.Context(), arg, format, nil)
	if err != nil {
		return err
	}
	defer img.Close()
	v, err := fsys.OpenImage(img, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	return fn(v)
}

// optionalPath is the PATH argument at args[i], "." when absent.
func optionalPath(args []string, i int) string {
	if len(args) > i {
		return cleanPath(args[i])
	}
	return "."
}

// cleanPath turns a user's path inside the image into an io/fs path.
func cleanPath(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

func newLsCommand(g *globals) *cobra.Command {
	var format string
	var long, recursive bool
	cmd := &cobra.Command{
		Use:   "ls [-f fmt] [-l] [-R] IMAGE[:N] [PATH]",
		Short: "List files inside a disk image (ext2/3/4, FAT, NTFS)",
		Long:  "List the files of a file system inside a disk image, without mounting it.\n" + imageArgHelp,
		Example: `  vdisk ls -l disk.qcow2:2 /etc
  vdisk ls -R disk.vmdk`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withVolume(cmd, args[0], format, func(v *fsys.Volume) error {
				return listFiles(cmd.Context(), cmd.OutOrStdout(), v, optionalPath(args, 1), long, recursive)
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.BoolVarP(&long, "long", "l", false, "long listing: type and permissions, owner, size, date, link targets, streams")
	f.BoolVarP(&recursive, "recursive", "R", false, "list subdirectories too")
	return cmd
}

func listFiles(ctx context.Context, w io.Writer, v *fsys.Volume, dir string, long, recursive bool) error {
	info, err := v.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return printEntry(w, v, dir, info, long)
	}
	if !recursive {
		ents, err := v.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				return err
			}
			if err := printEntry(w, v, path.Join(dir, e.Name()), info, long); err != nil {
				return err
			}
		}
		return nil
	}
	return fsys.Walk(ctx, v, dir, func(e fsys.Entry) error {
		if e.Path == dir {
			return nil
		}
		return printEntry(w, v, e.Path, e.Info, long)
	})
}

// printEntry prints a path, or ls -l's columns for it.
func printEntry(w io.Writer, v *fsys.Volume, p string, info fs.FileInfo, long bool) error {
	if !long {
		_, err := fmt.Fprintln(w, p)
		return err
	}
	uid, gid := "-", "-"
	var streams []string
	switch s := info.Sys().(type) {
	case *ext4.Stat:
		uid, gid = fmt.Sprint(s.UID), fmt.Sprint(s.GID)
	case *ntfs.Stat:
		streams = s.Streams
	}
	line := fmt.Sprintf("%s %5s %5s %12d %s %s", info.Mode(), uid, gid, info.Size(),
		info.ModTime().Format("2006-01-02 15:04"), p)
	if info.Mode()&fs.ModeSymlink != 0 {
		if t, err := v.ReadLink(p); err == nil {
			line += " -> " + t
		}
	}
	for _, s := range streams {
		line += fmt.Sprintf("\n%s %5s %5s %12s %s %s:%s", strings.Repeat(" ", 10), "", "", "(stream)", strings.Repeat(" ", 16), p, s)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func newCatCommand(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "cat [-f fmt] IMAGE[:N] PATH",
		Short:   "Write a file from inside a disk image to stdout",
		Long:    "Write a file of a file system inside a disk image to stdout (NTFS: PATH:STREAM for an alternate data stream).\n" + imageArgHelp,
		Example: `  vdisk cat disk.qcow2:1 /etc/fstab`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withVolume(cmd, args[0], format, func(v *fsys.Volume) error {
				r, err := openFileOrStream(v, args[1])
				if err != nil {
					return err
				}
				_, err = io.Copy(cmd.OutOrStdout(), r)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	return cmd
}

// openFileOrStream opens PATH, or an NTFS alternate data stream PATH:NAME
// when PATH itself does not exist.
func openFileOrStream(v *fsys.Volume, arg string) (io.Reader, error) {
	p := cleanPath(arg)
	f, err := v.Open(p)
	if err == nil {
		if info, serr := f.Stat(); serr == nil && info.IsDir() {
			f.Close()
			return nil, fmt.Errorf("%s is a directory", arg)
		}
		return f, nil
	}
	file, stream, ok := strings.Cut(p, ":")
	if !ok {
		return nil, err
	}
	r, serr := fsys.OpenStream(v, file, stream)
	if serr != nil {
		return nil, err
	}
	return r, nil
}

func newExtractCommand(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "extract [-f fmt] IMAGE[:N] PATH DEST",
		Short: "Copy a file or a directory tree out of a disk image",
		Long: "Copy PATH (a file or a tree; / for everything) from a file system inside a disk image into the\n" +
			"directory DEST: symbolic links as links, permissions and times kept, device nodes and FIFOs\n" +
			"skipped with a note. Nothing is written outside DEST and existing files are not overwritten.\n" + imageArgHelp,
		Example: `  vdisk extract disk.vhdx:2 /home/user/docs ./rescued`,
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withVolume(cmd, args[0], format, func(v *fsys.Volume) error {
				st, err := fsys.Extract(cmd.Context(), v, cleanPath(args[1]), args[2])
				for _, s := range st.Skipped {
					fmt.Fprintf(cmd.ErrOrStderr(), "vdisk: note: skipped %s (not a file, directory or link)\n", s)
				}
				if err == nil && !g.quiet {
					fmt.Fprintf(cmd.ErrOrStderr(), "extracted %d files (%d bytes), %d directories, %d links, %d hard links\n",
						st.Files, st.Bytes, st.Dirs, st.Links, st.HardLinks)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	return cmd
}

func newTarCommand(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "tar [-f fmt] IMAGE[:N] [PATH]",
		Short:   "Write files from inside a disk image to stdout as a tar archive",
		Long:    "Write PATH (default: everything) from a file system inside a disk image to stdout as a tar\narchive (PAX), with links, permissions, owners and times.\n" + imageArgHelp,
		Example: `  vdisk tar disk.qcow2:1 /var/log | tar -tvf -`,
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withVolume(cmd, args[0], format, func(v *fsys.Volume) error {
				skipped, err := fsys.Tar(cmd.Context(), v, optionalPath(args, 1), cmd.OutOrStdout())
				for _, s := range skipped {
					fmt.Fprintf(cmd.ErrOrStderr(), "vdisk: note: skipped %s (a device node or socket)\n", s)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	return cmd
}

// useOnlyUsed makes a conversion copy only the blocks the source's file
// systems use; forensic copies (rescue, --salvage, --hash) and overlays
// (-B) copy every sector, so they refuse it.
func useOnlyUsed(cmd *cobra.Command, job *convert.Job, rescue, hashing bool) error {
	switch {
	case rescue:
		return fmt.Errorf("--used-only skips free space; a rescue (--salvage, --mapfile) copies every sector")
	case hashing:
		return fmt.Errorf("--used-only skips free space; a hashed (forensic) copy must read every sector: drop --hash/--hash-log or --used-only")
	case job.Backing != "":
		return fmt.Errorf("--used-only with -B: an overlay holds the differences to its backing file, free blocks included")
	}
	job.SourceFilter = func(img formats.Image) (formats.Image, error) {
		used, st, err := fsys.UsedOnly(img)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "vdisk: --used-only: %d file systems read, %d partitions copied whole; %d bytes free, %d of them stored and skipped\n",
			st.FileSystems, st.CopiedWhole, st.FreeBytes, st.SkippedBytes)
		return used, nil
	}
	return nil
}
