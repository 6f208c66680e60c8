package vhdx

import (
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Writing PARTIALLY_PRESENT blocks of a differencing disk (MS-VHDX 2.5.1.1):
// the block holds only the sectors written; the chunk's sector bitmap has a
// 1 for each of them. Everything here that touches the bitmap or a sector
// not yet present runs under allocMu, so that concurrent writers of
// disjoint byte ranges sharing a bitmap byte or a sector do not lose each
// other's bits or bytes. Data is written before its bits are set.

// allocPartial allocates block blk as PARTIALLY_PRESENT (and its chunk's
// sector bitmap block if needed). Called with allocMu held.
func (w *Writer) allocPartial(blk int64) int64 {
	bi := w.bitmapIndex(blk)
	if batState(w.bat[bi]) != bitmapPresent {
		// A new 1 MiB bitmap block past the end of the file reads as zeros:
		// no sector is present yet.
		w.setEntry(bi, batEntry(bitmapPresent, uint64(w.fileEnd)))
		w.fileEnd += bitmapBlockSize
	}
	host := w.fileEnd
	w.fileEnd += w.blockSize
	w.setEntry(w.batIndex(blk), batEntry(payloadPartial, uint64(host)))
	return host
}

// writePartial writes p at offset in of PARTIALLY_PRESENT block blk stored
// at host: whole sectors directly, then their bits; a sector written only
// in part is first filled from the parent unless already present.
func (w *Writer) writePartial(p []byte, blk, in, host int64) error {
	ss := w.logicalSector
	end := in + int64(len(p))
	for pos := in; pos < end; {
		sector := pos / ss
		start := sector * ss
		if pos == start && end >= start+ss {
			runEnd := end / ss * ss
			if _, err := w.f.WriteAt(p[pos-in:runEnd-in], host+pos); err != nil {
				return err
			}
			if err := w.setBits(blk, sector, (runEnd-pos)/ss); err != nil {
				return err
			}
			pos = runEnd
			continue
		}
		segEnd := min(end, start+ss)
		if err := w.writeSectorPart(p[pos-in:segEnd-in], blk, sector, pos-start, host); err != nil {
			return err
		}
		pos = segEnd
	}
	return nil
}

// writeSectorPart writes part (at offset at inside the sector) of sector
// sector of block blk.
func (w *Writer) writeSectorPart(part []byte, blk, sector, at, host int64) error {
	ss := w.logicalSector
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	present, err := w.bitSet(blk, sector)
	if err != nil {
		return err
	}
	if present {
		_, err := w.f.WriteAt(part, host+sector*ss+at)
		return err
	}
	if w.Backing() == nil {
		return formats.Unsupportedf(w.name, "writing part of sector %d of block %d of a differencing VHDX opened without its parent", sector, blk)
	}
	buf := make([]byte, ss)
	if err := imageio.ReadBacking(w.Backing(), buf, blk*w.blockSize+sector*ss); err != nil {
		return err
	}
	copy(buf[at:], part)
	if _, err := w.f.WriteAt(buf, host+sector*ss); err != nil {
		return err
	}
	return w.setBitsLocked(blk, sector, 1)
}

// bitPos returns the file offset of the sector bitmap of blk's chunk and
// the bit index of the block's sector. Called with allocMu held (the BAT
// only changes under it).
func (w *Writer) bitPos(blk, sector int64) (bitmapOff, bit int64) {
	return batOffset(w.bat[w.bitmapIndex(blk)]), (blk%w.chunkRatio)*w.sectorsPerBlk + sector
}

func (w *Writer) bitSet(blk, sector int64) (bool, error) {
	bm, bit := w.bitPos(blk, sector)
	var b [1]byte
	if err := fileio.ReadPadded(w.f, b[:], bm+bit/8); err != nil {
		return false, err
	}
	return b[0]>>(bit%8)&1 != 0, nil
}

func (w *Writer) setBits(blk, first, count int64) error {
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	return w.setBitsLocked(blk, first, count)
}

// setBitsLocked sets count bits from sector first of block blk (LSB first).
func (w *Writer) setBitsLocked(blk, first, count int64) error {
	bm, bit0 := w.bitPos(blk, first)
	bitN := bit0 + count
	buf := make([]byte, (bitN-1)/8-bit0/8+1)
	if err := fileio.ReadPadded(w.f, buf, bm+bit0/8); err != nil {
		return err
	}
	for b := bit0; b < bitN; b++ {
		i := b/8 - bit0/8
		buf[i] |= 1 << (b % 8)
	}
	_, err := w.f.WriteAt(buf, bm+bit0/8)
	return err
}
