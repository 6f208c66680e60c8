package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vdiskio/vdisk/checksum"
	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/source/split"
)

// hashFlags are convert's and dd's --hash and --hash-log.
type hashFlags struct {
	algorithms string
	logPath    string
}

func (h *hashFlags) register(f *pflag.FlagSet) {
	f.StringVar(&h.algorithms, "hash", "", "hash the guest bytes while copying: md5,sha1,sha256,... (the same pass, no second read)")
	f.StringVar(&h.logPath, "hash-log", "", "write a dc3dd-style hash log to this file (with --hash; default md5,sha256 when only --hash-log is given)")
}

// hashRun is one hashed copy: the hashes, the read errors seen, the start.
type hashRun struct {
	flags   hashFlags
	hashes  *checksum.Hashes
	started time.Time
	command string
	mu      sync.Mutex
	errors  []checksum.ReadError
}

// start returns nil when neither flag was given.
func (h hashFlags) start(cmd *cobra.Command, args []string) (*hashRun, error) {
	if h.algorithms == "" && h.logPath == "" {
		return nil, nil
	}
	list := h.algorithms
	if list == "" {
		list = "md5,sha256"
	}
	names, err := checksum.ParseAlgorithms(list)
	if err != nil {
		return nil, err
	}
	hashes, err := checksum.NewHashes(names)
	if err != nil {
		return nil, err
	}
	return &hashRun{flags: h, hashes: hashes, started: time.Now(), command: commandLine(cmd, args)}, nil
}

// commandLine rebuilds the command as given (flags as set, then operands).
func commandLine(cmd *cobra.Command, args []string) string {
	parts := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		parts = append(parts, "--"+f.Name+"="+f.Value.String())
	})
	return strings.Join(append(parts, args...), " ")
}

// readError records an unreadable range (salvage).
func (r *hashRun) readError(off, length int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, checksum.ReadError{Offset: off, Length: length, Err: oneLine(err.Error())})
}

// finish prints the digests (to w) and writes the log when asked.
func (r *hashRun) finish(w io.Writer, source, sourceFormat, target, targetFormat string, pieces []checksum.Piece) error {
	log := &checksum.Log{Tool: "vdisk " + version, Command: r.command, Started: r.started, Completed: time.Now(),
		Source: source, SourceFormat: sourceFormat, Target: target, TargetFormat: targetFormat,
		Bytes: r.hashes.Bytes(), Digests: r.hashes.Sums(), Pieces: pieces, ReadErrors: r.errors}
	for _, d := range log.Digests {
		fmt.Fprintf(w, "%s (%s) = %s\n", strings.ToUpper(d.Algorithm), source, d.Hex())
	}
	if r.flags.logPath == "" {
		return nil
	}
	return writeFileAtomic(r.flags.logPath, func(f *os.File) error {
		_, err := log.WriteTo(f)
		return err
	})
}

// runHashed runs a conversion with --hash: the digests print on stdout
// (stderr when the image goes to stdout) and go to the log.
func runHashed(cmd *cobra.Command, g *globals, job convert.Job, hr *hashRun, srcFormat string) error {
	job.Copy.Hash = hr.hashes
	// A hashed (forensic) copy only reads its source: it takes no image
	// locks on it either (as -U), so it never changes its state.
	job.ForceShare = true
	warn := job.Copy.OnReadError
	job.Copy.OnReadError = func(off, length int64, err error) {
		hr.readError(off, length, err)
		if warn != nil {
			warn(off, length, err)
		}
	}
	if err := convert.Run(cmd.Context(), job); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if job.Target == "-" {
		w = cmd.ErrOrStderr()
	}
	format := srcFormat
	if format == "" {
		if img, err := g.open(cmd.Context(), job.Source, "", nil); err == nil {
			format = img.Format()
			img.Close()
		}
	}
	var pieces []checksum.Piece
	if job.SplitBytes > 0 {
		var err error
		if pieces, err = hashPieces(cmd, job.Target+".001", hr.hashes.Names()); err != nil {
			return err
		}
	}
	return hr.finish(w, job.Source, format, job.Target, job.Format, pieces)
}

// hashPieces digests each piece file of the split set whose first piece is
// first (a read of the output just written, not of the source).
func hashPieces(cmd *cobra.Command, first string, algorithms []string) ([]checksum.Piece, error) {
	set, err := split.Open(first)
	if err != nil {
		return nil, err
	}
	paths := set.Pieces()
	set.Close()
	var out []checksum.Piece
	var off int64
	for _, p := range paths {
		ds, n, err := checksum.File(cmd.Context(), p, algorithms)
		if err != nil {
			return nil, err
		}
		out = append(out, checksum.Piece{Name: filepath.Base(p), Offset: off, Bytes: n, Digests: ds})
		off += n
	}
	return out, nil
}
