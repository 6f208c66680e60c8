package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/checksum"
	"github.com/vdiskio/vdisk/source/remote"
)

func newChecksumCommand(g *globals) *cobra.Command {
	var (
		format, algorithms string
		linear, progress   bool
		opts               checksum.Options
	)
	cmd := &cobra.Command{
		Use:   "checksum [-f fmt] [-a alg[,alg...]] [--linear] [-m num] [-p] filename...",
		Short: "Print a digest of an image's guest bytes, the same whatever its format (blksum's blkhash; --linear: sha256sum of the raw export)",
		Long: "checksum prints a digest of the disk an image holds, identical for raw, qcow2 (any options, compressed, in a chain), vmdk, vhd, vhdx and vdi.\n" +
			"The default construction is blkhash (blksum's, 64 KiB blocks, sha256 unless -a): zero and unallocated ranges are not read and blocks hash on every CPU.\n" +
			"--linear prints the plain digest of the guest bytes instead, equal to `qemu-img convert -O raw IMG /dev/stdout | sha256sum`; several -a algorithms are then printed one a line as ALG (IMG) = HEX.\n" +
			"Algorithms: " + strings.Join(checksum.Algorithms(), ", ") + ".",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := checksum.ParseAlgorithms(algorithms)
			if err != nil {
				return err
			}
			if len(names) > 1 && !linear {
				return fmt.Errorf("several algorithms (-a %s) need --linear; the block construction takes one", algorithms)
			}
			for _, path := range args {
				if err := checksumOne(cmd, g, path, format, names, linear, progress, opts); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "input format (probed when omitted)")
	f.StringVarP(&algorithms, "algorithm", "a", checksum.DefaultAlgorithm, "digest algorithm(s), comma-separated (several with --linear)")
	f.BoolVar(&linear, "linear", false, "plain digest of the guest bytes (equals sha256sum of the raw export)")
	f.IntVarP(&opts.Workers, "parallel", "m", 0, "parallel workers (default: the number of CPUs)")
	f.BoolVarP(&progress, "progress", "p", false, "show progress on stderr")
	return cmd
}

func checksumOne(cmd *cobra.Command, g *globals, path, format string, names []string, linear, progress bool, opts checksum.Options) error {
	img, err := g.open(cmd.Context(), path, format, nil)
	if err != nil {
		return err
	}
	defer img.Close()
	if progress && !g.quiet {
		bar := newProgressBar(cmd.ErrOrStderr())
		opts.Progress = bar.update
		defer bar.finish()
	}
	out := cmd.OutOrStdout()
	path = remote.Redact(path) // a presigned URL's query is not printed
	if !linear {
		opts.Algorithm = names[0]
		d, err := checksum.Block(cmd.Context(), img, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Fprintf(out, "%s  %s\n", d.Hex(), path)
		return nil
	}
	ds, err := checksum.Linear(cmd.Context(), img, names, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(ds) == 1 {
		fmt.Fprintf(out, "%s  %s\n", ds[0].Hex(), path)
		return nil
	}
	for _, d := range ds {
		fmt.Fprintf(out, "%s (%s) = %s\n", strings.ToUpper(d.Algorithm), path, d.Hex())
	}
	return nil
}
