package vhdx

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// FinishSize gives a new dynamic VHDX, created at a provisional size and
// written below size only, its final virtual size (formats.SizeFinisher),
// rounded up to the logical sector: the metadata region's Virtual Disk
// Size item is rewritten in place (the image is new, not yet in use, and
// its log is empty, so there is nothing to protect by logging it). The
// BAT region keeps the room it was created with: its entries past the
// final count stay in their initial state and are never read (qemu and
// libvhdi read the entries the size needs and require only that they fit
// the region). The block size stays the one chosen for the provisional
// size (32 MiB for 1 TiB) unless block_size was given.
func (w *Writer) FinishSize(ctx context.Context, size int64) error {
	switch {
	case w.inPlace || w.fixed || w.hasParent:
		return formats.Unsupportedf(w.name, "finishing the size of a fixed, differencing or existing VHDX")
	case size < 0 || size%formats.SectorBytes != 0 || size > w.size:
		return fmt.Errorf("%w: %s: final size %d is not a whole number of sectors up to the provisional %d", formats.ErrInvalidOption, w.name, size, w.size)
	}
	size = roundUp(size, w.logicalSector)
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	blocks := (size + w.blockSize - 1) / w.blockSize
	for blk := blocks; blk < w.payloadBlocks; blk++ {
		if e := w.bat[w.batIndex(blk)]; e&batOffsetMask != 0 {
			return formats.Corruptf(w.name, "BAT", w.batOff+w.batIndex(blk)*batEntrySize,
				"payload block %d past the final size %d is allocated: the size cannot be finished", blk, size)
		}
	}
	w.size, w.payloadBlocks = size, blocks
	n := w.batEntries()
	w.bat, w.writtenEnd = w.bat[:n], w.writtenEnd[:blocks]
	w.dirty = w.dirty[:(n*batEntrySize+logSectorSize-1)/logSectorSize]
	if _, err := w.f.WriteAt(w.encodeMetadata(), w.metaOff); err != nil {
		return fmt.Errorf("%s: writing the metadata region: %w", w.name, err)
	}
	return nil
}
