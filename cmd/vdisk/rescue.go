package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/rescue"
)

func newRescueCommand(g *globals) *cobra.Command {
	var (
		job                   rescue.Job
		createOpts            []string
		cluster, sector, fill string
		progress              bool
	)
	cmd := &cobra.Command{
		Use:   "rescue [-O fmt] [-o options] [--mapfile FILE] [--retries N] [--reverse] [--direct] [--fill BYTE] [-p] source output",
		Short: "Image a failing disk around its bad sectors (as GNU ddrescue, with its mapfile) into any format",
		Long: "rescue copies a block device or file that returns read errors: a first pass copies and skips ahead past errors, later passes\n" +
			"trim and scrape the failed areas sector by sector and retry the bad sectors. With --mapfile the progress is kept in a GNU ddrescue\n" +
			"mapfile (ddrescuelog reads it; ddrescue's own mapfiles are read too), so running the same command again resumes without reading\n" +
			"good areas again. Unreadable sectors are left as zeros (or --fill BYTE) and listed. The source is opened read-only and never locked.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if optionsHelp(cmd, job.Format, createOpts) {
				return nil
			}
			job.Source, job.Target = args[0], args[1]
			job.CreateOptions = strings.Join(createOpts, ",")
			if err := rescueFlags(&job, cluster, sector, fill); err != nil {
				return err
			}
			return runRescue(cmd, g, job, progress)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&job.Format, "output-format", "O", "raw", "output format")
	f.StringArrayVarP(&createOpts, "options", "o", nil, "output create options k=v[,k=v...]")
	f.StringVar(&job.Mapfile, "mapfile", "", "GNU ddrescue mapfile: kept up to date; when it exists the rescue resumes")
	f.IntVar(&job.Options.Retries, "retries", 0, "retry passes over the bad sectors")
	f.BoolVar(&job.Options.Reverse, "reverse", false, "first pass from the end backwards")
	f.BoolVar(&job.Direct, "direct", false, "read the source with O_DIRECT (no kernel cache)")
	f.BoolVar(&job.Options.NoSkip, "no-skip", false, "do not skip ahead after a read error in the first pass")
	f.StringVar(&fill, "fill", "", "write this byte (0-255, or 0xNN) over what stays unreadable (default: zeros)")
	f.StringVar(&cluster, "cluster-size", "64k", "read size of the copy passes")
	f.StringVar(&sector, "sector-size", "512", "unit of trimming, scraping and retrying")
	f.BoolVarP(&progress, "progress", "p", false, "show progress")
	return cmd
}

func rescueFlags(job *rescue.Job, cluster, sector, fill string) error {
	var err error
	if job.Options.ClusterBytes, err = formats.ParseSize(cluster); err != nil || job.Options.ClusterBytes < 512 || job.Options.ClusterBytes > 64<<20 {
		return fmt.Errorf("invalid --cluster-size %q: 512 bytes to 64 MiB", cluster)
	}
	if job.Options.SectorBytes, err = formats.ParseSize(sector); err != nil || job.Options.SectorBytes < 1 ||
		job.Options.SectorBytes > job.Options.ClusterBytes || job.Options.SectorBytes&(job.Options.SectorBytes-1) != 0 {
		return fmt.Errorf("invalid --sector-size %q: a power of two up to the cluster size", sector)
	}
	if job.Options.Retries < 0 {
		return fmt.Errorf("invalid --retries %d", job.Options.Retries)
	}
	if fill != "" {
		var b int
		if _, err := fmt.Sscan(fill, &b); err != nil || b < 0 || b > 255 {
			return fmt.Errorf("invalid --fill %q: a byte value 0-255", fill)
		}
		v := byte(b)
		job.Options.Fill = &v
	}
	return nil
}

// runRescue runs the job and prints what could not be read.
func runRescue(cmd *cobra.Command, g *globals, job rescue.Job, progress bool) error {
	open, err := g.openOptions("")
	if err != nil {
		return err
	}
	job.Open = open
	job.OpenRemote = openRemote
	job.Command = "vdisk " + strings.TrimPrefix(commandLine(cmd, []string{job.Source, job.Target}), cmd.Root().Name()+" ")
	if progress && !g.quiet {
		bar := newProgressBar(cmd.ErrOrStderr())
		job.Options.Progress = func(m *rescue.Map) { bar.update(m.Bytes(rescue.Finished), m.Size) }
		defer bar.finish()
	}
	m, err := rescue.RunJob(cmd.Context(), job)
	if m != nil {
		printRescue(cmd, m)
	}
	return err
}

func printRescue(cmd *cobra.Command, m *rescue.Map) {
	out := cmd.OutOrStdout()
	bad := m.Bad()
	var badBytes int64
	for _, b := range bad {
		badBytes += b.Size
	}
	fmt.Fprintf(out, "rescued: %d of %d bytes; not rescued: %d bytes in %d areas\n", m.Bytes(rescue.Finished), m.Size, badBytes, len(bad))
	for _, b := range bad {
		what := "unreadable"
		if b.Status != rescue.BadSector {
			what = "not tried yet (" + string(rune(b.Status)) + ")"
		}
		fmt.Fprintf(out, "%s: offset %d length %d\n", what, b.Pos, b.Size)
	}
}

// convertRescue is `convert --salvage --mapfile F`: the conversion done as a
// rescue of the input's bytes.
func convertRescue(cmd *cobra.Command, g *globals, job convert.Job, mapfile, srcFormat string, progress bool) error {
	switch {
	case !job.Copy.Salvage:
		return fmt.Errorf("--mapfile needs --salvage (or use vdisk rescue)")
	case srcFormat != "" && srcFormat != "raw":
		return fmt.Errorf("--salvage --mapfile reads the input's bytes as a raw disk (a failing device); -f %s cannot be rescued that way: rescue it to raw, then convert", srcFormat)
	case job.Existing || job.Backing != "" || job.Copy.Compress || job.Target == "-":
		return fmt.Errorf("--salvage --mapfile takes only -O and -o (not -n, -B, -c or an output of -)")
	}
	rj := rescue.Job{Source: job.Source, Target: job.Target, Format: job.Format, CreateOptions: job.CreateOptions, Mapfile: mapfile}
	return runRescue(cmd, g, rj, progress)
}
