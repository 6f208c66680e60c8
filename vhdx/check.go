package vhdx

import (
	"context"
	"fmt"
	"slices"

	"github.com/vdiskio/vdisk/formats"
)

// Check verifies what Open does not refuse outright: blocks running past
// the end of the file and blocks overlapping each other. A pending log is
// reported as a check error (qemu cannot open such an image without
// repairing it); with RepairAll it is replayed into the file, which is the
// only time vdisk modifies a source image, and counted as one corruption
// fixed, as qemu does.
func (img *Image) Check(ctx context.Context, opts formats.CheckOptions) (*formats.CheckReport, error) {
	rep := &formats.CheckReport{}
	if len(img.entries) > 0 {
		if !opts.RepairAll {
			rep.CheckErrors++
			rep.Messages = append(rep.Messages, fmt.Sprintf(
				"VHDX image file '%s' contains a log that needs to be replayed; to replay it, run: vdisk check -r all '%s'", img.name, img.name))
		} else {
			if err := img.replayLog(); err != nil {
				return nil, err
			}
			rep.CorruptionsFixed++
		}
	}
	if err := img.checkBlocks(ctx, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// replayLog writes the pending log into the file, clears the log GUID in
// both headers and reloads the image.
func (img *Image) replayLog() error {
	size, err := img.f.Size()
	if err != nil {
		return err
	}
	if _, err := replayOnDisk(img.f, img.entries, size); err != nil {
		return fmt.Errorf("%s: replaying the log: %w", img.name, err)
	}
	h := img.hdr
	h.LogGUID = guid{}
	if err := img.updateHeaders(h); err != nil {
		return err
	}
	if err := formats.Sync(img.f); err != nil {
		return err
	}
	reloaded := &Image{f: img.f, r: img.f, name: img.name}
	if err := reloaded.load(formats.OpenOptions{Limits: img.limits}); err != nil {
		return err
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	img.r, img.entries, img.fileSize, img.hdr, img.hdrSlot = reloaded.r, nil, reloaded.fileSize, reloaded.hdr, reloaded.hdrSlot
	img.regions, img.bat, img.pages = reloaded.regions, reloaded.bat, reloaded.pages
	if img.pages != nil {
		img.pages.img = img
	}
	return nil
}

// updateHeaders writes h (with a new FileWriteGuid) to both header slots,
// the non-current one first, each with a higher sequence number, so that a
// crash in between leaves a valid current header.
func (img *Image) updateHeaders(h header) error {
	var err error
	if h.FileWriteGUID, err = newGUID(); err != nil {
		return err
	}
	slot := 1 - img.hdrSlot
	for i := 0; i < 2; i++ {
		h.Sequence++
		if _, err := img.f.WriteAt(h.encode(), int64(header1Offset+slot*64*kib)); err != nil {
			return fmt.Errorf("%s: writing header: %w", img.name, err)
		}
		if err := formats.Sync(img.f); err != nil {
			return err
		}
		img.hdr, img.hdrSlot = h, slot
		slot = 1 - slot
	}
	return nil
}

// checkBlocks reports blocks that end past the end of the file and blocks
// that overlap one another (Open already refused bad states, blocks outside
// the file and blocks overlapping the metadata structures). Each allocated
// block costs 8 bytes: its MiB offset and BAT index packed together.
func (img *Image) checkBlocks(ctx context.Context, rep *formats.CheckReport) error {
	var blocks []uint64 // offset in MiB << 32 | BAT index
	maxBlocks := img.limits.WithDefaults().MaxTableBytes / 8
	for i, n := int64(0), img.batEntries(); i < n; i++ {
		if i%(1<<16) == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e, err := img.batAt(i)
		if err != nil {
			rep.CheckErrors++
			rep.Messages = append(rep.Messages, err.Error())
			i = (i/batPageEntries+1)*batPageEntries - 1 // the rest of this BAT page is unusable
			continue
		}
		if !img.allocated(i, e) {
			continue
		}
		if int64(len(blocks)) == maxBlocks {
			rep.CheckErrors++
			rep.Messages = append(rep.Messages, fmt.Sprintf("more than %d allocated blocks: overlaps not checked past BAT entry %d", maxBlocks, i))
			maxBlocks = -1
		}
		off, length := batOffset(e), img.blockLen(int64(i))
		if off/mib > 1<<32-1 { // unreachable for a file Open accepted
			rep.Corruptions++
			continue
		}
		if maxBlocks >= 0 {
			blocks = append(blocks, uint64(off/mib)<<32|uint64(i))
		}
		if off+length > img.fileSize {
			rep.Corruptions++
			rep.Messages = append(rep.Messages, fmt.Sprintf(
				"VHDX BAT entry %d: block at %d+%d ends past the end of the %d-byte file (truncated image?)", i, off, length, img.fileSize))
		}
	}
	slices.Sort(blocks)
	for k := 1; k < len(blocks); k++ {
		prevIdx, curIdx := int64(blocks[k-1]&(1<<32-1)), int64(blocks[k]&(1<<32-1))
		prevOff, curOff := int64(blocks[k-1]>>32)*mib, int64(blocks[k]>>32)*mib
		if prevOff+img.blockLen(prevIdx) > curOff {
			rep.Corruptions++
			rep.Messages = append(rep.Messages, fmt.Sprintf(
				"VHDX BAT entries %d and %d: blocks at %d and %d overlap", prevIdx, curIdx, prevOff, curOff))
		}
	}
	return nil
}

// allocated reports whether BAT entry i (with value e) points at a block
// in the file.
func (img *Image) allocated(i int64, e uint64) bool {
	st := batState(e)
	if img.isBitmapIndex(i) {
		return st == bitmapPresent
	}
	return st == payloadFull || st == payloadPartial
}

// blockLen is the size of the block BAT entry i describes.
func (img *Image) blockLen(i int64) int64 {
	if img.isBitmapIndex(i) {
		return bitmapBlockSize
	}
	return img.blockSize
}
