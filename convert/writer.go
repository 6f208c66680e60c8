package convert

import (
	"context"
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// Stream is a conversion into an io.Writer (an upload, a pipe, a response
// body): the target format must be one written in a single increasing pass
// (raw, vmdk with subformat=streamOptimized, vpc with subformat=fixed);
// others are refused with ErrUnsupported before anything is written.
type Stream struct {
	Format string // target format; default raw
	// CreateOptions is the -o text (k=v,...), e.g. "subformat=streamOptimized".
	CreateOptions string
	Copy          Options
}

// ToWriter converts src into w as s says. Options.Progress and
// cancellation work as for Copy; on error w holds a partial image.
func ToWriter(ctx context.Context, w io.Writer, src formats.Image, s Stream) error {
	job := Job{Format: s.Format, CreateOptions: s.CreateOptions, Copy: s.Copy, Stdout: w}
	if job.Format == "" {
		job.Format = "raw"
	}
	drv, err := formats.Lookup(job.Format)
	if err != nil {
		return err
	}
	opts, err := job.createOptions(drv, src.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", job.Format, err)
	}
	return runStream(ctx, job, drv, opts, src)
}
