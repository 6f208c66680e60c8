package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/checksum"
	"github.com/vdiskio/vdisk/formats"
)

// verifyLog checks an image against the hash log of the copy that made it:
// the digests of its first "bytes" guest bytes, the rest reading as zeros.
func verifyLog(cmd *cobra.Command, g *globals, path, format, logPath, output string, progress bool) error {
	f, err := os.Open(logPath)
	if err != nil {
		return exitWith(verifyError, err)
	}
	log, err := checksum.ParseLog(f, logPath)
	f.Close()
	if err != nil {
		return exitWith(verifyError, err)
	}
	img, err := g.open(cmd.Context(), path, format, nil)
	if err != nil {
		return exitWith(verifyError, err)
	}
	defer img.Close()
	var opts checksum.Options
	if progress && output == "human" {
		bar := newProgressBar(cmd.ErrOrStderr())
		opts.Progress = bar.update
		defer bar.finish()
	}
	v, err := checksum.Verify(cmd.Context(), img, log.Digests, log.Bytes, opts)
	if err != nil {
		return exitWith(verifyError, fmt.Errorf("%s: %w", path, err))
	}
	rep := &formats.DigestReport{}
	for i, d := range v.Checked {
		rep.Digests = append(rep.Digests, formats.DigestCheck{Algorithm: d.Algorithm, Stored: log.Digests[i].Sum, Computed: d.Sum})
	}
	switch {
	case v.Bytes < v.WantBytes:
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: size: the log says %d bytes, the image has %d", path, v.WantBytes, v.Bytes))
	case v.TailNonZero >= 0:
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: size: the log says %d bytes, the image has %d with data at offset %d", path, v.WantBytes, v.Bytes, v.TailNonZero))
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(cmd.ErrOrStderr(), "vdisk: "+oneLine(p))
	}
	if err := printVerify(cmd, path, output, rep); err != nil {
		return exitWith(verifyError, err)
	}
	if !v.OK() {
		return exitWith(verifyMismatch, nil)
	}
	return nil
}
