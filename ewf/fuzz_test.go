package ewf

import (
	"context"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
)

// FuzzOpen feeds the section parser, the table loader and the chunk decoder
// crafted segment files: nothing may panic, and what opens must read and
// check within bounds. Inputs are patches (fuzzpatch) over small images
// made by the writer: a whole image as the input is minimised for a minute
// each time the fuzzer finds new coverage.
func FuzzOpen(f *testing.F) {
	var bases [][]byte
	for _, opts := range []string{"compression=fast,chunk_size=8K", "compression=none,chunk_size=8K", "compression=best,chunk_size=16K"} {
		bases = append(bases, memImage(f, source(24<<10, 12), opts))
	}
	bases = append(bases, memImage(f, make([]byte, 32<<10), "compression=empty-block,chunk_size=8K"))
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		img, err := openMem(fuzzpatch.Apply(bases, input))
		if err != nil {
			return
		}
		defer img.Close()
		buf := make([]byte, min(img.Size(), 1<<20))
		img.ReadAt(buf, 0)
		img.ReadAt(buf[:min(len(buf), 4096)], max(0, img.Size()-4096))
		img.Info()
		if img.chunks <= 64 && img.chunkBytes <= 1<<20 {
			img.Check(context.Background(), formats.CheckOptions{})
			img.VerifyDigests(context.Background(), nil)
		}
	})
}
