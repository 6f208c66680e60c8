package vdi

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Create makes a new VDI image as VirtualBox lays it out: a 400-byte
// version 1.1 header, the block map at 1 MiB and the data area at the next
// 1 MiB boundary after it, 1 MiB blocks. With static=on every block is
// allocated in order and the file is extended (sparsely) to its full size.
func Create(ctx context.Context, req formats.CreateRequest) (*Image, error) {
	if req.Size < 0 {
		return nil, fmt.Errorf("%s: negative size", req.Name)
	}
	if err := req.Open.Limits.CheckVirtualSize(req.Name, req.Size); err != nil {
		return nil, err
	}
	var o CreateOptions
	if err := req.Options.Decode(&o); err != nil {
		return nil, err
	}
	static := o.Static
	parent, parentPath, err := openCreateParent(ctx, req, o)
	if err != nil {
		return nil, err
	}
	img, err := create(req, static, parent)
	if err != nil {
		if parent != nil {
			parent.Close()
		}
		return nil, err
	}
	img.parentPath = parentPath
	return img, nil
}

// openCreateParent opens the backing_file of a new differencing image
// (nil without one): a VDI image, through the resolver.
func openCreateParent(ctx context.Context, req formats.CreateRequest, o CreateOptions) (*Image, string, error) {
	ref := o.BackingFile
	if ref == "" {
		return nil, "", nil
	}
	if f := o.BackingFmt; f != "" && f != Name {
		return nil, "", formats.Unsupportedf(req.Name, "a differencing VDI needs a VDI parent, not backing_fmt=%s", f)
	}
	if o.Static {
		return nil, "", formats.Unsupportedf(req.Name, "a differencing VDI cannot be static")
	}
	p, err := formats.OpenReference(ctx, req.Name, ref, Name, req.Open)
	if err != nil {
		return nil, "", err
	}
	pv, ok := p.(*Image)
	if !ok {
		p.Close()
		return nil, "", formats.Unsupportedf(req.Name, "parent %q is %s, not a VDI image", ref, p.Format())
	}
	path, _ := req.Open.References().Resolve(req.Name, ref)
	return pv, path, nil
}

func create(req formats.CreateRequest, static bool, parent *Image) (*Image, error) {
	if req.Size == 0 && parent != nil {
		req.Size = parent.Size()
	}
	h, err := newHeader(req.Size, static)
	if err != nil {
		return nil, err
	}
	if parent != nil {
		h.Type, h.UUIDLinkage, h.UUIDParentModify = typeDiff, parent.hdr.UUIDCreate, parent.hdr.UUIDModify
	}
	if err := req.Open.Limits.CheckTable(req.Name, "VDI block map", int64(h.BlocksOff), uint64(h.Blocks), 4); err != nil {
		return nil, err
	}
	img := &Image{
		f: req.File, name: req.Name, hdr: h, size: req.Size,
		blockBytes: defaultBlock, stride: defaultBlock, writable: true,
		allocated: h.BlocksAllocated, pending: map[uint32]chan struct{}{},
		bmap: make([]uint32, h.Blocks), dirtyHi: int(h.Blocks), hdrDirty: true,
		virginFrom: int64(h.DataOff),
	}
	if parent != nil {
		img.parent = parent
	}
	for i := range img.bmap {
		img.bmap[i] = blockFree
		if static {
			img.bmap[i] = uint32(i)
		}
	}
	end := int64(h.DataOff)
	if static {
		end += int64(h.Blocks) * defaultBlock
		img.fresh = make([]uint64, (h.Blocks+63)/64)
		for i := range img.fresh {
			img.fresh[i] = ^uint64(0)
		}
	}
	if err := req.File.Truncate(end); err != nil {
		return nil, err
	}
	if err := img.Flush(); err != nil {
		return nil, err
	}
	return img, nil
}

// WriteAt writes p at virtual offset off. Blocks not yet allocated are
// appended to the data area: several whole blocks in one file write when p
// covers them; a partial block is written alone when it lies past the old
// end of the file (the rest of it is a hole), else zero-filled around p.
// Allocation is safe for concurrent writers: a block being allocated makes
// other writers to it wait until its map entry is published. The block map
// and header are written by Flush, in as few writes as possible.
func (img *Image) WriteAt(p []byte, off int64) (int, error) {
	if !img.writable {
		return 0, fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if err := imageio.CheckWrite(img.name, len(p), off, img.size); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		n, err := img.writeRun(p[done:], off+int64(done))
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// writeRun writes a prefix of p at off and returns its length.
func (img *Image) writeRun(p []byte, off int64) (int, error) {
	b := off / img.blockBytes
	inBlock := off % img.blockBytes
	for {
		img.mu.Lock()
		if img.failed != nil {
			img.mu.Unlock()
			return 0, img.failed
		}
		e := img.bmap[b]
		if isAllocated(e) {
			n := min(int64(len(p)), img.blockBytes-inBlock)
			if img.fresh != nil {
				img.fresh[b/64] &^= 1 << (b % 64) // written: no longer known zero
			}
			img.mu.Unlock()
			if _, err := img.f.WriteAt(p[:n], img.hostOff(e)+inBlock); err != nil {
				return 0, err
			}
			return int(n), nil
		}
		if ch, busy := img.pending[uint32(b)]; busy {
			img.mu.Unlock()
			<-ch
			continue
		}
		count := img.reserveRun(b, inBlock, int64(len(p)))
		if int64(img.allocated)+count > int64(len(img.bmap)) {
			// Leaked blocks (an interrupted write) used up the data area.
			img.mu.Unlock()
			return 0, formats.Corruptf(img.name, "VDI header", 388,
				"%d allocated blocks leave no data block free for block %d of %d; refusing to write (run check)", img.allocated, b, len(img.bmap))
		}
		idx := img.allocated
		img.allocated += uint32(count)
		ch := make(chan struct{})
		for i := range count {
			img.pending[uint32(b+i)] = ch
		}
		img.mu.Unlock()
		n, err := img.writeNewBlocks(p, b, inBlock, count, idx)
		img.publish(b, count, idx, ch, err)
		return n, err
	}
}

// reserveRun counts the blocks from b that a write of length bytes at
// inBlock can allocate in one file write: the first, plus following blocks
// that are free, not pending and wholly covered. Called with mu held.
func (img *Image) reserveRun(b, inBlock, length int64) int64 {
	if inBlock != 0 || length < img.blockBytes {
		return 1
	}
	count := int64(1)
	for b+count < int64(len(img.bmap)) && (count+1)*img.blockBytes <= length {
		e := img.bmap[b+count]
		if isAllocated(e) {
			break
		}
		if _, busy := img.pending[uint32(b+count)]; busy {
			break
		}
		count++
	}
	return count
}

// writeNewBlocks writes count new blocks at data index idx holding p at
// inBlock of block b (zero-filled around it) and returns how much of p
// they hold.
func (img *Image) writeNewBlocks(p []byte, b, inBlock, count int64, idx uint32) (int, error) {
	fileOff := img.hostOff(idx)
	if inBlock == 0 && int64(len(p)) >= count*img.blockBytes {
		n := count * img.blockBytes
		if _, err := img.f.WriteAt(p[:n], fileOff); err != nil {
			return 0, err
		}
		return int(n), nil
	}
	n := min(int64(len(p)), img.blockBytes-inBlock)
	if img.isDiff() {
		return img.writeOverParent(p[:n], b, inBlock, fileOff)
	}
	if fileOff-int64(img.hdr.BlockExtraBytes) >= img.virginFrom {
		// The block lies where the file has never held anything: the
		// rest of it reads as zeros without being written (Flush extends
		// the file over it).
		if _, err := img.f.WriteAt(p[:n], fileOff+inBlock); err != nil {
			return 0, err
		}
		return int(n), nil
	}
	buf, put := img.blockBuf(img.blockBytes)
	defer put()
	copy(buf[inBlock:], p[:n])
	if _, err := img.f.WriteAt(buf, fileOff); err != nil {
		return 0, err
	}
	return int(n), nil
}

// writeOverParent writes the new block b of a differencing image holding
// p at inBlock: the rest of the block is what the parent shows there (a
// block is either wholly the parent's or wholly this image's).
func (img *Image) writeOverParent(p []byte, b, inBlock, fileOff int64) (int, error) {
	if img.parent == nil {
		return 0, formats.Unsupportedf(img.name, "writing part of block %d of a VDI differencing image opened without its parent", b)
	}
	buf, put := img.blockBuf(img.blockBytes)
	defer put()
	start := b * img.blockBytes
	if err := imageio.ReadBacking(img.parent, buf[:min(img.blockBytes, img.size-start)], start); err != nil {
		return 0, err
	}
	copy(buf[inBlock:], p)
	if _, err := img.f.WriteAt(buf, fileOff); err != nil {
		return 0, err
	}
	return len(p), nil
}

// isDiff reports whether free blocks read through to a parent.
func (img *Image) isDiff() bool { return img.hdr.Type == typeDiff || !img.hdr.UUIDLinkage.isNull() }

// publish records blocks [b, b+count) at data indexes from idx (or, after
// a failed write, poisons the image) and wakes waiting writers.
func (img *Image) publish(b, count int64, idx uint32, ch chan struct{}, err error) {
	img.mu.Lock()
	defer img.mu.Unlock()
	for i := range count {
		delete(img.pending, uint32(b+i))
		if err == nil {
			img.bmap[b+i] = idx + uint32(i)
		}
	}
	if err != nil {
		img.failed = fmt.Errorf("%s: an earlier block allocation failed: %w", img.name, err)
	} else {
		img.markDirty(int(b), int(b+count))
	}
	close(ch)
}

// markDirty notes changed map entries [lo, hi). Called with mu held.
func (img *Image) markDirty(lo, hi int) {
	if img.dirtyLo >= img.dirtyHi {
		img.dirtyLo, img.dirtyHi = lo, hi
	} else {
		img.dirtyLo, img.dirtyHi = min(img.dirtyLo, lo), max(img.dirtyHi, hi)
	}
	img.hdrDirty = true
}

// blockBuf returns a zeroed buffer of n bytes (at most a block) and the
// function that gives it back.
func (img *Image) blockBuf(n int64) ([]byte, func()) {
	bufp, _ := img.bufs.Get().(*[]byte)
	if bufp == nil {
		b := make([]byte, img.blockBytes)
		bufp = &b
	}
	buf := (*bufp)[:n]
	clear(buf)
	return buf, func() { img.bufs.Put(bufp) }
}

// WriteZeroes records whole free blocks as zero blocks (0xFFFFFFFE) and
// writes zeros into allocated ones (their data-area slot cannot be given
// back without moving blocks). Blocks of a new static image that were
// never written are already zeros.
func (img *Image) WriteZeroes(off, length int64) error {
	if !img.writable {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if length < 0 || off < 0 || off > img.size || length > img.size-off {
		return fmt.Errorf("%s: zero range %d+%d outside the disk", img.name, off, length)
	}
	for end := off + length; off < end; {
		b := off / img.blockBytes
		next := min(end, (b+1)*img.blockBytes)
		if err := img.zeroBlock(b, off%img.blockBytes, next-off); err != nil {
			return err
		}
		off = next
	}
	return nil
}

func (img *Image) zeroBlock(b, inBlock, n int64) error {
	img.mu.Lock()
	e := img.bmap[b]
	_, busy := img.pending[uint32(b)]
	fresh := img.fresh != nil && img.fresh[b/64]&(1<<(b%64)) != 0
	whole := inBlock == 0 && (n == img.blockBytes || b*img.blockBytes+n == img.size)
	if !isAllocated(e) && !busy {
		if e == blockFree && whole {
			img.bmap[b] = blockZero
			img.markDirty(int(b), int(b+1))
		}
		if e == blockZero || whole || !img.isDiff() {
			img.mu.Unlock()
			return nil
		}
		// Part of a free block of a differencing image: the parent shows
		// there, so the zeros are written (the block is allocated).
	}
	img.mu.Unlock()
	if fresh {
		return nil
	}
	buf, put := img.blockBuf(n)
	defer put()
	_, err := img.WriteAt(buf, b*img.blockBytes+inBlock)
	return err
}

// Flush writes the changed part of the block map and the header.
func (img *Image) Flush() error {
	if !img.writable {
		return nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.failed != nil {
		return img.failed
	}
	// The header (with the allocated-block count) goes before the map
	// entries that use the new blocks: an interruption between them leaves
	// blocks counted that no entry uses yet (a leak, which check reports),
	// never an entry beyond the count, which a later write would reuse.
	if img.hdrDirty {
		if err := img.extendFile(); err != nil {
			return err
		}
		img.hdr.BlocksAllocated = img.allocated
		if _, err := img.f.WriteAt(img.hdr.encode(), 0); err != nil {
			return err
		}
		img.hdrDirty = false
	}
	if img.dirtyLo < img.dirtyHi {
		if err := img.writeMap(img.dirtyLo, img.dirtyHi); err != nil {
			return err
		}
		img.dirtyLo, img.dirtyHi = 0, 0
	}
	return nil
}

// extendFile makes the file cover every allocated block (blocks written
// only in part past the old end of the file are not yet).
func (img *Image) extendFile() error {
	end := int64(img.hdr.DataOff) + int64(img.allocated)*img.stride
	size, err := img.f.Size()
	if err != nil {
		return err
	}
	if size < end {
		return img.f.Truncate(end)
	}
	return nil
}

// writeMap writes map entries [lo, hi), widened to whole 512-byte sectors
// of the map. Called with mu held.
func (img *Image) writeMap(lo, hi int) error {
	const perSector = sectorBytes / 4
	lo = lo / perSector * perSector
	hi = min(len(img.bmap), (hi+perSector-1)/perSector*perSector)
	const chunk = 1 << 18 // entries per write (1 MiB)
	buf := make([]byte, 4*min(hi-lo, chunk))
	for start := lo; start < hi; start += chunk {
		stop := min(hi, start+chunk)
		out := buf[:4*(stop-start)]
		for i := start; i < stop; i++ {
			binary.LittleEndian.PutUint32(out[4*(i-start):], img.bmap[i])
		}
		if _, err := img.f.WriteAt(out, int64(img.hdr.BlocksOff)+4*int64(start)); err != nil {
			return err
		}
	}
	return nil
}
