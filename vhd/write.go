package vhd

import (
	"encoding/binary"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// maxBlockSector bounds where a block may start: BAT entries are 32-bit
// sector numbers.
const maxBlockSector = batUnused - 1

// Sequential reports whether this image must be written in increasing offset
// order: a fixed disk going to a stream, whose footer comes last.
func (img *Image) Sequential() bool { return img.stream }

// WriteAt writes virtual disk bytes. Dynamic disks allocate blocks at the
// end of the file under a lock; differencing disks serialise writes, since
// a partial sector not yet in the child must be merged with the parent's.
func (img *Image) WriteAt(p []byte, off int64) (int, error) {
	if !img.writable {
		return 0, fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if err := imageio.CheckWrite(img.name, len(p), off, img.size); err != nil {
		return 0, err
	}
	var err error
	switch {
	case !img.dynamic():
		if _, err = img.f.WriteAt(p, off); err != nil {
			err = fmt.Errorf("%s: %w", img.name, err)
		}
	case img.differencing():
		img.mu.Lock()
		err = img.writeDiffLocked(p, off)
		img.mu.Unlock()
	default:
		err = img.writeDynamic(p, off)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (img *Image) writeDynamic(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := off/img.blockSize, off%img.blockSize
		n := min(int64(len(p)), img.blockSize-in)
		e, err := img.blockForWrite(int(blk))
		if err != nil {
			return err
		}
		if _, err := img.f.WriteAt(p[:n], img.dataOff(e, in)); err != nil {
			return fmt.Errorf("%s: %w", img.name, err)
		}
		p, off = p[n:], off+n
	}
	return nil
}

func (img *Image) isFull(blk int) bool { return img.full[blk/64]&(1<<(blk%64)) != 0 }
func (img *Image) markFull(blk int)    { img.full[blk/64] |= 1 << (blk % 64) }
func (img *Image) markDirty(blk int) {
	img.dirtyLo, img.dirtyHi = min(img.dirtyLo, blk), max(img.dirtyHi, blk+1)
}
func (img *Image) onesBitmap() []byte { return fill(make([]byte, img.bitmapSize), 0xFF) }
func fill(b []byte, v byte) []byte {
	for i := range b {
		b[i] = v
	}
	return b
}
func (img *Image) blockBytes() int64 { return img.bitmapSize + img.blockSize }

// blockForWrite returns the BAT entry of block blk of a dynamic disk,
// allocating the block first. Its sector bitmap is all ones, as qemu keeps
// it: every sector is in the file (sectors never written are zeros there).
func (img *Image) blockForWrite(blk int) (uint32, error) {
	img.mu.RLock()
	e, ok := img.bat[blk], img.isFull(blk)
	img.mu.RUnlock()
	if e != batUnused && ok {
		return e, nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	e = img.bat[blk]
	if e == batUnused {
		return img.allocateLocked(blk, img.onesBitmap())
	}
	if !img.isFull(blk) { // a block of an existing image: claim every sector, as qemu does
		if _, err := img.f.WriteAt(img.onesBitmap(), int64(e)*sectorSize); err != nil {
			return 0, fmt.Errorf("%s: writing sector bitmap: %w", img.name, err)
		}
		img.markFull(blk)
	}
	return e, nil
}

// allocateLocked places block blk at the end of the data, writing its
// bitmap there (which also overwrites the old trailing footer). The caller
// holds img.mu.
func (img *Image) allocateLocked(blk int, bitmap []byte) (uint32, error) {
	sector := img.nextFree / sectorSize
	if sector > maxBlockSector {
		return 0, formats.Limitf(img.name, "BAT", -1, "the file has reached the %d-sector limit of a VHD", int64(maxBlockSector))
	}
	if _, err := img.f.WriteAt(bitmap, img.nextFree); err != nil {
		return 0, fmt.Errorf("%s: writing sector bitmap: %w", img.name, err)
	}
	e := uint32(sector)
	img.bat[blk] = e
	img.nextFree += img.blockBytes()
	img.markDirty(blk)
	if img.full != nil && bitmap[0] == 0xFF {
		img.markFull(blk)
	}
	img.footDirt = true
	return e, nil
}

// writeDiffLocked writes p at off of a differencing disk and sets the
// sector bitmap bits of exactly the sectors written. The caller holds img.mu.
func (img *Image) writeDiffLocked(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := off/img.blockSize, off%img.blockSize
		n := min(int64(len(p)), img.blockSize-in)
		e := img.bat[blk]
		if e == batUnused {
			var err error
			if e, err = img.allocateLocked(int(blk), make([]byte, img.bitmapSize)); err != nil {
				return err
			}
			img.bitmaps.Put(int(blk), make([]byte, img.bitmapSize), false)
		}
		bm, err := img.bitmap(int(blk), e)
		if err != nil {
			return err
		}
		if err := img.writeSectors(int(blk), e, bm, p[:n], in); err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// diffUnitBytes is the granularity of writes to a differencing disk: a
// byte of sector bitmap (8 sectors). Some readers (libvhdi) take a bitmap
// byte as one unit, so vdisk never leaves a byte half set: a partial unit is
// completed with the bytes it had (child or parent) before being written.
const diffUnitBytes = 8 * sectorSize

// writeSectors writes p at in inside block blk (entry e, bitmap bm) in
// whole units, and sets their bitmap bits.
func (img *Image) writeSectors(blk int, e uint32, bm []byte, p []byte, in int64) error {
	unit := min(diffUnitBytes, img.blockSize)
	end := in + int64(len(p))
	for off := in; off < end; {
		uStart := off / unit * unit
		if off == uStart && end-off >= unit {
			whole := (end - off) / unit * unit
			if _, err := img.f.WriteAt(p[off-in:off-in+whole], img.dataOff(e, off)); err != nil {
				return fmt.Errorf("%s: %w", img.name, err)
			}
			off += whole
			continue
		}
		chunkEnd := min(end, uStart+unit)
		if err := img.writePartialUnit(blk, e, bm, p[off-in:chunkEnd-in], off, uStart, unit); err != nil {
			return err
		}
		off = chunkEnd
	}
	firstSec := in / unit * unit / sectorSize
	lastSec := ((end-1)/unit*unit+unit)/sectorSize - 1
	changed := false
	for s := firstSec; s <= lastSec; s++ {
		if !bitSet(bm, s) {
			setBit(bm, s)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	lo, hi := firstSec/8, lastSec/8+1
	if _, err := img.f.WriteAt(bm[lo:hi], int64(e)*sectorSize+lo); err != nil {
		return fmt.Errorf("%s: writing sector bitmap: %w", img.name, err)
	}
	return nil
}

// writePartialUnit writes p at off, inside the unit at uStart: directly when
// every sector of the unit is in the child, else by rewriting the whole unit
// with its current content (child and parent sectors) and p on top.
func (img *Image) writePartialUnit(blk int, e uint32, bm []byte, p []byte, off, uStart, unit int64) error {
	complete := true
	for s := uStart / sectorSize; s < (uStart+unit)/sectorSize; s++ {
		complete = complete && bitSet(bm, s)
	}
	if complete {
		if _, err := img.f.WriteAt(p, img.dataOff(e, off)); err != nil {
			return fmt.Errorf("%s: %w", img.name, err)
		}
		return nil
	}
	buf := make([]byte, unit)
	err := forRuns(bm, uStart, unit, func(runOff, runLen int64, present bool) error {
		q := buf[runOff-uStart : runOff-uStart+runLen]
		if present {
			return img.readFile(q, img.dataOff(e, runOff))
		}
		return imageio.ReadBacking(img.parent, q, int64(blk)*img.blockSize+runOff)
	})
	if err != nil {
		return err
	}
	copy(buf[off-uStart:], p)
	if _, err := img.f.WriteAt(buf, img.dataOff(e, uStart)); err != nil {
		return fmt.Errorf("%s: %w", img.name, err)
	}
	return nil
}

// WriteZeroes records [off, off+length) as zeros: unallocated blocks of a
// dynamic disk already read as zeros; a fixed disk punches a hole where it
// can; a differencing disk writes zeros (to hide the parent's bytes).
func (img *Image) WriteZeroes(off, length int64) error {
	if !img.writable {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if length < 0 || imageio.CheckWrite(img.name, 0, off, img.size) != nil || length > img.size-off {
		return fmt.Errorf("%s: zero range %d+%d outside the disk", img.name, off, length)
	}
	switch {
	case img.stream:
		return nil // the gap before the next write (or the footer) is zero-filled
	case !img.dynamic():
		if err := fileio.ZeroRange(img.f, off, length); err != nil {
			return fmt.Errorf("%s: %w", img.name, err)
		}
		return nil
	case img.differencing():
		return fileio.WriteZeros(img, off, length)
	}
	for end := off + length; off < end; {
		blk, in := off/img.blockSize, off%img.blockSize
		n := min(end-off, img.blockSize-in)
		if e := img.entry(int(blk)); e != batUnused {
			if err := fileio.WriteZeros(img, off, n); err != nil {
				return err
			}
		}
		off += n
	}
	return nil
}

// Flush writes the BAT entries changed since the last flush and the footer
// (both copies) at the end of the data; a fixed disk on a stream writes its
// footer now, once, after the data.
func (img *Image) Flush() error {
	if !img.writable {
		return nil
	}
	if !img.dynamic() {
		if img.stream && !img.wrote {
			img.wrote = true
			return img.writeFooterAt(img.size)
		}
		return nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.dirtyLo < img.dirtyHi {
		b := make([]byte, 4*(img.dirtyHi-img.dirtyLo))
		for i := range img.dirtyHi - img.dirtyLo {
			binary.BigEndian.PutUint32(b[4*i:], img.bat[img.dirtyLo+i])
		}
		if _, err := img.f.WriteAt(b, int64(img.hdr.TableOffset)+4*int64(img.dirtyLo)); err != nil {
			return fmt.Errorf("%s: writing BAT: %w", img.name, err)
		}
		img.dirtyLo, img.dirtyHi = len(img.bat), 0
	}
	if img.footDirt {
		if err := img.writeFooterAt(img.nextFree); err != nil {
			return err
		}
		if err := img.writeFooterAt(0); err != nil {
			return err
		}
		img.footDirt = false
	}
	return nil
}

// RawRange: a fixed disk stores the virtual disk verbatim from file offset
// 0, with the footer behind it; dynamic and differencing disks store
// nothing verbatim.
func (img *Image) RawRange(off int64) (formats.File, int64, int64) {
	if img.dynamic() || img.stream || off < 0 || off >= img.size {
		return nil, 0, 0
	}
	return img.f, off, img.size - off
}
