package convert

import (
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/source/compressed"
)

// A raw output may be written as one compressed stream (Job.Compression:
// xz, zstd or gzip, compressed in parallel by compressed.Writer). The raw
// image is then written in order to a stream whose bytes go through the
// compressor into the output's temporary file (renamed into place when
// complete, as any output) or to stdout.

// checkCompression refuses what a compressed output cannot be.
func (job Job) checkCompression() error {
	if job.Compression == compressed.None {
		return nil
	}
	if _, err := compressed.ParseKind(string(job.Compression)); err != nil {
		return err
	}
	switch {
	case job.Format != "raw":
		return fmt.Errorf("%w: --compression=%s writes a raw image as one compressed stream; -O %s has its own compression (-c)", formats.ErrInvalidOption, job.Compression, job.Format)
	case job.Existing:
		return fmt.Errorf("%w: --compression with -n: a compressed output is written new", formats.ErrInvalidOption)
	case job.SplitBytes > 0:
		return fmt.Errorf("%w: --compression with --split is not supported", formats.ErrInvalidOption)
	case job.Backing != "":
		return fmt.Errorf("%w: --compression with -B: a raw image has no backing file", formats.ErrInvalidOption)
	}
	return nil
}
