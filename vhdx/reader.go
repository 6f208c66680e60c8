package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "vhdx"

func init() {
	formats.Register(&formats.Driver{
		Name:  Name,
		Probe: probe,
		Open: func(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
			img, err := Open(ctx, f, opts)
			if err != nil || !opts.Writable {
				return imageio.Opened(img, err)
			}
			w, err := openWritable(img)
			if err != nil {
				img.Close()
				return nil, err
			}
			return w, nil
		},
		Create:        imageio.CreateWith(Create),
		CreateOptions: createOptions,
		Measure:       measure,
	})
}

func probe(in formats.ProbeInput) int {
	if len(in.Header) >= 8 && [8]byte(in.Header[0:8]) == sigFile {
		return formats.ProbeCertain
	}
	return formats.ProbeNone
}

// Image is an open VHDX image.
type Image struct {
	f        formats.File // the file as opened; closed by Close
	r        formats.File // where structures and data are read: f, or f with the log replayed
	name     string
	fileSize int64 // size of r
	limits   formats.Limits
	budget   *formats.Budget // metadata memory of the image and its chain

	hdr     header
	hdrSlot int           // 0 or 1: which header is current
	entries []*logEntry   // the pending log sequence (replayed in memory), if any
	regions []fileSpan    // header section, log, BAT and metadata regions
	batOff  int64         // BAT region
	batLen  int64         //
	metaOff int64         // metadata region
	meta    []metaEntry   //
	locator parentLocator // parent locator (differencing only)

	size           int64 // virtual size
	blockSize      int64
	logicalSector  int64
	physicalSector int64
	page83         guid
	leaveAllocated bool
	hasParent      bool
	chunkRatio     int64
	payloadBlocks  int64
	sectorsPerBlk  int64

	mu    sync.RWMutex // guards bat (written by the writer)
	bat   []uint64     // the whole BAT, or nil when paged
	pages *batCache    // a BAT too large to load whole, read in pages

	parent     formats.Image
	parentRef  string
	parentPath string
}

// fileSpan is a byte range of the file used by a structure.
type fileSpan struct {
	off, len int64
	what     string
}

func (s fileSpan) end() int64 { return s.off + s.len }

// Open opens f as a VHDX image. A pending log is replayed in memory: the
// file is not modified.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (*Image, error) {
	img := &Image{f: f, r: f, name: f.Name(), limits: opts.Limits, budget: opts.EnsureBudget()}
	if err := img.load(opts); err != nil {
		return nil, err
	}
	if img.hasParent && !opts.NoBacking {
		if err := img.openParent(ctx, opts); err != nil {
			return nil, err
		}
	}
	return img, nil
}

func (img *Image) load(opts formats.OpenOptions) error {
	size, err := img.f.Size()
	if err != nil {
		return err
	}
	img.fileSize = size
	if err := img.readHeaders(); err != nil {
		return err
	}
	if err := img.readLog(opts.Limits, img.budget); err != nil {
		return err
	}
	if err := img.readRegions(); err != nil {
		return err
	}
	if err := img.readMetadata(opts.Limits); err != nil {
		return err
	}
	return img.readBAT(opts.Limits)
}

func (img *Image) readHeaders() error {
	if img.fileSize < headerSection {
		return formats.Corruptf(img.name, "header section", 0, "file of %d bytes is shorter than the 1 MiB header section", img.fileSize)
	}
	buf := make([]byte, 3*64*kib)
	if err := fileio.ReadPadded(img.r, buf, 0); err != nil {
		return err
	}
	if [8]byte(buf[0:8]) != sigFile {
		return formats.Corruptf(img.name, "file identifier", 0, "no \"vhdxfile\" signature")
	}
	raw1, raw2 := buf[header1Offset:header1Offset+headerSize], buf[header2Offset:header2Offset+headerSize]
	h1, ok1 := decodeHeader(raw1)
	h2, ok2 := decodeHeader(raw2)
	switch {
	case !ok1 && !ok2:
		return formats.Corruptf(img.name, "header", header1Offset, "neither header has a valid signature and checksum")
	case ok1 && ok2 && h1.Sequence == h2.Sequence && !bytes.Equal(raw1, raw2):
		return formats.Corruptf(img.name, "header", header1Offset, "both headers have sequence number %d but differ", h1.Sequence)
	case ok1 && (!ok2 || h1.Sequence >= h2.Sequence):
		img.hdr, img.hdrSlot = h1, 0
	default:
		img.hdr, img.hdrSlot = h2, 1
	}
	return img.checkHeader()
}

func (img *Image) checkHeader() error {
	h, at := img.hdr, int64(header1Offset+img.hdrSlot*64*kib)
	switch {
	case h.Version != 1:
		return formats.Unsupportedf(img.name, "VHDX header version %d (only 1)", h.Version)
	case h.LogVersion != 0:
		return formats.Unsupportedf(img.name, "VHDX log version %d (only 0)", h.LogVersion)
	case h.LogLength%mib != 0 || h.LogOffset%mib != 0:
		return formats.Corruptf(img.name, "header", at, "log at %d+%d is not 1 MiB aligned", h.LogOffset, h.LogLength)
	case h.LogLength != 0 && h.LogOffset < headerSection:
		return formats.Corruptf(img.name, "header", at, "log at %d overlaps the header section", h.LogOffset)
	case h.LogOffset > uint64(img.fileSize) || uint64(h.LogLength) > uint64(img.fileSize)-h.LogOffset:
		return formats.Corruptf(img.name, "header", at, "log at %d+%d ends past the end of the %d-byte file", h.LogOffset, h.LogLength, img.fileSize)
	}
	img.regions = []fileSpan{{0, headerSection, "header section"}}
	if h.LogLength > 0 {
		img.regions = append(img.regions, fileSpan{int64(h.LogOffset), int64(h.LogLength), "log"})
	}
	return nil
}

// readLog replays a pending log in memory.
func (img *Image) readLog(lim formats.Limits, budget *formats.Budget) error {
	entries, err := readLog(img.f, img.hdr, img.fileSize, lim, budget)
	if err != nil || len(entries) == 0 {
		return err
	}
	o, err := newOverlay(img.f, entries, img.fileSize, budget)
	if err != nil {
		return err
	}
	img.entries, img.r, img.fileSize = entries, o, o.size
	return nil
}

func (img *Image) readRegions() error {
	buf := make([]byte, regionTableSize)
	var rs []region
	var firstErr error
	for _, at := range []int64{region1Offset, region2Offset} {
		if err := fileio.ReadPadded(img.r, buf, at); err != nil {
			return err
		}
		var err error
		if rs, err = decodeRegionTable(buf); err == nil {
			break
		}
		if firstErr == nil {
			firstErr = formats.Corruptf(img.name, "region table", at, "%v", err)
		}
	}
	if rs == nil {
		return firstErr
	}
	var haveBAT, haveMeta bool
	for _, r := range rs {
		span := fileSpan{int64(r.Offset), int64(r.Length), "region " + r.GUID.String()}
		switch r.GUID {
		case regionBAT:
			if haveBAT {
				return formats.Corruptf(img.name, "region table", region1Offset, "two BAT regions")
			}
			haveBAT, img.batOff, img.batLen, span.what = true, span.off, span.len, "BAT region"
		case regionMetadata:
			if haveMeta {
				return formats.Corruptf(img.name, "region table", region1Offset, "two metadata regions")
			}
			haveMeta, img.metaOff, span.what = true, span.off, "metadata region"
		default:
			if r.Required {
				return formats.Unsupportedf(img.name, "required VHDX region %v", r.GUID)
			}
			continue
		}
		if err := img.addSpan(span); err != nil {
			return err
		}
	}
	if !haveBAT || !haveMeta {
		return formats.Corruptf(img.name, "region table", region1Offset, "the BAT or metadata region is missing")
	}
	return nil
}

// addSpan records a region after checking alignment, bounds and overlaps.
func (img *Image) addSpan(s fileSpan) error {
	if s.off%mib != 0 || s.len%mib != 0 || s.len <= 0 || s.off < headerSection {
		return formats.Corruptf(img.name, s.what, s.off, "region of %d bytes is not 1 MiB aligned", s.len)
	}
	if s.off > img.fileSize || s.len > img.fileSize-s.off {
		return formats.Corruptf(img.name, s.what, s.off, "region of %d bytes ends past the end of the %d-byte file", s.len, img.fileSize)
	}
	for _, o := range img.regions {
		if s.off < o.end() && o.off < s.end() {
			return formats.Corruptf(img.name, s.what, s.off, "overlaps the %s", o.what)
		}
	}
	img.regions = append(img.regions, s)
	return nil
}

func (img *Image) readMetadata(lim formats.Limits) error {
	table := make([]byte, metaTableSize)
	if err := fileio.ReadPadded(img.r, table, img.metaOff); err != nil {
		return err
	}
	es, err := decodeMetaTable(table)
	if err != nil {
		return formats.Corruptf(img.name, "metadata table", img.metaOff, "%v", err)
	}
	metaLen := img.regionLen(img.metaOff)
	items := map[guid][]byte{}
	for _, e := range es {
		if _, dup := items[e.GUID]; dup {
			return formats.Corruptf(img.name, "metadata table", img.metaOff, "item %v appears twice", e.GUID)
		}
		known := false
		switch e.GUID {
		case itemFileParams, itemVirtualSize, itemPage83, itemLogicalSect, itemPhysicalSect, itemParentLoc:
			known = true
		default:
			if e.Required {
				return formats.Unsupportedf(img.name, "required VHDX metadata item %v", e.GUID)
			}
		}
		data, err := img.readItem(e, metaLen, known) // unknown items are only bounds-checked
		if err != nil {
			return err
		}
		items[e.GUID] = data
	}
	img.meta = es
	return img.parseItems(items, lim)
}

func (img *Image) regionLen(off int64) int64 {
	for _, r := range img.regions {
		if r.off == off {
			return r.len
		}
	}
	return 0
}

func (img *Image) readItem(e metaEntry, metaLen int64, read bool) ([]byte, error) {
	at := img.metaOff
	switch {
	case e.Offset == 0 && e.Length == 0:
		return nil, nil
	case e.Length > maxMetaItemLen:
		return nil, formats.Limitf(img.name, "metadata item "+e.GUID.String(), at, "item of %d bytes (at most 1 MiB)", e.Length)
	case e.Offset < metaTableSize || int64(e.Offset)+int64(e.Length) > metaLen:
		return nil, formats.Corruptf(img.name, "metadata item "+e.GUID.String(), at, "item at %d+%d is outside the metadata region's items area", e.Offset, e.Length)
	}
	if !read {
		return []byte{}, nil
	}
	data := make([]byte, e.Length)
	if err := fileio.ReadPadded(img.r, data, img.metaOff+int64(e.Offset)); err != nil {
		return nil, err
	}
	return data, nil
}

func (img *Image) parseItems(items map[guid][]byte, lim formats.Limits) error {
	le := binary.LittleEndian
	at := img.metaOff
	need := func(g guid, n int, what string) ([]byte, error) {
		b := items[g]
		if len(b) < n {
			return nil, formats.Corruptf(img.name, "metadata item "+what, at, "missing or shorter than %d bytes", n)
		}
		return b, nil
	}
	fp, err := need(itemFileParams, 8, "file parameters")
	if err != nil {
		return err
	}
	img.blockSize = int64(le.Uint32(fp))
	flags := le.Uint32(fp[4:])
	img.leaveAllocated, img.hasParent = flags&fileParamLeaveAllocated != 0, flags&fileParamHasParent != 0
	if img.blockSize < minBlockSize || img.blockSize > maxBlockSize || bits.OnesCount64(uint64(img.blockSize)) != 1 {
		return formats.Corruptf(img.name, "metadata item file parameters", at, "block size %d is not a power of two from 1 MiB to 256 MiB", img.blockSize)
	}
	for _, s := range []struct {
		g    guid
		what string
		dst  *int64
	}{{itemLogicalSect, "logical sector size", &img.logicalSector}, {itemPhysicalSect, "physical sector size", &img.physicalSector}} {
		b, err := need(s.g, 4, s.what)
		if err != nil {
			return err
		}
		*s.dst = int64(le.Uint32(b))
		if *s.dst != 512 && *s.dst != 4096 {
			return formats.Corruptf(img.name, "metadata item "+s.what, at, "%d (want 512 or 4096)", *s.dst)
		}
	}
	vs, err := need(itemVirtualSize, 8, "virtual disk size")
	if err != nil {
		return err
	}
	size := le.Uint64(vs)
	if size > maxVirtualSize || size%uint64(img.logicalSector) != 0 {
		return formats.Corruptf(img.name, "metadata item virtual disk size", at, "%d is over 64 TiB or not a multiple of the %d-byte sector", size, img.logicalSector)
	}
	img.size = int64(size)
	if err := lim.CheckVirtualSize(img.name, img.size); err != nil {
		return err
	}
	p83, err := need(itemPage83, 16, "page 83 data")
	if err != nil {
		return err
	}
	img.page83 = guid(p83[:16])
	if img.hasParent {
		loc, err := need(itemParentLoc, locHeaderSize, "parent locator")
		if err != nil {
			return err
		}
		if img.locator, err = decodeParentLocator(loc); err != nil {
			return formats.Corruptf(img.name, "metadata item parent locator", at, "%v", err)
		}
	}
	img.sectorsPerBlk = img.blockSize / img.logicalSector
	img.chunkRatio = sectorsPerBitmap * img.logicalSector / img.blockSize
	img.payloadBlocks = (img.size + img.blockSize - 1) / img.blockSize
	return nil
}

// batEntries is the number of BAT entries the image must have.
func (img *Image) batEntries() int64 {
	pb, cr := img.payloadBlocks, img.chunkRatio
	if img.hasParent {
		return (pb + cr - 1) / cr * (cr + 1)
	}
	if pb == 0 {
		return 0
	}
	return pb + (pb-1)/cr
}

// batIndex is the BAT index of payload block blk.
func (img *Image) batIndex(blk int64) int64 { return blk + blk/img.chunkRatio }

// bitmapIndex is the BAT index of the sector bitmap of payload block blk.
func (img *Image) bitmapIndex(blk int64) int64 {
	c := blk / img.chunkRatio
	return c*(img.chunkRatio+1) + img.chunkRatio
}

func (img *Image) readBAT(lim formats.Limits) error {
	n := img.batEntries()
	if n*batEntrySize > img.batLen {
		return formats.Corruptf(img.name, "BAT", img.batOff, "%d entries do not fit the %d-byte BAT region", n, img.batLen)
	}
	if lim.CheckTable(img.name, "BAT", img.batOff, uint64(n), batEntrySize) != nil {
		// Too large to load whole: read it in pages through a bounded
		// cache, validating each page when it is loaded.
		img.pages = newBATCache(img, lim.WithDefaults().CacheBytes, img.budget)
		return nil
	}
	if err := img.budget.Charge(img.name, "BAT", img.batOff, n*batEntrySize); err != nil {
		return err
	}
	img.bat = make([]uint64, n)
	err := fileio.ReadChunks(img.r, img.batOff, n*batEntrySize, batEntrySize, func(chunk []byte, rel int64) {
		for k := range len(chunk) / batEntrySize {
			img.bat[rel/batEntrySize+int64(k)] = binary.LittleEndian.Uint64(chunk[k*batEntrySize:])
		}
	})
	if err != nil {
		return fmt.Errorf("%s: reading the BAT at offset %d: %w", img.name, img.batOff, err)
	}
	return img.checkBAT()
}

// checkBAT validates every entry's state and the placement of allocated
// blocks, so that reads never need to.
func (img *Image) checkBAT() error {
	lookup := func(j int64) (uint64, error) { return img.bat[j], nil }
	for i, e := range img.bat {
		if err := img.checkEntry(int64(i), e, lookup); err != nil {
			return err
		}
	}
	return nil
}

func (img *Image) isBitmapIndex(i int64) bool { return i%(img.chunkRatio+1) == img.chunkRatio }

// checkEntry validates BAT entry i (value e); lookup reads other entries
// (the sector bitmap entry of a PARTIALLY_PRESENT block).
func (img *Image) checkEntry(i int64, e uint64, lookup func(int64) (uint64, error)) error {
	at := img.batOff + i*batEntrySize
	state, off := batState(e), batOffset(e)
	length := img.blockSize
	if img.isBitmapIndex(i) {
		switch state {
		case bitmapNotPres:
			return nil
		case bitmapPresent:
			length = bitmapBlockSize
		default:
			return formats.Corruptf(img.name, "BAT", at, "sector bitmap entry %d has state %d", i, state)
		}
	} else {
		switch state {
		case payloadNotPres, payloadUndef, payloadZero, payloadUnmap, payloadUnmapQ:
			return nil
		case payloadFull:
		case payloadPartial:
			if !img.hasParent {
				return formats.Corruptf(img.name, "BAT", at, "entry %d is PARTIALLY_PRESENT in a disk without a parent", i)
			}
			bm, err := lookup(img.bitmapIndex(i - i/(img.chunkRatio+1)))
			if err != nil {
				return err
			}
			if batState(bm) != bitmapPresent {
				return formats.Corruptf(img.name, "BAT", at, "entry %d is PARTIALLY_PRESENT but its sector bitmap is not present", i)
			}
		default:
			return formats.Corruptf(img.name, "BAT", at, "entry %d has unknown state %d", i, state)
		}
	}
	if off < headerSection || off >= img.fileSize {
		return formats.Corruptf(img.name, "BAT", at, "entry %d points at %d, outside the %d-byte file", i, off, img.fileSize)
	}
	for _, r := range img.regions {
		if off < r.end() && r.off < off+length {
			return formats.Corruptf(img.name, "BAT", at, "entry %d's block at %d overlaps the %s", i, off, r.what)
		}
	}
	return nil
}

// Size is the virtual disk size.
func (img *Image) Size() int64 { return img.size }

// Format is "vhdx".
func (img *Image) Format() string { return Name }

// Close closes the parent and the file.
func (img *Image) Close() error {
	var err error
	if img.parent != nil {
		err = img.parent.Close()
	}
	if cerr := img.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ClusterSize is the payload block size.
func (img *Image) ClusterSize() int64 { return img.blockSize }

// Info reports the block size as qemu's cluster-size; qemu has no
// format-specific data for VHDX.
func (img *Image) Info() formats.Info { return formats.Info{ClusterSize: img.blockSize} }
