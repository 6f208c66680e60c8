package vhdx

import (
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// entry returns the BAT entry of payload block blk of a BAT held whole
// (always the case for a Writer).
func (img *Image) entry(blk int64) uint64 {
	img.mu.RLock()
	defer img.mu.RUnlock()
	return img.bat[img.batIndex(blk)]
}

// batAt returns BAT entry i, from the whole BAT or through the page cache.
func (img *Image) batAt(i int64) (uint64, error) {
	if img.pages != nil {
		return img.pages.get(i)
	}
	img.mu.RLock()
	defer img.mu.RUnlock()
	return img.bat[i], nil
}

// payload returns the BAT entry of payload block blk.
func (img *Image) payload(blk int64) (uint64, error) { return img.batAt(img.batIndex(blk)) }

// ReadAt reads the virtual disk. Safe for concurrent use.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	return imageio.ReadClipped(p, off, img.size, img.read)
}

func (img *Image) read(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := off/img.blockSize, off%img.blockSize
		e, err := img.payload(blk)
		if err != nil {
			return err
		}
		n := min(int64(len(p)), img.blockSize-in)
		switch batState(e) {
		case payloadFull:
			// Coalesce following blocks stored right after this one.
			host := batOffset(e) + in
			for n < int64(len(p)) {
				next, err := img.payload(blk + 1)
				if err != nil || batState(next) != payloadFull || batOffset(next) != host+n {
					break
				}
				blk++
				n = min(int64(len(p)), n+img.blockSize)
			}
			err = fileio.ReadPadded(img.r, p[:n], host)
		case payloadPartial:
			err = img.readPartial(p[:n], blk, in, e)
		case payloadNotPres:
			for n < int64(len(p)) {
				if next, err := img.payload(blk + 1); err != nil || batState(next) != payloadNotPres {
					break
				}
				blk++
				n = min(int64(len(p)), n+img.blockSize)
			}
			err = imageio.ReadBacking(img.Backing(), p[:n], off)
		default: // ZERO, UNDEFINED, UNMAPPED
			clear(p[:n])
		}
		if err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// sectorRuns calls fn for each run of sectors of block blk in [in, in+n)
// (byte offsets inside the block) with present=true where the sector bitmap
// says this file holds the data.
func (img *Image) sectorRuns(blk, in, n int64, fn func(start, length int64, present bool) error) error {
	bm, err := img.batAt(img.bitmapIndex(blk))
	if err != nil {
		return err
	}
	ss := img.logicalSector
	first, last := in/ss, (in+n-1)/ss // sectors inside the block
	bit0 := (blk%img.chunkRatio)*img.sectorsPerBlk + first
	bitN := (blk%img.chunkRatio)*img.sectorsPerBlk + last
	bitmap := make([]byte, bitN/8-bit0/8+1)
	if err := fileio.ReadPadded(img.r, bitmap, batOffset(bm)+bit0/8); err != nil {
		return err
	}
	bitAt := func(s int64) bool {
		b := bit0 + s - first - bit0/8*8
		return bitmap[b/8]>>(b%8)&1 != 0
	}
	for s := first; s <= last; {
		present := bitAt(s)
		e := s + 1
		for e <= last && bitAt(e) == present {
			e++
		}
		start, end := max(in, s*ss), min(in+n, e*ss)
		if err := fn(start, end-start, present); err != nil {
			return err
		}
		s = e
	}
	return nil
}

func (img *Image) readPartial(p []byte, blk, in int64, e uint64) error {
	base := blk * img.blockSize
	return img.sectorRuns(blk, in, int64(len(p)), func(start, length int64, present bool) error {
		dst := p[start-in : start-in+length]
		if present {
			return fileio.ReadPadded(img.r, dst, batOffset(e)+start)
		}
		return imageio.ReadBacking(img.Backing(), dst, base+start)
	})
}

// Extents reports the BAT's view: FULLY_PRESENT blocks (and present
// sectors of PARTIALLY_PRESENT ones) are Data at their file offset; ZERO,
// UNDEFINED and UNMAPPED blocks read as zeros and are Zero; NOT_PRESENT
// blocks (and absent sectors) are Unallocated: the parent's, or zeros.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	if off < 0 {
		return nil, fmt.Errorf("%s: negative offset %d", img.name, off)
	}
	length = min(length, img.size-off)
	var out []formats.Extent
	add := func(e formats.Extent) { out = imageio.AppendExtent(out, e) }
	for length > 0 {
		blk, in := off/img.blockSize, off%img.blockSize
		n := min(length, img.blockSize-in)
		e, err := img.payload(blk)
		if err != nil {
			return nil, err
		}
		switch batState(e) {
		case payloadFull:
			add(formats.Extent{Offset: off, Length: n, Kind: formats.Data, HostOffset: batOffset(e) + in})
		case payloadPartial:
			base := blk * img.blockSize
			err := img.sectorRuns(blk, in, n, func(start, l int64, present bool) error {
				if present {
					add(formats.Extent{Offset: base + start, Length: l, Kind: formats.Data, HostOffset: batOffset(e) + start})
				} else {
					add(formats.Extent{Offset: base + start, Length: l, Kind: formats.Unallocated, HostOffset: -1})
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		case payloadNotPres:
			add(formats.Extent{Offset: off, Length: n, Kind: formats.Unallocated, HostOffset: -1})
		default:
			add(formats.Extent{Offset: off, Length: n, Kind: formats.Zero, HostOffset: -1})
		}
		off, length = off+n, length-n
	}
	return out, nil
}
