package vhdx

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	uuid "github.com/vdiskio/vdisk/internal/guid"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// diffBlockSize is the default block size of a differencing disk.
const diffBlockSize = 2 * mib

// LogicalSectorOption is vdisk's create option for the logical sector size
// (qemu always writes 512).
const LogicalSectorOption = "logical_sector_size"

// CreateOptions are the vhdx create options, typed: the zero value is
// qemu-img's defaults (dynamic, block size by virtual size, 1 MiB log,
// 512-byte logical sectors). They are the one source of the -o names,
// defaults and help (createOptions); library callers pass them through
// formats.OptionsOf(driver.CreateOptions, vhdx.CreateOptions{...}).
// BlockStateZero is a *bool because its default is on (nil).
type CreateOptions struct {
	Subformat         string `opt:"subformat" default:"dynamic" values:"dynamic,fixed" help:"VHDX format type, can be either 'dynamic' or 'fixed'. Default is 'dynamic'."`
	BlockSize         int64  `opt:"block_size,size" default:"0" help:"Block Size; min 1MB, max 256MB. 0 means auto-calculate based on image size."`
	LogSize           int64  `opt:"log_size,size" default:"1M" help:"Log size; min 1MB."`
	BlockStateZero    *bool  `opt:"block_state_zero" default:"on" help:"Force use of payload blocks of type 'ZERO'. Non-standard, but default.  Do not set to 'off' when using 'qemu-img convert' with subformat=dynamic."`
	LogicalSectorSize int64  `opt:"logical_sector_size" default:"512" help:"Logical sector size in bytes, 512 or 4096 (vdisk only)"`
	BackingFile       string `opt:"backing_file" help:"File name of the parent VHDX (differencing disk)"`
	BackingFmt        string `opt:"backing_fmt" help:"Image format of the parent (vhdx)"`
}

// createOptions are the -o table.
var createOptions = formats.OptionSpecsOf(CreateOptions{})

// Writer is a VHDX image being written. WriteAt may be called concurrently
// on disjoint ranges; Flush writes the BAT; Close flushes.
type Writer struct {
	*Image
	fixed   bool
	allocMu sync.Mutex // serialises block allocation
	fileEnd int64      // next free 1 MiB-aligned file offset
	dirty   []bool     // BAT pages (4 KiB) to write at Flush
	// writtenEnd is, per payload block, the end (offset inside the block) of
	// everything written into it by this writer: bytes past it are still the
	// zeros of a fresh block, so zeroing them needs no write.
	writtenEnd []uint32
	closeOnce  sync.Once

	// inPlace: an existing image opened for writing (inplace.go): the
	// BAT and metadata change through the log.
	inPlace      bool
	hdrMu        sync.Mutex // guards dataGUIDDone and the header updates
	dataGUIDDone bool
	logSeq       uint64 // sequence number of the last log entry written
}

// createParams are the validated create options.
type createParams struct {
	size          int64
	blockSize     int64
	logSize       int64
	logicalSector int64
	fixed         bool
	stateZero     bool
	backing       string
	backingFmt    string
	blockSizeSet  bool // block_size was given (not 0, "pick by size")
}

func parseCreate(req formats.CreateRequest) (createParams, error) {
	var o CreateOptions
	if err := req.Options.Decode(&o); err != nil {
		return createParams{}, err
	}
	p := createParams{size: req.Size, fixed: o.Subformat == "fixed", stateZero: o.BlockStateZero == nil || *o.BlockStateZero,
		backing: o.BackingFile, backingFmt: o.BackingFmt, logicalSector: o.LogicalSectorSize, blockSizeSet: o.BlockSize != 0}
	if p.logicalSector != 512 && p.logicalSector != 4096 {
		return p, fmt.Errorf("%w: %s=%d: want 512 or 4096", formats.ErrInvalidOption, LogicalSectorOption, p.logicalSector)
	}
	if p.size < 0 {
		return p, fmt.Errorf("%w: negative size", formats.ErrInvalidOption)
	}
	p.size = roundUp(p.size, p.logicalSector)
	if p.size > maxVirtualSize {
		return p, fmt.Errorf("%w: Image size too large; max of 64TB", formats.ErrInvalidOption)
	}
	var err error
	if p.blockSize, err = blockSizeFor(o.BlockSize, p.size); err != nil {
		return p, err
	}
	p.logSize = roundUp(o.LogSize, mib)
	if p.logSize < mib || p.logSize > 4096*mib-mib {
		return p, fmt.Errorf("%w: log_size: must be from 1 MiB to 4095 MiB", formats.ErrInvalidOption)
	}
	if p.backingFmt != "" && p.backingFmt != Name {
		return p, formats.Unsupportedf(req.Name, "a VHDX parent must be VHDX, not %q", p.backingFmt)
	}
	if p.backing != "" && p.fixed {
		return p, fmt.Errorf("%w: a differencing disk cannot be subformat=fixed", formats.ErrInvalidOption)
	}
	return p, nil
}

// blockSizeFor applies qemu's rules: 0 picks by virtual size; otherwise
// round up to a MiB, clamp to 256 MiB, and require a power of two.
func blockSizeFor(bs, size int64) (int64, error) {
	if bs == 0 {
		switch {
		case size > 32<<40:
			bs = 64 * mib
		case size > 100<<30:
			bs = 32 * mib
		case size > 1<<30:
			bs = 16 * mib
		default:
			bs = 8 * mib
		}
	}
	bs = min(roundUp(bs, mib), maxBlockSize)
	if bits.OnesCount64(uint64(bs)) != 1 {
		return 0, fmt.Errorf("%w: Block size must be a power of two", formats.ErrInvalidOption)
	}
	return bs, nil
}

// Create makes a new VHDX in req.File.
func Create(ctx context.Context, req formats.CreateRequest) (*Writer, error) {
	p, err := parseCreate(req)
	if err != nil {
		return nil, err
	}
	img := &Image{f: req.File, r: req.File, name: req.Name, size: p.size, blockSize: p.blockSize,
		logicalSector: p.logicalSector, physicalSector: max(4096, p.logicalSector), leaveAllocated: p.fixed}
	if img.name == "" {
		img.name = req.File.Name()
	}
	if img.page83, err = newGUID(); err != nil {
		return nil, err
	}
	var parent *Image
	if p.backing != "" {
		if parent, err = img.attachParent(ctx, req, p); err != nil {
			return nil, err
		}
	}
	w := &Writer{Image: img, fixed: p.fixed}
	if err := w.layout(p); err != nil {
		w.closeParent()
		return nil, err
	}
	if err := w.writeStructures(p, parent); err != nil {
		w.closeParent()
		return nil, err
	}
	return w, nil
}

// attachParent opens the backing VHDX and makes this disk its child.
func (img *Image) attachParent(ctx context.Context, req formats.CreateRequest, p createParams) (*Image, error) {
	pi, err := formats.OpenReference(ctx, img.name, p.backing, Name, req.Open)
	if err != nil {
		return nil, err
	}
	parent, ok := pi.(*Image)
	if !ok {
		pi.Close()
		return nil, formats.Unsupportedf(img.name, "a VHDX parent must be VHDX")
	}
	if img.size == 0 {
		img.size = parent.size
	}
	if img.size != parent.size || img.logicalSector != parent.logicalSector {
		parent.Close()
		return nil, fmt.Errorf("%w: a differencing VHDX must have its parent's size (%d) and logical sector size (%d)",
			formats.ErrInvalidOption, parent.size, parent.logicalSector)
	}
	if !p.blockSizeSet {
		// A differencing disk copies the parent's data into a block on the
		// first partial write: small blocks (Hyper-V's 2 MiB for
		// differencing disks) keep that cheap.
		img.blockSize = diffBlockSize
	}
	img.hasParent, img.page83, img.physicalSector = true, parent.page83, parent.physicalSector
	img.parent, img.parentRef = parent, p.backing
	img.parentPath, _ = req.Open.References().Resolve(img.name, p.backing)
	img.locator = locatorFor(img.name, p.backing, parent.hdr.DataWriteGUID)
	return parent, nil
}

// locatorFor builds the parent locator as Hyper-V writes it: the linkage
// GUID, the relative path (".\\name" for a parent beside the child) and the
// absolute path, both with backslashes. volume_path (\\?\\Volume{GUID}\\...)
// is left out: there is no volume GUID to name outside Windows.
func locatorFor(child, backing string, dataWrite guid) parentLocator {
	pl := parentLocator{Keys: []string{"parent_linkage"}, Values: map[string]string{
		"parent_linkage": linkageString(dataWrite)}}
	abs := backing
	if !filepath.IsAbs(backing) {
		abs = filepath.Join(filepath.Dir(child), backing)
	}
	if a, err := filepath.Abs(abs); err == nil {
		abs = a
	}
	rel := backing
	if filepath.IsAbs(backing) {
		if r, err := filepath.Rel(filepath.Dir(child), backing); err == nil {
			rel = r
		}
	}
	if !filepath.IsAbs(rel) {
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, "../") && !strings.HasPrefix(rel, "./") {
			rel = "./" + rel
		}
		pl.Keys = append(pl.Keys, "relative_path")
		pl.Values["relative_path"] = strings.ReplaceAll(rel, "/", `\`)
	}
	if filepath.IsAbs(abs) {
		pl.Keys = append(pl.Keys, "absolute_win32_path")
		pl.Values["absolute_win32_path"] = strings.ReplaceAll(filepath.ToSlash(abs), "/", `\`)
	}
	return pl
}

// linkageString is a parent_linkage value: the parent's DataWriteGuid in
// braces, lowercase, as Hyper-V writes it (libvhdi parses this form only:
// an uppercase GUID reads there as a zero parent identifier).
func linkageString(g guid) string { return "{" + uuid.FromMixed(g[:]).String() + "}" }

func (w *Writer) closeParent() {
	if w.parent != nil {
		w.parent.Close()
		w.parent = nil
	}
}

// layout places the log at 1 MiB, then the metadata region (1 MiB), the
// BAT (rounded up to 1 MiB) and the payload blocks.
func (w *Writer) layout(p createParams) error {
	img := w.Image
	img.sectorsPerBlk = img.blockSize / img.logicalSector
	img.chunkRatio = sectorsPerBitmap * img.logicalSector / img.blockSize
	img.payloadBlocks = (img.size + img.blockSize - 1) / img.blockSize
	n := img.batEntries()
	if err := (formats.Limits{}).CheckTable(img.name, "BAT", -1, uint64(n), batEntrySize); err != nil {
		return fmt.Errorf("%w (use a larger block_size)", err)
	}
	img.hdr = header{Version: 1, LogLength: uint32(p.logSize), LogOffset: headerSection}
	img.metaOff = headerSection + p.logSize
	img.batOff = img.metaOff + mib
	img.batLen = max(mib, roundUp(n*batEntrySize, mib))
	w.fileEnd = img.batOff + img.batLen
	img.fileSize = w.fileEnd
	img.regions = []fileSpan{{0, headerSection, "header section"}, {headerSection, p.logSize, "log"},
		{img.metaOff, mib, "metadata region"}, {img.batOff, img.batLen, "BAT region"}}
	img.bat = make([]uint64, n)
	w.dirty = make([]bool, (n*batEntrySize+logSectorSize-1)/logSectorSize)
	var state uint8 = payloadNotPres
	if p.stateZero && !img.hasParent {
		state = payloadZero
	}
	for blk := int64(0); blk < img.payloadBlocks; blk++ {
		if p.fixed {
			img.bat[img.batIndex(blk)] = batEntry(payloadFull, uint64(w.fileEnd))
			w.fileEnd += img.blockSize
		} else {
			img.bat[img.batIndex(blk)] = batEntry(state, 0)
		}
	}
	if img.hasParent && !p.fixed {
		w.allocBitmaps()
	}
	w.writtenEnd = make([]uint32, img.payloadBlocks)
	for i := range w.dirty {
		w.dirty[i] = true
	}
	return nil
}

// allocBitmaps gives every chunk of a new differencing disk its sector
// bitmap block, all zeros (no sector present: every read goes to the
// parent), stored as a hole past the BAT, so it costs no disk space.
// MS-VHDX lets a bitmap block be NOT_PRESENT until a block of its chunk
// is PARTIALLY_PRESENT, but libvhdi (through 20240303 at least) reads the
// bitmap of a differencing disk's chunk whatever its BAT entry says, from
// file offset 0 when it is not present, and so reads the file identifier's
// bits as sector bits.
func (w *Writer) allocBitmaps() {
	img := w.Image
	for c := int64(0); c*img.chunkRatio < img.payloadBlocks; c++ {
		img.bat[img.bitmapIndex(c*img.chunkRatio)] = batEntry(bitmapPresent, uint64(w.fileEnd))
		w.fileEnd += bitmapBlockSize
	}
}

// writeStructures writes the header section, the metadata and the BAT.
func (w *Writer) writeStructures(p createParams, parent *Image) error {
	img := w.Image
	var err error
	if img.hdr.FileWriteGUID, err = newGUID(); err != nil {
		return err
	}
	if img.hdr.DataWriteGUID, err = newGUID(); err != nil {
		return err
	}
	ident := make([]byte, 64*kib)
	copy(ident, sigFile[:])
	copy(ident[8:8+fileIdentCreatorSize], encodeUTF16("vdisk"))
	h1 := img.hdr
	h1.Sequence = 1
	h2 := h1
	h2.Sequence = 2
	img.hdr, img.hdrSlot = h2, 1
	rt := encodeRegionTable([]region{
		{GUID: regionBAT, Offset: uint64(img.batOff), Length: uint32(img.batLen), Required: true},
		{GUID: regionMetadata, Offset: uint64(img.metaOff), Length: mib, Required: true},
	})
	writes := []struct {
		b   []byte
		off int64
	}{{ident, 0}, {h1.encode(), header1Offset}, {h2.encode(), header2Offset}, {rt, region1Offset}, {rt, region2Offset},
		{w.encodeMetadata(), img.metaOff}}
	for _, wr := range writes {
		if _, err := img.f.WriteAt(wr.b, wr.off); err != nil {
			return fmt.Errorf("%s: writing VHDX structures: %w", img.name, err)
		}
	}
	return w.Flush()
}

// encodeMetadata returns the metadata region's table and items.
func (w *Writer) encodeMetadata() []byte {
	img := w.Image
	le := binary.LittleEndian
	fp := make([]byte, 8)
	le.PutUint32(fp, uint32(img.blockSize))
	var flags uint32
	if img.leaveAllocated {
		flags |= fileParamLeaveAllocated
	}
	if img.hasParent {
		flags |= fileParamHasParent
	}
	le.PutUint32(fp[4:], flags)
	vs := le.AppendUint64(nil, uint64(img.size))
	ls := le.AppendUint32(nil, uint32(img.logicalSector))
	ps := le.AppendUint32(nil, uint32(img.physicalSector))
	type item struct {
		g     guid
		data  []byte
		flags uint32
	}
	disk := uint32(metaFlagRequired | metaFlagVirtualDisk)
	items := []item{{itemFileParams, fp, metaFlagRequired}, {itemVirtualSize, vs, disk},
		{itemPage83, img.page83[:], disk}, {itemLogicalSect, ls, disk}, {itemPhysicalSect, ps, disk}}
	if img.hasParent {
		items = append(items, item{itemParentLoc, img.locator.encode(), metaFlagRequired})
	}
	region := make([]byte, metaTableSize, 2*metaTableSize)
	var es []metaEntry
	for _, it := range items {
		es = append(es, metaEntry{GUID: it.g, Offset: uint32(len(region)), Length: uint32(len(it.data)), Flags: it.flags})
		region = append(region, it.data...)
	}
	copy(region, encodeMetaTable(es))
	img.meta = es
	return region
}

// ClusterSize is the payload block size: the allocation granularity.
func (w *Writer) ClusterSize() int64 { return w.blockSize }

// WriteAt writes virtual disk bytes, allocating blocks as needed.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	if err := imageio.CheckWrite(w.name, len(p), off, w.size); err != nil {
		return 0, err
	}
	if err := w.contentChanges(); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		blk, in := off/w.blockSize, off%w.blockSize
		n := int(min(int64(len(p)-done), w.blockSize-in))
		host, partial, err := w.blockForWrite(blk, in, int64(n))
		if err != nil {
			return done, err
		}
		if partial {
			err = w.writePartial(p[done:done+n], blk, in, host)
		} else {
			_, err = w.f.WriteAt(p[done:done+n], host+in)
		}
		if err != nil {
			return done, err
		}
		done += n
		off += int64(n)
	}
	return done, nil
}

// blockForWrite returns the file offset of block blk, allocating it the
// first time, and records that [in, in+n) is being written. partial is true
// for a PARTIALLY_PRESENT block of a differencing disk: a write covering
// less than a whole NOT_PRESENT block makes one, and then only the sectors
// written are this file's (writePartial); the others still read from the
// parent.
func (w *Writer) blockForWrite(blk, in, n int64) (host int64, partial bool, err error) {
	switch e := w.entry(blk); batState(e) {
	case payloadFull:
		w.markWritten(blk, in+n)
		return batOffset(e), false, nil
	case payloadPartial:
		return batOffset(e), true, nil
	}
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	switch e := w.entry(blk); batState(e) {
	case payloadFull:
		w.writtenEnd[blk] = max(w.writtenEnd[blk], uint32(in+n))
		return batOffset(e), false, nil
	case payloadPartial:
		return batOffset(e), true, nil
	case payloadNotPres:
		whole := in == 0 && n == min(w.blockSize, w.size-blk*w.blockSize)
		if w.hasParent && !whole {
			return w.allocPartial(blk), true, nil
		}
	}
	host = w.fileEnd
	w.fileEnd += w.blockSize
	w.writtenEnd[blk] = uint32(in + n)
	w.setEntry(w.batIndex(blk), batEntry(payloadFull, uint64(host)))
	return host, false, nil
}

func (w *Writer) markWritten(blk, end int64) {
	w.allocMu.Lock()
	w.writtenEnd[blk] = max(w.writtenEnd[blk], uint32(end))
	w.allocMu.Unlock()
}

// freshFrom returns the offset inside block blk from which nothing has been
// written (the block's bytes there are zeros).
func (w *Writer) freshFrom(blk int64) int64 {
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	return int64(w.writtenEnd[blk])
}

func (w *Writer) setEntry(i int64, e uint64) {
	w.mu.Lock()
	w.bat[i] = e
	w.dirty[i*batEntrySize/logSectorSize] = true
	w.mu.Unlock()
}

// WriteZeroes records [off, off+length) as zeros: whole unallocated blocks
// become (or stay) ZERO or unallocated-reading-zeros; the rest is written.
func (w *Writer) WriteZeroes(off, length int64) error {
	if off < 0 || length < 0 || off > w.size || length > w.size-off {
		return fmt.Errorf("%s: zero range %d+%d outside the %d-byte disk", w.name, off, length, w.size)
	}
	if err := w.contentChanges(); err != nil {
		return err
	}
	for length > 0 {
		blk, in := off/w.blockSize, off%w.blockSize
		n := min(length, w.blockSize-in)
		if err := w.zeroBlock(blk, in, n); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}

func (w *Writer) zeroBlock(blk, in, n int64) error {
	state := batState(w.entry(blk))
	whole := in == 0 && (n == w.blockSize || blk*w.blockSize+n == w.size)
	switch {
	case state == payloadFull:
		// Only what has been written needs zeroing; the rest of a block
		// allocated by this writer (or of a fixed disk) is still zeros.
		n = min(n, w.freshFrom(blk)-in)
		if n <= 0 {
			return nil
		}
	case !w.hasParent:
		return nil // unallocated blocks of a standalone disk read as zeros
	case whole && w.markZero(blk):
		return nil
	}
	return fileio.WriteZeros(w, blk*w.blockSize+in, n)
}

// markZero sets an unallocated block of a differencing disk to ZERO (so the
// parent no longer shows through); false if it has been allocated meanwhile.
func (w *Writer) markZero(blk int64) bool {
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	if batState(w.entry(blk)) == payloadFull {
		return false
	}
	w.setEntry(w.batIndex(blk), batEntry(payloadZero, 0))
	return true
}

// Flush writes the changed BAT pages and extends the file over every
// allocated block.
func (w *Writer) Flush() error {
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	if w.inPlace {
		return w.flushLogged()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	page := make([]byte, logSectorSize)
	n := int64(len(w.bat))
	for pg := 0; pg < len(w.dirty); {
		if !w.dirty[pg] {
			pg++
			continue
		}
		// Write a run of dirty pages in one call.
		end := pg
		for end < len(w.dirty) && w.dirty[end] {
			end++
		}
		first := int64(pg) * logSectorSize / batEntrySize
		last := min(n, int64(end)*logSectorSize/batEntrySize)
		buf := page[:0]
		if need := (last - first) * batEntrySize; int64(cap(buf)) < need {
			buf = make([]byte, 0, need)
		}
		for _, e := range w.bat[first:last] {
			buf = binary.LittleEndian.AppendUint64(buf, e)
		}
		if _, err := w.f.WriteAt(buf, w.batOff+first*batEntrySize); err != nil {
			return fmt.Errorf("%s: writing BAT: %w", w.name, err)
		}
		for i := pg; i < end; i++ {
			w.dirty[i] = false
		}
		pg = end
	}
	size, err := w.f.Size()
	if err != nil {
		return err
	}
	if size < w.fileEnd {
		if err := w.f.Truncate(w.fileEnd); err != nil {
			return err
		}
	}
	w.fileSize = max(size, w.fileEnd)
	return nil
}

// Close flushes and closes the image.
func (w *Writer) Close() error {
	var err error
	w.closeOnce.Do(func() {
		err = w.Flush()
		if cerr := w.Image.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
