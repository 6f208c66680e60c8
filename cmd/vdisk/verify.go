package main

import (
	enchex "encoding/hex"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
)

// verify exit codes.
const (
	verifyMatch    = 0
	verifyMismatch = 1
	verifyError    = 2
)

// newVerifyCommand is `vdisk verify IMG`: the image's content checked
// against digests. With --hash-log they are those of the copy that made
// the image (convert/dd --hash-log: verifyLog); without, those the image
// stores itself (EWF's MD5 and SHA-1: verifyStored).
func newVerifyCommand(g *globals) *cobra.Command {
	var format, output, logPath string
	var progress bool
	cmd := &cobra.Command{
		Use:   "verify [-f fmt] [--hash-log FILE] [--output=human|json] [-p] filename",
		Short: "Check an image's content against the hash log of the copy that made it (--hash-log) or the hashes it stores (EWF MD5/SHA-1): exit 0 match, 1 mismatch, 2 error",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitWith(verifyError, fmt.Errorf("verify takes one image, got %d arguments", len(args)))
			}
			if err := checkOutput(output); err != nil {
				return exitWith(verifyError, err)
			}
			if logPath != "" {
				return verifyLog(cmd, g, args[0], format, logPath, output, progress)
			}
			return verifyStored(cmd, g, args[0], format, output, progress)
		},
	}
	cmd.Flags().StringVar(&logPath, "hash-log", "", "check against this hash log (written by convert or dd --hash-log)")
	cmd.Flags().StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	cmd.Flags().StringVar(&output, "output", "human", "output format: human or json")
	cmd.Flags().BoolVarP(&progress, "progress", "p", false, "show progress")
	return cmd
}

// verifyStored checks an image against the digests it keeps.
func verifyStored(cmd *cobra.Command, g *globals, path, format, output string, progress bool) error {
	img, err := g.open(cmd.Context(), path, format, func(o *formats.OpenOptions) { o.NoBacking = true })
	if err != nil {
		return exitWith(verifyError, err)
	}
	defer img.Close()
	dv, ok := img.(formats.DigestVerifier)
	if !ok {
		return exitWith(verifyError, fmt.Errorf("%s: %s images keep no digests of their content (give --hash-log FILE, the log of the copy that made it)", path, img.Format()))
	}
	var onProgress func(done, total int64)
	if progress && output == "human" {
		bar := newProgressBar(cmd.ErrOrStderr())
		onProgress = bar.update
		defer bar.finish()
	}
	rep, err := dv.VerifyDigests(cmd.Context(), onProgress)
	if err != nil {
		return exitWith(verifyError, err)
	}
	if len(rep.Digests) == 0 {
		return exitWith(verifyError, fmt.Errorf("%s: the image stores no digest of its content", path))
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(cmd.ErrOrStderr(), "vdisk: "+oneLine(p))
	}
	if err := printVerify(cmd, path, output, rep); err != nil {
		return exitWith(verifyError, err)
	}
	if !rep.OK() {
		return exitWith(verifyMismatch, nil)
	}
	return nil
}

func printVerify(cmd *cobra.Command, path, output string, rep *formats.DigestReport) error {
	w := cmd.OutOrStdout()
	if output == "json" {
		var ds []any
		for _, d := range rep.Digests {
			ds = append(ds, imageinfo.Object{
				{Key: "algorithm", Value: d.Algorithm},
				{Key: "stored", Value: enchex.EncodeToString(d.Stored)},
				{Key: "computed", Value: enchex.EncodeToString(d.Computed)},
				{Key: "match", Value: d.Match()},
			})
		}
		problems := []any{}
		for _, p := range rep.Problems {
			problems = append(problems, p)
		}
		return writeJSON(w, imageinfo.Object{
			{Key: "filename", Value: path},
			{Key: "digests", Value: ds},
			{Key: "problems", Value: problems},
			{Key: "match", Value: rep.OK()},
		})
	}
	for _, d := range rep.Digests {
		verdict := "match"
		if !d.Match() {
			verdict = "MISMATCH"
		}
		fmt.Fprintf(w, "%s: stored %s, computed %s: %s\n", d.Algorithm, enchex.EncodeToString(d.Stored), enchex.EncodeToString(d.Computed), verdict)
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(w, "%d problems (listed on stderr: damaged chunks read as zeros, a size that differs)\n", len(rep.Problems))
	}
	if rep.OK() {
		fmt.Fprintf(w, "%s: verified\n", path)
	} else {
		fmt.Fprintf(w, "%s: verification FAILED\n", path)
	}
	return nil
}
