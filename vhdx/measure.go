package vhdx

import (
	"context"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// measure estimates the file size of a new VHDX (qemu 7.2 cannot): the
// fixed structures (header section, log, metadata, BAT) plus one block for
// every block the source has data in (every block for subformat=fixed).
// Blocks holding only zeros are not counted, as the converter does not
// allocate them.
func measure(ctx context.Context, req formats.MeasureRequest) (formats.Measurement, error) {
	size := req.Size
	if req.Source != nil {
		size = req.Source.Size()
	}
	p, err := parseCreate(formats.CreateRequest{Name: "measure", Size: size, Options: req.Options})
	if err != nil {
		return formats.Measurement{}, err
	}
	img := &Image{size: p.size, blockSize: p.blockSize, logicalSector: p.logicalSector}
	img.chunkRatio = sectorsPerBitmap * img.logicalSector / img.blockSize
	img.payloadBlocks = (img.size + img.blockSize - 1) / img.blockSize
	overhead := headerSection + p.logSize + mib + max(mib, roundUp(img.batEntries()*batEntrySize, mib))
	full := overhead + img.payloadBlocks*img.blockSize
	m := formats.Measurement{Required: overhead, FullyAllocated: full, Bitmaps: -1}
	switch {
	case p.fixed:
		m.Required = full
	case req.Source != nil:
		blocks, err := imageio.DataBlocks(ctx, req.Source, img.blockSize)
		if err != nil {
			return formats.Measurement{}, err
		}
		m.Required += blocks * img.blockSize
	}
	return m, nil
}
