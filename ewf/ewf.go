package ewf

import (
	"bytes"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "ewf"

func init() {
	formats.Register(&formats.Driver{
		Name:          Name,
		Aliases:       []string{"e01"},
		Probe:         probe,
		Open:          Open,
		Create:        imageio.CreateWith(Create),
		CreateOptions: createOptions,
	})
}

// Compression levels of the compression option, as ewfacquire -c names them.
const (
	compNone       = "none"
	compEmptyBlock = "empty-block"
	compFast       = "fast"
	compBest       = "best"
)

// CreateOptions are the ewf create options, typed: the zero value is the
// defaults (1500 MiB segments, fast compression, 32 KiB chunks, no case
// metadata). They are the one source of the -o names, defaults and help;
// library callers fill them and pass formats.OptionsOf(CreateOptions...).
type CreateOptions struct {
	SegmentSize    int64  `opt:"segment_size,size" default:"1500M" help:"Largest segment file (NAME.E01, .E02, ...), at least 1M (ewfacquire -S)"`
	Compression    string `opt:"compression" default:"fast" values:"none,empty-block,fast,best" help:"Chunk compression: none, empty-block (only chunks of one repeated byte), fast or best (ewfacquire -c)"`
	ChunkSize      int64  `opt:"chunk_size,size" default:"32K" help:"Bytes per chunk: 512 times a power of two from 16 to 32768 sectors (ewfacquire -b)"`
	CaseNumber     string `opt:"case_number" help:"Case number (ewfacquire -C)"`
	EvidenceNumber string `opt:"evidence_number" help:"Evidence number (ewfacquire -E)"`
	Examiner       string `opt:"examiner" help:"Examiner name (ewfacquire -e)"`
	Description    string `opt:"description" help:"Description (ewfacquire -D)"`
	Notes          string `opt:"notes" help:"Notes (ewfacquire -N)"`
}

var createOptions = formats.OptionSpecsOf(CreateOptions{})

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
