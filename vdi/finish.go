package vdi

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// FinishSize gives a new dynamic image, created at a provisional size and
// written below size only, its final virtual size (formats.SizeFinisher):
// the header's disk size (cbDisk) and block count (cBlocks). The block
// map keeps the room it was created with: the data area still starts
// after it (offData), and the entries past the new count are never read
// (qemu and VirtualBox read cBlocks entries and need only that they cover
// cbDisk; the area between the map's end and offData is padding).
func (img *Image) FinishSize(ctx context.Context, size int64) error {
	switch {
	case !img.writable:
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	case img.hdr.Type == typeFixed || img.isDiff():
		return formats.Unsupportedf(img.name, "finishing the size of a static or differencing VDI")
	case size < 0 || size%sectorBytes != 0 || size > img.size:
		return fmt.Errorf("%w: %s: final size %d is not a whole number of sectors up to the provisional %d", formats.ErrInvalidOption, img.name, size, img.size)
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	blocks := int((size + img.blockBytes - 1) / img.blockBytes)
	for b := blocks; b < len(img.bmap); b++ {
		if img.bmap[b] != blockFree {
			return formats.Corruptf(img.name, "block map", int64(img.hdr.BlocksOff)+4*int64(b),
				"block %d past the final size %d is in use: the size cannot be finished", b, size)
		}
	}
	img.bmap = img.bmap[:blocks]
	img.dirtyLo, img.dirtyHi = min(img.dirtyLo, blocks), min(img.dirtyHi, blocks)
	img.hdr.Blocks, img.hdr.DiskBytes = uint32(blocks), uint64(size)
	img.size, img.hdrDirty = size, true
	return nil
}
