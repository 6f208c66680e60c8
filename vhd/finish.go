package vhd

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// FinishSize gives a new disk, created at a provisional size and written
// below size only, its final virtual size (formats.SizeFinisher): the
// footers' original and current size and geometry (exactly size, as
// Resize keeps it) and, for a dynamic disk, the header's max table
// entries. A dynamic disk's BAT keeps the room it was created with: the
// entries past the new count stay unused (0xFFFFFFFF) in the padding
// before the first block, which readers do not look at (qemu's vpc reads
// max_table_entries entries and needs only that they cover the size). A
// fixed disk moves its footer (Resize).
func (img *Image) FinishSize(ctx context.Context, size int64) error {
	switch {
	case !img.writable || img.stream && img.dynamic():
		return fmt.Errorf("%s: finishing the size needs a new image opened writable: %w", img.name, formats.ErrReadOnly)
	case img.differencing():
		return formats.Unsupportedf(img.name, "finishing the size of a differencing VHD")
	case size < 0 || size%sectorSize != 0 || size > img.size:
		return fmt.Errorf("%w: %s: final size %d is not a whole number of sectors up to the provisional %d", formats.ErrInvalidOption, img.name, size, img.size)
	case !img.dynamic():
		if err := img.zeroPast(size); err != nil {
			return err
		}
		if err := img.Resize(ctx, size, true); err != nil {
			return err
		}
		img.ft.OriginalSize = uint64(size)
		return img.writeFooterAt(size)
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	entries := int((size + img.blockSize - 1) / img.blockSize)
	for b := entries; b < len(img.bat); b++ {
		if img.bat[b] != batUnused {
			return formats.Corruptf(img.name, "BAT", int64(img.hdr.TableOffset)+4*int64(b),
				"block %d past the final size %d is allocated: the size cannot be finished", b, size)
		}
	}
	img.bat, img.full = img.bat[:entries], img.full[:(entries+63)/64]
	img.dirtyLo, img.dirtyHi = min(img.dirtyLo, entries), min(img.dirtyHi, entries)
	img.hdr.MaxTableEntries = uint32(entries)
	if _, err := img.f.WriteAt(img.hdr.encode(), int64(img.ft.DataOffset)); err != nil {
		return fmt.Errorf("%s: writing dynamic header: %w", img.name, err)
	}
	ft := img.ft
	img.resizeFooter(&ft, size)
	ft.OriginalSize = uint64(size)
	img.ft, img.size, img.footDirt = ft, size, true
	return nil
}

// zeroPast checks that a fixed disk holds only zeros from size to its end:
// the file's holes are skipped (Extents), its data ranges read (past a
// stream's end only the last chunk's tail can have been written, zeros).
func (img *Image) zeroPast(size int64) error {
	exts, err := img.Extents(size, img.size-size)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, e := range exts {
		if e.Kind != formats.Data {
			continue
		}
		for off := e.Offset; off < e.End(); off += int64(len(buf)) {
			b := buf[:min(int64(len(buf)), e.End()-off)]
			if _, err := img.f.ReadAt(b, off); err != nil {
				return fmt.Errorf("%s: %w", img.name, err)
			}
			if !zero.Is(b) {
				return formats.Corruptf(img.name, "fixed disk data", off, "data past the final size %d: the size cannot be finished", size)
			}
		}
	}
	return nil
}
