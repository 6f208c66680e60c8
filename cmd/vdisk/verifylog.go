package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

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
	// The pieces of a split output first: a changed piece is a mismatch
	// even when it keeps the set from opening.
	piecesOK, pieceProblems := true, []string(nil)
	for _, p := range log.Pieces {
		msg, ok := verifyPiece(cmd, filepath.Join(filepath.Dir(path), p.Name), p)
		fmt.Fprintln(cmd.OutOrStdout(), msg)
		if !ok {
			piecesOK = false
			pieceProblems = append(pieceProblems, msg)
		}
	}
	img, err := g.open(cmd.Context(), path, format, nil)
	if err != nil && !piecesOK {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: verification FAILED\n", path)
		return exitWith(verifyMismatch, err)
	}
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
	rep := &formats.DigestReport{Problems: pieceProblems}
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
	if !v.OK() || !piecesOK {
		return exitWith(verifyMismatch, nil)
	}
	return nil
}

// verifyPiece checks one piece file of a split output against the log.
func verifyPiece(cmd *cobra.Command, path string, p checksum.Piece) (string, bool) {
	var names []string
	for _, d := range p.Digests {
		names = append(names, d.Algorithm)
	}
	if len(names) == 0 {
		return fmt.Sprintf("piece %s: no digest in the log", path), true
	}
	got, n, err := checksum.File(cmd.Context(), path, names)
	if err != nil {
		return fmt.Sprintf("piece %s: %v", path, err), false
	}
	if n != p.Bytes {
		return fmt.Sprintf("piece %s: MISMATCH: %d bytes, the log says %d", path, n, p.Bytes), false
	}
	for i, d := range p.Digests {
		if !bytes.Equal(d.Sum, got[i].Sum) {
			return fmt.Sprintf("piece %s: %s MISMATCH: expected %s, the file has %s", path, d.Algorithm, d.Hex(), got[i].Hex()), false
		}
	}
	return fmt.Sprintf("piece %s: OK", path), true
}
