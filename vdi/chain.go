package vdi

import (
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// A differencing VDI (type 4) links to its parent by UUID only: the
// header's uuidLinkage (offset 424) is the parent's uuidCreate and
// uuidParentModify (440) the parent's uuidModify when the link was made.
// VirtualBox keeps the parent's path in its media registry, not in the
// file, so vdisk is told the parent with --parent (OpenOptions.Parents).

// SetBacking relinks the image (formats.BackingSetter): backing must be a
// VDI image (its UUIDs are stored) or nil with name "" (the image becomes a
// normal dynamic one: free blocks then read as zeros). name is not stored
// (VDI has no field for it); it is the path the parent was opened by. The
// block map and data are flushed and synced before the header is
// rewritten, and the header write (one sector) is synced: an interruption
// leaves the old link or the new one.
func (img *Image) SetBacking(name, format string, backing formats.Image) error {
	if !img.writable {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if format != "" && format != Name {
		return formats.Unsupportedf(img.name, "a VDI parent must be a VDI image, not %s", format)
	}
	var parent *Image
	if backing != nil {
		p, ok := backing.(*Image)
		if !ok {
			return formats.Unsupportedf(img.name, "a VDI parent must be a VDI image, not %s", backing.Format())
		}
		parent = p
	} else if name != "" {
		return formats.Unsupportedf(img.name, "linking a VDI image to %q without opening it (VDI stores the parent's UUID, not its name)", name)
	}
	if err := img.Flush(); err != nil {
		return err
	}
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: syncing before the header rewrite: %w", img.name, err)
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	h := img.hdr
	if parent != nil {
		h.Type, h.UUIDLinkage, h.UUIDParentModify = typeDiff, parent.hdr.UUIDCreate, parent.hdr.UUIDModify
	} else {
		h.Type, h.UUIDLinkage, h.UUIDParentModify = typeNormal, uuid{}, uuid{}
	}
	h.BlocksAllocated = img.allocated
	if _, err := img.f.WriteAt(h.encode(), 0); err != nil {
		return fmt.Errorf("%s: rewriting the VDI header: %w", img.name, err)
	}
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: syncing the VDI header: %w", img.name, err)
	}
	img.hdr = h
	if img.parent != nil && img.parent != backing {
		img.parent.Close()
	}
	img.parent, img.parentPath = backing, name
	return nil
}

// MakeEmpty frees every block (formats.Emptier), so that a differencing
// image reads as its parent again: the block map (all 0xFFFFFFFF) is
// written and synced first, then the header with no allocated blocks, then
// the data area is cut off. An interruption after the map leaves blocks in
// the data area that no entry uses (VirtualBox and qemu-img check ignore
// them; the allocated count is rewritten with the header).
func (img *Image) MakeEmpty() error {
	if !img.writable {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if err := img.Flush(); err != nil {
		return err
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if len(img.pending) > 0 {
		return fmt.Errorf("%s: emptying while blocks are being written", img.name)
	}
	for i := range img.bmap {
		img.bmap[i] = blockFree
	}
	img.fresh = nil
	if err := img.writeMap(0, len(img.bmap)); err != nil {
		return err
	}
	if err := formats.Sync(img.f); err != nil {
		return err
	}
	img.allocated, img.hdr.BlocksAllocated = 0, 0
	if _, err := img.f.WriteAt(img.hdr.encode(), 0); err != nil {
		return fmt.Errorf("%s: rewriting the VDI header: %w", img.name, err)
	}
	if err := formats.Sync(img.f); err != nil {
		return err
	}
	if err := img.f.Truncate(int64(img.hdr.DataOff)); err != nil {
		return fmt.Errorf("%s: cutting off the data area: %w", img.name, err)
	}
	img.virginFrom = int64(img.hdr.DataOff)
	img.dirtyLo, img.dirtyHi, img.hdrDirty = 0, 0, false
	return nil
}
