package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
)

// check exit codes, as qemu-img's.
const (
	checkClean       = 0
	checkFailed      = 1
	checkCorrupt     = 2
	checkLeaks       = 3
	checkUnsupported = 63
)

func newCheckCommand(g *globals) *cobra.Command {
	var format, output, repair string
	cmd := &cobra.Command{
		Use:   "check [-q] [-f fmt] [--output=human|json] [-r leaks|all] filename",
		Short: "Check (and repair) an image's metadata (exit 0 clean, 2 corrupt, 3 leaks, 1 failed, 63 no check)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var copts formats.CheckOptions
			switch repair {
			case "":
			case "leaks":
				copts.RepairLeaks = true
			case "all":
				copts.RepairLeaks, copts.RepairAll = true, true
			default:
				return fmt.Errorf("unknown option value for -r (expecting 'leaks' or 'all'): %s", repair)
			}
			img, err := g.open(cmd.Context(), args[0], format, func(o *formats.OpenOptions) {
				o.Writable, o.NoBacking = repair != "", true
			})
			if err != nil {
				return err
			}
			defer img.Close()
			checker, ok := img.(formats.Checker)
			if !ok {
				return exitWith(checkUnsupported, fmt.Errorf("this image format does not support checks"))
			}
			report, err := checker.Check(cmd.Context(), copts)
			if err != nil {
				return exitWith(checkFailed, fmt.Errorf("check failed: %w", err))
			}
			for _, m := range report.Messages {
				fmt.Fprintln(cmd.ErrOrStderr(), m)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				err = writeJSON(out, checkObject(args[0], img.Format(), report))
			} else if !g.quiet {
				printHumanCheck(out, report, repair != "")
			}
			if err != nil {
				return err
			}
			if code := checkCode(report); code != checkClean {
				return exitWith(code, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.StringVar(&output, "output", "human", "output format: human or json")
	f.StringVarP(&repair, "repair", "r", "", "repair: leaks or all")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

func checkCode(r *formats.CheckReport) int {
	switch {
	case r.CheckErrors > 0:
		return checkFailed
	case r.Corruptions > 0:
		return checkCorrupt
	case r.Leaks > 0:
		return checkLeaks
	}
	return checkClean
}

// checkObject is qemu's ImageCheck in qemu's key order; zero counters other
// than check-errors are omitted as qemu omits them.
func checkObject(path, format string, r *formats.CheckReport) imageinfo.Object {
	var obj imageinfo.Object
	add := func(k string, v int64, always bool) {
		if v != 0 || always {
			obj = append(obj, imageinfo.Field{Key: k, Value: v})
		}
	}
	stats := r.HasClusterStats
	add("image-end-offset", r.ImageEndOffset, stats)
	add("total-clusters", r.TotalClusters, stats)
	add("corruptions", r.Corruptions, false)
	add("corruptions-fixed", r.CorruptionsFixed, false)
	add("check-errors", r.CheckErrors, true)
	add("leaks", r.Leaks, false)
	add("leaks-fixed", r.LeaksFixed, false)
	add("allocated-clusters", r.AllocatedClusters, stats)
	add("fragmented-clusters", r.FragmentedClusters, false)
	add("compressed-clusters", r.CompressedClusters, false)
	return append(obj, imageinfo.Field{Key: "filename", Value: path}, imageinfo.Field{Key: "format", Value: format})
}

// printHumanCheck prints qemu-img check's human report.
func printHumanCheck(w io.Writer, r *formats.CheckReport, repaired bool) {
	if repaired && (r.LeaksFixed > 0 || r.CorruptionsFixed > 0) {
		fmt.Fprintf(w, "The following inconsistencies were found and repaired:\n\n    %d leaked clusters\n    %d corruptions\n\nDouble checking the fixed image now...\n",
			r.LeaksFixed, r.CorruptionsFixed)
	}
	clean := r.CheckErrors == 0 && r.Corruptions == 0 && r.Leaks == 0
	if clean {
		fmt.Fprintln(w, "No errors were found on the image.")
	}
	if r.Corruptions > 0 {
		fmt.Fprintf(w, "\n%d errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n", r.Corruptions)
	}
	if r.Leaks > 0 {
		fmt.Fprintf(w, "\n%d leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n", r.Leaks)
	}
	if r.CheckErrors > 0 {
		fmt.Fprintf(w, "\n%d internal errors have occurred during the check.\n", r.CheckErrors)
	}
	if r.HasClusterStats && r.TotalClusters > 0 {
		pct := func(n int64) float64 { return 100 * float64(n) / float64(r.TotalClusters) }
		fmt.Fprintf(w, "%d/%d = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\n",
			r.AllocatedClusters, r.TotalClusters, pct(r.AllocatedClusters),
			pct2(r.FragmentedClusters, r.AllocatedClusters), pct2(r.CompressedClusters, r.AllocatedClusters))
		fmt.Fprintf(w, "Image end offset: %d\n", r.ImageEndOffset)
	}
}

func pct2(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
