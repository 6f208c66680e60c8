package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/guid"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name, qemu's; "vhd" is an alias.
const Name = "vpc"

func init() {
	formats.Register(&formats.Driver{
		Name:          Name,
		Aliases:       []string{"vhd"},
		Probe:         probe,
		Open:          Open,
		Create:        imageio.CreateWith(Create),
		CreateOptions: createOptions,
		Measure:       measure,
	})
}

// probe recognises a dynamic or differencing VHD by the footer copy at
// offset 0 and a fixed VHD by the footer at the end of the file (512 or 511
// bytes), which qemu does not look for.
func probe(in formats.ProbeInput) int {
	if len(in.Header) >= footerSize && footerValid(in.Header[:footerSize]) {
		return formats.ProbeCertain
	}
	for _, n := range []int{footerSize, legacyFooterSize} {
		if len(in.Tail) < n {
			continue
		}
		b := in.Tail[len(in.Tail)-n:]
		if !footerValid(b) {
			continue
		}
		if ft := decodeFooter(b); ft.DiskType == typeFixed {
			return formats.ProbeCertain
		}
		return formats.ProbeWeak // a dynamic disk whose first footer copy is damaged
	}
	if len(in.Header) >= 8 && string(in.Header[:8]) == footerCookie {
		return formats.ProbeWeak // cookie with a bad checksum: let Open say what is wrong
	}
	return formats.ProbeNone
}

// Image is an open VHD: fixed, dynamic or differencing.
type Image struct {
	f         formats.File
	name      string
	fileSize  int64 // at open (or create) time
	ft        footer
	footerOff int64 // where the footer in use was read (0 for the copy at 0)
	footerLen int64 // 512, or 511 for a pre-2004 footer
	size      int64 // virtual size in bytes

	// dynamic and differencing disks
	hdr        dynHeader
	blockSize  int64
	bitmapSize int64
	batEnd     int64 // end of the BAT in the file (rounded up to a sector)

	mu  sync.RWMutex // guards bat, nextFree, dirty and full (and, for differencing disks, block contents)
	bat []uint32

	bitmaps *bitmapCache    // differencing disks: sector bitmaps of allocated blocks
	budget  *formats.Budget // metadata memory of the image and its chain

	// differencing disks
	parent        formats.Image
	parentRef     string // the locator that opened the parent
	parentPath    string
	parentTSMatch bool // the header's parent timestamp matches the parent

	// writing
	writable bool
	stream   bool  // fixed disk going to a sequential stream: footer written last
	wrote    bool  // stream: the footer has been written
	nextFree int64 // where the next block (and the trailing footer) goes
	dirtyLo  int   // BAT entries [dirtyLo, dirtyHi) to write on Flush
	dirtyHi  int
	full     []uint64 // dynamic disks: blocks whose sector bitmap is all ones
	footDirt bool     // trailing footer must be (re)written on Flush
}

// Open opens f as a VHD.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
	img, err := open(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func open(ctx context.Context, f formats.File, opts formats.OpenOptions) (*Image, error) {
	img := &Image{f: f, name: f.Name(), writable: opts.Writable, budget: opts.EnsureBudget()}
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	img.fileSize = size
	if err := img.readFooter(); err != nil {
		return nil, err
	}
	img.size = img.ft.virtualSize()
	if err := opts.Limits.CheckVirtualSize(img.name, img.size); err != nil {
		return nil, err
	}
	switch img.ft.DiskType {
	case typeFixed:
		if img.size > img.footerOff {
			return nil, formats.Corruptf(img.name, "footer", img.footerOff,
				"disk size %d exceeds the %d data bytes in front of the footer: the image is truncated", img.size, img.footerOff)
		}
		return img, nil
	case typeDynamic, typeDifferencing:
	default:
		return nil, formats.Unsupportedf(img.name, "VHD disk type %d (only fixed 2, dynamic 3 and differencing 4 exist)", img.ft.DiskType)
	}
	if err := img.openDynamic(opts); err != nil {
		return nil, err
	}
	if img.ft.DiskType == typeDifferencing && !opts.NoBacking {
		if err := img.openParent(ctx, opts); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// readFooter finds the footer: the copy at offset 0 when it is a valid
// dynamic or differencing footer (what qemu trusts), else the one at the end
// of the file (512 bytes, or 511 for images older than Virtual PC 2004).
func (img *Image) readFooter() error {
	if img.fileSize < legacyFooterSize {
		return formats.Corruptf(img.name, "footer", -1, "a %d-byte file is too short to hold a VHD footer", img.fileSize)
	}
	head := make([]byte, footerSize)
	n, err := img.f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: reading footer copy: %w", img.name, err)
	}
	head = head[:n]
	if len(head) == footerSize && footerValid(head) {
		if ft := decodeFooter(head); ft.DiskType == typeDynamic || ft.DiskType == typeDifferencing {
			img.ft, img.footerOff, img.footerLen = ft, 0, footerSize
			return nil
		}
	}
	tail := make([]byte, min(img.fileSize, footerSize))
	if _, err := img.f.ReadAt(tail, img.fileSize-int64(len(tail))); err != nil && err != io.EOF {
		return fmt.Errorf("%s: reading footer: %w", img.name, err)
	}
	for _, n := range []int{footerSize, legacyFooterSize} {
		if len(tail) >= n && footerValid(tail[len(tail)-n:]) {
			img.ft = decodeFooter(tail[len(tail)-n:])
			img.footerOff, img.footerLen = img.fileSize-int64(n), int64(n)
			return nil
		}
	}
	switch {
	case bytes.HasPrefix(head, []byte(footerCookie)):
		return formats.Corruptf(img.name, "footer", 0, "bad checksum in the footer copy and no valid footer at the end of the file")
	case len(tail) == footerSize && bytes.HasPrefix(tail, []byte(footerCookie)):
		return formats.Corruptf(img.name, "footer", img.fileSize-footerSize, "bad footer checksum")
	}
	return formats.Corruptf(img.name, "footer", img.fileSize-footerSize, "no VHD footer (cookie %q) at offset 0 or at the end of the file", footerCookie)
}

// openDynamic reads the dynamic disk header and the BAT.
func (img *Image) openDynamic(opts formats.OpenOptions) error {
	hdrOff := img.ft.DataOffset
	if hdrOff > uint64(img.fileSize) || uint64(img.fileSize)-hdrOff < headerSize {
		return formats.Corruptf(img.name, "footer", img.footerOff, "dynamic header offset %d is outside the %d-byte file", hdrOff, img.fileSize)
	}
	b := make([]byte, headerSize)
	if _, err := img.f.ReadAt(b, int64(hdrOff)); err != nil {
		return fmt.Errorf("%s: reading dynamic header: %w", img.name, err)
	}
	img.hdr = decodeHeader(b)
	h := &img.hdr
	where := int64(hdrOff)
	if string(h.Cookie[:]) != headerCookie {
		return formats.Corruptf(img.name, "dynamic header", where, "cookie %q, want %q", h.Cookie[:], headerCookie)
	}
	bs := int64(h.BlockSize)
	if bs < sectorSize || bs&(bs-1) != 0 {
		return formats.Corruptf(img.name, "dynamic header", where, "block size %d is not a power of two of at least 512", bs)
	}
	if bs > maxBlockSize {
		return formats.Limitf(img.name, "dynamic header", where, "block size %d exceeds %d", bs, maxBlockSize)
	}
	img.blockSize, img.bitmapSize = bs, bitmapBytes(bs)
	entries := uint64(h.MaxTableEntries)
	if err := opts.Limits.CheckTable(img.name, "BAT", int64(h.TableOffset), entries, 4); err != nil {
		return err
	}
	if entries*uint64(bs) < uint64(img.size) {
		return formats.Corruptf(img.name, "dynamic header", where,
			"%d BAT entries of %d bytes cannot map the %d-byte disk", entries, bs, img.size)
	}
	batBytes := entries * 4
	if h.TableOffset > uint64(img.fileSize) || uint64(img.fileSize)-h.TableOffset < batBytes {
		return formats.Corruptf(img.name, "BAT", int64(min(h.TableOffset, 1<<62)),
			"the %d-byte BAT does not fit in the %d-byte file", batBytes, img.fileSize)
	}
	img.batEnd = roundUp(int64(h.TableOffset)+int64(batBytes), sectorSize)
	if err := img.readBAT(); err != nil {
		return err
	}
	if img.ft.DiskType == typeDifferencing {
		img.bitmaps = newBitmapCache(opts.Limits.WithDefaults().CacheBytes, img.bitmapSize, img.budget)
	}
	if img.writable {
		img.full = make([]uint64, (len(img.bat)+63)/64)
		img.nextFree = max(img.dataEnd(), roundUp(img.fileSize-img.footerLen, sectorSize))
		img.dirtyLo = len(img.bat)
	}
	return nil
}

// readBAT loads the BAT and checks every allocated block lies after the BAT,
// inside the file, and apart from every other block.
func (img *Image) readBAT() error {
	n := int(img.hdr.MaxTableEntries)
	if err := img.budget.Charge(img.name, "BAT", int64(img.hdr.TableOffset), 4*int64(n)); err != nil {
		return err
	}
	img.bat = make([]uint32, n)
	raw := make([]byte, min(4*n, batChunkBytes))
	var used []uint32
	for first := 0; first < n; first += len(raw) / 4 {
		chunk := raw[:4*min(n-first, len(raw)/4)]
		if _, err := img.f.ReadAt(chunk, int64(img.hdr.TableOffset)+4*int64(first)); err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading BAT: %w", img.name, err)
		}
		for i := range len(chunk) / 4 {
			e := binary.BigEndian.Uint32(chunk[4*i:])
			img.bat[first+i] = e
			if e == batUnused {
				continue
			}
			if err := img.checkBlock(first+i, e); err != nil {
				return err
			}
			used = append(used, e)
		}
	}
	blockSectors := img.blockBytes() / sectorSize
	slices.Sort(used)
	for i := 1; i < len(used); i++ {
		if int64(used[i]-used[i-1]) < blockSectors {
			return formats.Corruptf(img.name, "BAT", int64(img.hdr.TableOffset),
				"blocks at offsets %d and %d overlap", int64(used[i-1])*sectorSize, int64(used[i])*sectorSize)
		}
	}
	return nil
}

// batChunkBytes is how much of the BAT is read at a time.
const batChunkBytes = 1 << 20

// checkBlock checks block blk (BAT entry e) lies after the BAT and inside
// the file.
func (img *Image) checkBlock(blk int, e uint32) error {
	start := int64(e) * sectorSize
	where := int64(img.hdr.TableOffset) + 4*int64(blk)
	if start < img.batEnd {
		return formats.Corruptf(img.name, "BAT", where,
			"block %d at offset %d overlaps the headers or the BAT (which end at %d)", blk, start, img.batEnd)
	}
	if start+img.blockBytes() > img.fileSize {
		return formats.Corruptf(img.name, "BAT", where,
			"block %d at offset %d ends past the end of the %d-byte file: the image is truncated", blk, start, img.fileSize)
	}
	return nil
}

// dataEnd is the end of the metadata, locator data and blocks.
func (img *Image) dataEnd() int64 {
	end := img.batEnd
	for _, l := range img.hdr.Locators {
		if l.PlatformCode != platNone && l.DataOffset <= uint64(img.fileSize) &&
			uint64(l.DataLength) <= uint64(img.fileSize)-l.DataOffset {
			end = max(end, roundUp(int64(l.DataOffset)+int64(l.DataLength), sectorSize))
		}
	}
	for _, e := range img.bat {
		if e != batUnused {
			end = max(end, int64(e)*sectorSize+img.bitmapSize+img.blockSize)
		}
	}
	return end
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// Size is the virtual disk size in bytes.
func (img *Image) Size() int64 { return img.size }

// Format is "vpc", qemu's name for VHD.
func (img *Image) Format() string { return Name }

// Close flushes a writable image (as Flush does; every driver does so),
// then closes its parent and its file. An image written to a stream is
// completed by Flush only: Close alone leaves an abandoned stream without
// its footer, never one that looks complete.
func (img *Image) Close() error {
	var err error
	if img.writable && !img.stream {
		err = img.Flush()
	}
	if img.parent != nil {
		if perr := img.parent.Close(); err == nil {
			err = perr
		}
	}
	if cerr := img.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (img *Image) dynamic() bool { return img.ft.DiskType != typeFixed }
func (img *Image) differencing() bool {
	return img.ft.DiskType == typeDifferencing
}

// ReadAt reads virtual disk bytes; safe for concurrent use.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	return imageio.ReadClipped(p, off, img.size, img.read)
}

func (img *Image) read(p []byte, off int64) error {
	if !img.dynamic() {
		return img.readFile(p, off)
	}
	for len(p) > 0 {
		blk, in := off/img.blockSize, off%img.blockSize
		n := min(int64(len(p)), img.blockSize-in)
		if err := img.readBlock(p[:n], int(blk), in); err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// readFile reads file bytes; the part past the end of the file (a block
// being written, a fixed disk whose holes are at the end) reads as zeros.
func (img *Image) readFile(p []byte, fileOff int64) error {
	n, err := img.f.ReadAt(p, fileOff)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		clear(p[n:])
		return nil
	}
	return fmt.Errorf("%s: reading at offset %d: %w", img.name, fileOff, err)
}

// entry returns block blk's BAT entry.
func (img *Image) entry(blk int) uint32 {
	img.mu.RLock()
	defer img.mu.RUnlock()
	return img.bat[blk]
}

// dataOff is the file offset of byte in of a block whose BAT entry is e.
func (img *Image) dataOff(e uint32, in int64) int64 {
	return int64(e)*sectorSize + img.bitmapSize + in
}

// readBlock reads p from block blk at in. A dynamic disk reads an allocated
// block whole, as qemu does (sectors whose bitmap bit is clear hold zeros by
// the specification); a differencing disk takes those sectors from the
// parent.
func (img *Image) readBlock(p []byte, blk int, in int64) error {
	if !img.differencing() {
		e := img.entry(blk)
		if e == batUnused {
			clear(p)
			return nil
		}
		return img.readFile(p, img.dataOff(e, in))
	}
	img.mu.RLock()
	defer img.mu.RUnlock()
	e := img.bat[blk]
	virt := int64(blk)*img.blockSize + in
	if e == batUnused {
		return imageio.ReadBacking(img.parent, p, virt)
	}
	bm, err := img.bitmap(blk, e)
	if err != nil {
		return err
	}
	return forRuns(bm, in, int64(len(p)), func(runOff, runLen int64, present bool) error {
		q := p[runOff-in : runOff-in+runLen]
		if present {
			return img.readFile(q, img.dataOff(e, runOff))
		}
		return imageio.ReadBacking(img.parent, q, int64(blk)*img.blockSize+runOff)
	})
}

// forRuns calls fn for each run of sectors of equal bitmap bit covering
// [in, in+n) of a block, with byte offsets inside the block.
func forRuns(bm []byte, in, n int64, fn func(off, length int64, present bool) error) error {
	end := in + n
	for off := in; off < end; {
		sec := off / sectorSize
		present := bitSet(bm, sec)
		next := (sec + 1) * sectorSize
		for next < end && bitSet(bm, next/sectorSize) == present {
			next += sectorSize
		}
		next = min(next, end)
		if err := fn(off, next-off, present); err != nil {
			return err
		}
		off = next
	}
	return nil
}

// bitSet reads bit sec of a sector bitmap: most significant bit first.
func bitSet(bm []byte, sec int64) bool { return bm[sec/8]&(0x80>>(sec%8)) != 0 }

func setBit(bm []byte, sec int64) { bm[sec/8] |= 0x80 >> (sec % 8) }

// Extents reports the allocation of [off, off+length): allocated blocks are
// Data; unallocated blocks are Zero in a standalone disk (they read as
// zeros, as qemu's map says) and Unallocated in a differencing disk (they
// show the parent), as are its sectors whose bitmap bit is clear.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	length = min(length, img.size-off)
	if length <= 0 || off < 0 {
		return nil, nil
	}
	if !img.dynamic() {
		return img.fixedExtents(off, length)
	}
	var out []formats.Extent
	for end := off + length; off < end; {
		blk, in := off/img.blockSize, off%img.blockSize
		n := min(end-off, img.blockSize-in)
		var err error
		if out, err = img.blockExtents(out, int(blk), in, n); err != nil {
			return nil, err
		}
		off += n
	}
	return out, nil
}

// blockExtents appends the extents of [in, in+n) of block blk to out,
// merged with what is there.
func (img *Image) blockExtents(out []formats.Extent, blk int, in, n int64) ([]formats.Extent, error) {
	virt := int64(blk) * img.blockSize
	img.mu.RLock()
	defer img.mu.RUnlock()
	e := img.bat[blk]
	if e == batUnused {
		kind := formats.Zero
		if img.differencing() {
			kind = formats.Unallocated
		}
		return imageio.AppendExtent(out, formats.Extent{Offset: virt + in, Length: n, Kind: kind, HostOffset: -1}), nil
	}
	if !img.differencing() {
		return imageio.AppendExtent(out, formats.Extent{Offset: virt + in, Length: n, Kind: formats.Data, HostOffset: img.dataOff(e, in)}), nil
	}
	bm, err := img.bitmap(blk, e)
	if err != nil {
		return nil, err
	}
	err = forRuns(bm, in, n, func(runOff, runLen int64, present bool) error {
		x := formats.Extent{Offset: virt + runOff, Length: runLen, Kind: formats.Unallocated, HostOffset: -1}
		if present {
			x.Kind, x.HostOffset = formats.Data, img.dataOff(e, runOff)
		}
		out = imageio.AppendExtent(out, x)
		return nil
	})
	return out, err
}

// fixedExtents reports a fixed disk as data at the same file offset, with
// the file's holes as Zero when the file system can tell.
func (img *Image) fixedExtents(off, length int64) ([]formats.Extent, error) {
	if img.stream {
		return []formats.Extent{{Offset: off, Length: length, Kind: formats.Data, HostOffset: off}}, nil
	}
	return imageio.FileExtents(img.f, off, off, length)
}

// Backing is the parent of a differencing disk (nil otherwise, or when
// opened with NoBacking).
func (img *Image) Backing() formats.Image {
	if img.parent == nil {
		return nil // a typed nil would not compare equal to nil
	}
	return img.parent
}

// BackingName is the parent reference: the locator that opened the parent,
// else the header's parent name.
func (img *Image) BackingName() string {
	if !img.differencing() {
		return ""
	}
	if img.parentRef != "" {
		return img.parentRef
	}
	return img.hdr.parentName()
}

// BackingPath is the parent's path as resolved ("" when not opened).
func (img *Image) BackingPath() string { return img.parentPath }

// BackingFormat is "vpc" for a differencing disk: a VHD's parent is a VHD.
func (img *Image) BackingFormat() string {
	if img.differencing() {
		return Name
	}
	return ""
}

// ClusterSize is the granularity the conversion engine should detect zeros
// at: a sector. A block is allocated on its first write, and the parts of it
// never written stay holes in the file, as with qemu, so zero runs inside a
// block need not be written. (Info reports the block size as cluster-size.)
func (img *Image) ClusterSize() int64 { return sectorSize }

// Info describes the footer (creator, geometry, both sizes) and, for
// dynamic disks, the block size; qemu prints none of it.
func (img *Image) Info() formats.Info {
	ft := &img.ft
	g := ft.geometry()
	source := "geometry"
	if ft.usesCurrentSize() {
		source = "current-size"
	}
	d := &Details{
		Subformat:      ft.DiskType.String(),
		CreatorApp:     printable(ft.CreatorApp[:]),
		CreatorVersion: fmt.Sprintf("%d.%d", ft.CreatorVersion>>16, ft.CreatorVersion&0xffff),
		CreatorOS:      printable(ft.CreatorOS[:]),
		Geometry:       fmt.Sprintf("%d/%d/%d", g.Cylinders, g.Heads, g.SectorsPerTrack),
		GeometrySize:   g.sectors() * sectorSize,
		CurrentSize:    int64(ft.CurrentSize),
		OriginalSize:   int64(ft.OriginalSize),
		SizeSource:     source,
		UUID:           formatUUID(ft.UniqueID),
		Timestamp:      timeOf(ft.Timestamp).Format("2006-01-02T15:04:05Z"),
		LegacyFooter:   img.footerLen == legacyFooterSize,
	}
	info := formats.Info{Details: d}
	if img.dynamic() {
		info.ClusterSize = img.blockSize
		d.BlockSize = img.blockSize
	}
	if img.differencing() {
		d.ParentUUID = formatUUID(img.hdr.ParentUniqueID)
		d.ParentName = img.hdr.parentName()
		d.ParentTimestamp = timeOf(img.hdr.ParentTimestamp).Format("2006-01-02T15:04:05Z")
		if img.parent != nil {
			match := img.parentTSMatch
			d.ParentTimestampMatch = &match
		}
	}
	return info
}

// Details are what `info` reports of a VHD under format-specific (qemu
// reports none for vpc: these are vdisk's), in this order.
type Details struct {
	Subformat      string `json:"subformat"` // "fixed", "dynamic" or "differencing"
	CreatorApp     string `json:"creator-app"`
	CreatorVersion string `json:"creator-version"` // "major.minor"
	CreatorOS      string `json:"creator-os"`
	Geometry       string `json:"geometry"`      // "cylinders/heads/sectors"
	GeometrySize   int64  `json:"geometry-size"` // bytes the CHS geometry covers
	CurrentSize    int64  `json:"current-size"`
	OriginalSize   int64  `json:"original-size"`
	// SizeSource says which of geometry-size and current-size is the
	// virtual size: "geometry" or "current-size".
	SizeSource   string `json:"size-source"`
	UUID         string `json:"uuid"`
	Timestamp    string `json:"timestamp"`               // RFC 3339, UTC
	LegacyFooter bool   `json:"legacy-footer,omitempty"` // a 511-byte footer (Virtual PC before 2004)
	BlockSize    int64  `json:"block-size,omitempty"`    // dynamic and differencing disks
	// The parent of a differencing disk, as its header names it.
	ParentUUID      string `json:"parent-uuid,omitempty"`
	ParentName      string `json:"parent-name,omitempty"`
	ParentTimestamp string `json:"parent-timestamp,omitempty"`
	// ParentTimestampMatch is whether the opened parent's timestamp is the
	// one recorded; nil when the parent was not opened.
	ParentTimestampMatch *bool `json:"parent-timestamp-match"`
}

// formatUUID renders a VHD UUID (stored in RFC 4122 order).
func formatUUID(u [16]byte) string { return guid.GUID(u).String() }
