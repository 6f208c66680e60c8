package ewf

import (
	"bytes"
	"context"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "ewf"

func init() {
	formats.Register(&formats.Driver{
		Name:    Name,
		Aliases: []string{"e01"},
		Probe:   probe,
		Open:    Open,
		Create: func(ctx context.Context, req formats.CreateRequest) (formats.Writable, error) {
			return imageio.Created(Create(ctx, req))
		},
		CreateOptions: createOptions,
	})
}

// Create option names.
const (
	optSegmentSize = "segment_size"
	optCompression = "compression"
	optChunkSize   = "chunk_size"
	optCase        = "case_number"
	optEvidence    = "evidence_number"
	optExaminer    = "examiner"
	optDescription = "description"
	optNotes       = "notes"
)

// Compression levels of the compression option, as ewfacquire -c names them.
const (
	compNone       = "none"
	compEmptyBlock = "empty-block"
	compFast       = "fast"
	compBest       = "best"
)

var createOptions = []formats.OptionSpec{
	{Name: optSegmentSize, Type: formats.OptSize, Default: "1500M",
		Help: "Largest segment file (NAME.E01, .E02, ...), at least 1M (ewfacquire -S)"},
	{Name: optCompression, Type: formats.OptString, Default: compFast,
		Values: []string{compNone, compEmptyBlock, compFast, compBest},
		Help:   "Chunk compression: none, empty-block (only chunks of one repeated byte), fast or best (ewfacquire -c)"},
	{Name: optChunkSize, Type: formats.OptSize, Default: "32K",
		Help: "Bytes per chunk: 512 times a power of two from 16 to 32768 sectors (ewfacquire -b)"},
	{Name: optCase, Type: formats.OptString, Help: "Case number (ewfacquire -C)"},
	{Name: optEvidence, Type: formats.OptString, Help: "Evidence number (ewfacquire -E)"},
	{Name: optExaminer, Type: formats.OptString, Help: "Examiner name (ewfacquire -e)"},
	{Name: optDescription, Type: formats.OptString, Help: "Description (ewfacquire -D)"},
	{Name: optNotes, Type: formats.OptString, Help: "Notes (ewfacquire -N)"},
}

// probe recognises the segment file signatures: EWF-E01/S01 (read), and
// EWF-L01 and EWF2 (recognised so that Open refuses them by name).
func probe(in formats.ProbeInput) int {
	for _, sig := range [][]byte{sigEVF, sigLVF, sigEVF2, sigLEF2} {
		if bytes.HasPrefix(in.Header, sig) {
			return formats.ProbeCertain
		}
	}
	return formats.ProbeNone
}
