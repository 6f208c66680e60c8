package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/nbd"
)

func newConvertCommand(g *globals) *cobra.Command {
	var (
		srcFormat, outFormat, backing, backingFormat, snapshot, sparseSize string
		cacheDst, srcCache                                                 string
		createOpts                                                         []string
		job                                                                convert.Job
		progress, usedOnly                                                 bool
		hash                                                               hashFlags
		mapfile, splitSize                                                 string
		bitmaps                                                            bitmapConvert
	)
	cmd := &cobra.Command{
		Use:   "convert [-f fmt] [-O output_fmt] [-o options] [-c] [-p] [-q] [-n] [-S sparse_size] [-m num] [-W] [-C] [-B backing_file [-F backing_fmt]] [-l snapshot] filename output_filename",
		Short: "Convert an image to another format (output '-' writes a sequential format to stdout)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if optionsHelp(cmd, outFormat, createOpts) {
				return nil // -o help needs no files
			}
			if len(args) < 2 {
				return fmt.Errorf("Expecting one image file name and an output file name")
			}
			if len(args) > 2 {
				return fmt.Errorf("several input files (concatenation) are not supported; give one input and one output")
			}
			direct, err := cacheMode(cacheDst, srcCache)
			if err != nil {
				return err
			}
			job.Direct = direct
			// Without the page cache (none, directsync) or with write-through
			// (writethrough) the data is on the disk when qemu-img exits;
			// a file destination, written buffered, is fsynced to match.
			job.Sync = job.Sync || direct || cacheDst == "writethrough"
			if err := convertFlags(cmd, &job, sparseSize); err != nil {
				return err
			}
			open, err := g.openOptions(srcFormat, backing)
			if err != nil {
				return err
			}
			open.Snapshot = snapshot
			var stdinHead []byte
			if args[0] == "-" {
				stdinHead = g.peekStdin()
			}
			if err := g.spooled(cmd.Context(), &open, args[1]); err != nil {
				return err
			}
			src, err := g.applyKeys(args[0], &open)
			if err != nil {
				return err
			}
			job.Source, job.Target, job.SourceOpen = src, args[1], open
			job.Source, job.Partition = splitPartition(job.Source)
			job.ForceShare = g.forceShare
			rest, splitText := takeSplitOption(createOpts)
			if splitText == "" {
				splitText = splitSize
			}
			if job.SplitBytes, err = parseSplitSize(splitText); err != nil {
				return err
			}
			job.Format, job.CreateOptions = outFormat, rest
			usePackageDriver(&job)
			job.Backing, job.BackingFormat = backing, backingFormat
			job.Stdout = cmd.OutOrStdout()
			job.OpenRemote = openRemote
			if nbd.IsURL(job.Target) {
				job.Existing = true // an NBD export exists; it is written in place
			}
			var warnMu sync.Mutex // workers report read errors concurrently
			job.Warn = func(msg string) {
				warnMu.Lock()
				defer warnMu.Unlock()
				fmt.Fprintln(cmd.ErrOrStderr(), "vdisk: warning: "+msg)
			}
			job.Copy.OnReadError = func(off, length int64, err error) {
				job.Warn(fmt.Sprintf("error while reading offset %d (%d bytes written as zeros): %s", off, length, oneLine(err.Error())))
			}
			if progress && !g.quiet && job.Target != "-" {
				bar := newProgressBar(cmd.OutOrStdout())
				job.Copy.Progress = bar.update
				defer bar.finish()
			}
			if args[0] == "-" {
				plain := backing == "" && snapshot == "" && !usedOnly && mapfile == "" && hash.algorithms == "" && hash.logPath == "" &&
					!bitmaps.copyAll && bitmaps.export == "" && !job.Existing && job.SplitBytes == 0 && !job.Copy.Salvage && job.Partition == 0
				if err := g.streamStdin(&job, stdinHead, srcFormat, plain); err != nil {
					return err
				}
			}
			if usedOnly {
				if err := useOnlyUsed(cmd, &job, mapfile != "" || job.Copy.Salvage, hash.algorithms != "" || hash.logPath != ""); err != nil {
					return err
				}
			}
			if err := bitmaps.prepare(g, cmd, &job); err != nil {
				return err
			}
			if mapfile != "" {
				return convertRescue(cmd, g, job, mapfile, srcFormat, progress)
			}
			hr, err := hash.start(cmd, args)
			if err != nil || hr == nil {
				if err != nil {
					return err
				}
				if err := convert.Run(cmd.Context(), job); err != nil {
					return err
				}
				return bitmaps.finish(g, cmd, job)
			}
			if bitmaps.copyAll {
				return fmt.Errorf("%w: --bitmaps with --hash", formats.ErrUnsupported)
			}
			return runHashed(cmd, g, job, hr, srcFormat)
		},
	}
	f := cmd.Flags()
	bitmaps.flags(cmd)
	f.StringVarP(&srcFormat, "format", "f", "", "input format (probed when omitted)")
	f.StringVarP(&outFormat, "output-format", "O", "raw", "output format")
	f.StringArrayVarP(&createOpts, "options", "o", nil, "output create options k=v[,k=v...]; -o help lists them")
	f.BoolVarP(&job.Copy.Compress, "compress", "c", false, "compress the output (qcow2, vmdk streamOptimized)")
	f.Var(compressionFlag{&job.Compression}, "compression", "write the raw output (-O raw) as one xz, zstd or gzip stream, compressed in parallel (xz and zstd ones read back in place)")
	f.BoolVarP(&progress, "progress", "p", false, "show progress")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	f.BoolVarP(&job.Existing, "no-create", "n", false, "write into an existing output image")
	f.StringVarP(&sparseSize, "sparse-size", "S", "4k", "zero runs of this size are not written (0 writes everything)")
	f.IntVarP(&job.Copy.Workers, "parallel", "m", 0, "parallel workers, 1-64 (default 8, at most the CPUs)")
	f.BoolVarP(&job.Copy.OutOfOrder, "out-of-order", "W", false, "allow out-of-order writes")
	f.BoolVarP(&job.Copy.CopyOffload, "copy-offload", "C", false, "let the kernel copy data between raw-stored files (reflink, copy_file_range) where it can")
	f.StringVarP(&backing, "backing", "B", "", "make the output an overlay of this backing file")
	f.StringVarP(&backingFormat, "backing-format", "F", "", "format of the -B backing file")
	f.StringVarP(&snapshot, "snapshot", "l", "", "convert an internal snapshot: snapshot.name=N, snapshot.id=I or a name")
	f.BoolVar(&job.Copy.TargetIsZero, "target-is-zero", false, "the existing output reads as zeros (with -n)")
	f.BoolVar(&job.Sync, "sync", false, "fsync the output and its directory before finishing")
	f.BoolVar(&job.Copy.Salvage, "salvage", false, "continue past read errors: unreadable sectors become zeros (each is reported)")
	hash.register(f)
	f.BoolVar(&usedOnly, "used-only", false, "copy only the blocks the file systems inside use (ext2/3/4, FAT, NTFS): free space becomes unallocated")
	f.StringVar(&splitSize, "split", "", "write the output as pieces NAME.001, NAME.002, ... of this size (as -o split=SIZE), with the manifest NAME.split")
	f.StringVar(&mapfile, "mapfile", "", "with --salvage: image the input as `vdisk rescue` does, keeping this GNU ddrescue mapfile")
	f.StringVarP(&cacheDst, "cache", "t", "writeback", "output cache mode: none and directsync write a device with O_DIRECT where possible; writeback, writethrough, unsafe")
	f.StringVarP(&srcCache, "source-cache", "T", "writeback", "input cache mode (accepted; reads are buffered)")
	return cmd
}

// cacheModes are qemu's -t / -T values.
var cacheModes = []string{"none", "writeback", "unsafe", "directsync", "writethrough"}

// cacheMode validates -t and -T as qemu-img does and reports whether the
// output should bypass the page cache (none, directsync).
func cacheMode(dst, src string) (direct bool, err error) {
	if !slices.Contains(cacheModes, dst) {
		return false, fmt.Errorf("Invalid cache option: %s", dst)
	}
	if !slices.Contains(cacheModes, src) {
		return false, fmt.Errorf("Invalid source cache option: %s", src)
	}
	return dst == "none" || dst == "directsync", nil
}

// convertFlags validates the flags qemu-img validates.
func convertFlags(cmd *cobra.Command, job *convert.Job, sparseSize string) error {
	if cmd.Flags().Changed("parallel") && (job.Copy.Workers < 1 || job.Copy.Workers > convert.MaxWorkers) {
		return fmt.Errorf("invalid number of coroutines: allowed number of coroutines is between 1 and %d", convert.MaxWorkers)
	}
	n, err := formats.ParseSize(sparseSize)
	if err != nil || n > 16<<20 {
		return fmt.Errorf("invalid buffer size for sparse output specified: valid sizes are multiples of 512 up to 16777216; select 0 to disable sparse detection (fully allocates output)")
	}
	if n > 0 && n < 512 {
		return fmt.Errorf("invalid sparse size %q: at least 512 bytes, or 0", sparseSize)
	}
	job.Copy.SparseBytes, job.Copy.NoSparse = n/512*512, n == 0
	if err := offloadFlags(cmd, job); err != nil {
		return err
	}
	if job.Copy.TargetIsZero && !job.Existing {
		return fmt.Errorf("--target-is-zero requires use of -n flag")
	}
	if job.Existing && cmd.Flags().Changed("options") {
		return fmt.Errorf("-o has no effect when skipping image creation")
	}
	return nil
}

// offloadFlags refuses -C with the flags qemu-img refuses it with, in
// qemu-img's words.
func offloadFlags(cmd *cobra.Command, job *convert.Job) error {
	switch {
	case !job.Copy.CopyOffload:
		return nil
	case job.Copy.Compress:
		return fmt.Errorf("Cannot enable copy offloading when -c is used")
	case cmd.Flags().Changed("sparse-size"):
		return fmt.Errorf("Cannot enable copy offloading when -S is used")
	case job.Copy.Salvage:
		return fmt.Errorf("Cannot use copy offloading in salvaging mode")
	}
	return nil
}

// optionsHelp prints `-o help` for format and reports whether it did.
func optionsHelp(cmd *cobra.Command, format string, opts []string) bool {
	for _, o := range strings.Split(strings.Join(opts, ","), ",") {
		if o == "help" || o == "?" {
			drv, err := formats.Lookup(format)
			if pkg := packageDriver(format); pkg != nil {
				drv, err = pkg, nil
			}
			if err != nil {
				cmd.PrintErrln("vdisk: " + err.Error())
				return true
			}
			fmt.Fprint(cmd.OutOrStdout(), formats.OptionsHelp(drv.Name, drv.CreateOptions))
			return true
		}
	}
	return false
}
