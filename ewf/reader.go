package ewf

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"

	"github.com/klauspost/compress/zlib"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Bounds on values read from an image, checked before they size anything.
const (
	maxChunkBytes   = 64 << 20 // sectors per chunk x bytes per sector
	maxSectionBody  = 16 << 20 // a header, volume, hash... section body read whole
	maxSectorBytes  = 4096
	minSectorBytes  = 512
	entryOffsetMask = entryCompressed - 1
)

// segment is one open segment file.
type segment struct {
	f    formats.File
	name string
	size int64
}

// table is one table section: where its entries are and what bounds the
// chunks they point to. Entries are loaded on demand (tableCache).
type table struct {
	seg        int
	descOff    int64 // offset of the table section's descriptor
	entriesOff int64 // offset of the entry array
	mirrorOff  int64 // entry array of the table2 copy, -1 when none
	entries    int64
	base       int64 // added to every entry's offset
	dataStart  int64 // chunks lie in [dataStart, dataEnd) of the segment file
	dataEnd    int64
	footer     bool  // an Adler-32 of the entry array follows it (EWF-E01)
	first      int64 // index of the table's first chunk
}

// Image is an open EWF image (a set of segment files read as one disk).
type Image struct {
	name       string
	segs       []segment
	vol        volume
	chunkBytes int64
	maxStored  int64 // largest stored (compressed or checksummed) chunk accepted
	size       int64
	tables     []table
	chunks     int64
	meta       Metadata
	digests    digests
	sections   map[string]int // section type counts, for the format guess
	header2    bool
	headerCats int // categories of the first header section
	headerCRLF bool
	cache      *tableCache
	zpool      sync.Pool // zlib readers
	rawPool    sync.Pool // stored-chunk buffers (*[]byte)
	chunkPool  sync.Pool // chunk buffers for partial reads (*[]byte)
}

// Open opens f, the first segment file of an EWF image; the other segment
// files are opened through opts.Resolver, by name next to f.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
	img, err := open(f, opts)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func open(f formats.File, opts formats.OpenOptions) (*Image, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	img := &Image{name: f.Name(), sections: map[string]int{}}
	if err := checkFileHeader(f, f.Name(), size, 1); err != nil {
		return nil, err
	}
	img.segs = []segment{{f: f, name: f.Name(), size: size}}
	p := &parser{img: img, limits: opts.Limits.WithDefaults()}
	ok := false
	defer func() {
		if !ok {
			img.closeSiblings()
		}
	}()
	for n := 1; ; n++ {
		last, err := p.walkSegment(n - 1)
		if err != nil {
			return nil, err
		}
		if last {
			break
		}
		if err := img.openSegment(n+1, opts); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	img.cache = newTableCache(opts.Limits.WithDefaults().CacheBytes)
	ok = true
	return img, nil
}

// checkFileHeader validates the 13-byte file header of segment number want.
func checkFileHeader(f formats.File, name string, size int64, want int) error {
	b := make([]byte, fileHeaderBytes)
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading EWF file header: %w", name, err)
		}
		return formats.Corruptf(name, "EWF file header", 0, "segment file is only %d bytes", size)
	}
	switch {
	case bytes.HasPrefix(b, sigEVF):
	case bytes.HasPrefix(b, sigLVF):
		return formats.Unsupportedf(name, "EWF-L01 logical evidence files (they hold files, not a disk image)")
	case bytes.HasPrefix(b, sigEVF2), bytes.HasPrefix(b, sigLEF2):
		return formats.Unsupportedf(name, "EWF2 (Ex01/Lx01, EnCase 7 version 2) images: vdisk reads EWF-E01 and EWF-S01; "+
			"convert with ewfexport -f encase6 first")
	default:
		return formats.Corruptf(name, "EWF file header", 0, "no EWF signature")
	}
	if got := int(binary.LittleEndian.Uint16(b[9:])); got != want {
		if want == 1 {
			return formats.Unsupportedf(name, "this is segment %d of an EWF set; open the first segment (.E01)", got)
		}
		return formats.Corruptf(name, "EWF file header", 9, "segment number is %d, want %d", got, want)
	}
	return nil
}

// openSegment opens segment number n (2 and up) by its name next to the
// first segment, through the reference policy.
func (img *Image) openSegment(n int, opts formats.OpenOptions) error {
	path, err := segmentName(img.name, n)
	if err != nil {
		return formats.Corruptf(img.name, "segment set", -1, "segment %d ends with a next section, but %v", n-1, err)
	}
	ref := filepath.Base(path)
	f, err := opts.References().Open(img.name, ref, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return formats.Corruptf(img.name, "segment set", -1, "segment %d (%s) is missing: segment %d ends with a next section", n, ref, n-1)
		}
		return fmt.Errorf("%s: opening segment %d (%s): %w", img.name, n, ref, err)
	}
	size, err := f.Size()
	if err == nil {
		err = checkFileHeader(f, f.Name(), size, n)
	}
	if err != nil {
		f.Close()
		return err
	}
	img.segs = append(img.segs, segment{f: f, name: f.Name(), size: size})
	return nil
}

func (img *Image) closeSiblings() {
	for _, s := range img.segs[1:] {
		s.f.Close()
	}
	img.segs = img.segs[:1]
}

// parser is the state of the section walk over all segment files.
type parser struct {
	img        *Image
	limits     formats.Limits
	haveVolume bool
	badTable   bool // the last table section's header was damaged: use its table2
}

// walkSegment reads the sections of segment index i in order; last is true
// when it ends with a done section.
func (p *parser) walkSegment(i int) (last bool, err error) {
	seg := &p.img.segs[i]
	sectorsStart, sectorsEnd := int64(-1), int64(-1)
	tableSinceSectors := false
	p.badTable = false
	for off := int64(fileHeaderBytes); ; {
		d, err := p.readDescriptor(seg, off)
		if err != nil {
			return false, err
		}
		p.img.sections[d.Type]++
		switch d.Type {
		case secDone:
			return true, nil
		case secNext:
			return false, nil
		}
		end := int64(d.Next)
		if d.Next > uint64(seg.size) || end < off+descriptorBytes {
			return false, formats.Corruptf(seg.name, d.Type+" section", off,
				"next section offset %d is not after the descriptor and inside the %d-byte file (truncated segment?)", d.Next, seg.size)
		}
		if d.Size != 0 && d.Size != uint64(end-off) {
			return false, formats.Corruptf(seg.name, d.Type+" section", off,
				"section size %d disagrees with the next section offset %d", d.Size, d.Next)
		}
		body, bodyLen := off+descriptorBytes, end-off-descriptorBytes
		switch d.Type {
		case secSectors:
			sectorsStart, sectorsEnd, tableSinceSectors = body, end, false
		case secTable, secTable2:
			added, err := p.table(i, d, body, bodyLen, sectorsStart, sectorsEnd, tableSinceSectors)
			if err != nil {
				return false, err
			}
			tableSinceSectors = tableSinceSectors || added
		default:
			if err := p.other(i, d, body, bodyLen); err != nil {
				return false, err
			}
		}
		off = end
	}
}

func (p *parser) readDescriptor(seg *segment, off int64) (descriptor, error) {
	if off+descriptorBytes > seg.size {
		return descriptor{}, formats.Corruptf(seg.name, "section descriptor", off,
			"the %d-byte segment file ends before it (truncated segment, or a missing done section)", seg.size)
	}
	b := make([]byte, descriptorBytes)
	if _, err := seg.f.ReadAt(b, off); err != nil {
		return descriptor{}, fmt.Errorf("%s: reading section descriptor at %d: %w", seg.name, off, err)
	}
	d, ok := decodeDescriptor(b)
	if !ok {
		return d, formats.Corruptf(seg.name, "section descriptor", off, "Adler-32 mismatch (type %q)", printable(d.Type))
	}
	d.Offset = off
	return d, nil
}

// readBody reads a small section body whole (headers, volume, hashes).
func (p *parser) readBody(seg *segment, d descriptor, body, bodyLen, min int64) ([]byte, error) {
	if bodyLen < min {
		return nil, formats.Corruptf(seg.name, d.Type+" section", d.Offset, "body is %d bytes, want at least %d", bodyLen, min)
	}
	if bodyLen > maxSectionBody {
		return nil, formats.Limitf(seg.name, d.Type+" section", d.Offset, "body of %d bytes exceeds %d", bodyLen, maxSectionBody)
	}
	b := make([]byte, bodyLen)
	if _, err := seg.f.ReadAt(b, body); err != nil {
		return nil, fmt.Errorf("%s: reading %s section at %d: %w", seg.name, d.Type, d.Offset, err)
	}
	return b, nil
}

// other handles the sections that are not chunk tables.
func (p *parser) other(i int, d descriptor, body, bodyLen int64) error {
	seg := &p.img.segs[i]
	switch d.Type {
	case secHeader, secHeader2, secXHeader:
		return p.header(seg, d, body, bodyLen)
	case secVolume, secDisk, secData:
		b, err := p.readBody(seg, d, body, bodyLen, smartVolumeBytes)
		if err != nil {
			return err
		}
		return p.volume(seg, d, b)
	case secDigest:
		b, err := p.readBody(seg, d, body, bodyLen, digestBytes)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(b[76:]) != sum(b[:76]) {
			return formats.Corruptf(seg.name, "digest section", d.Offset, "Adler-32 mismatch")
		}
		p.img.digests.MD5, p.img.digests.SHA1 = nonZero(b[0:16]), nonZero(b[16:36])
	case secHash:
		b, err := p.readBody(seg, d, body, bodyLen, hashBytes)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(b[32:]) != sum(b[:32]) {
			return formats.Corruptf(seg.name, "hash section", d.Offset, "Adler-32 mismatch")
		}
		if md5 := nonZero(b[0:16]); md5 != nil && p.img.digests.MD5 == nil {
			p.img.digests.MD5 = md5
		}
	case secXHash:
		return p.xhash(seg, d, body, bodyLen)
	case secLtree, secLtypes:
		return formats.Unsupportedf(seg.name, "EWF-L01 logical evidence (%s section at offset %d)", d.Type, d.Offset)
	case secIncompl:
		return formats.Unsupportedf(seg.name, "incomplete EWF images (an incomplete section at offset %d: the acquisition did not finish)", d.Offset)
	}
	return nil // error2, session and unknown sections do not change the disk
}

func (p *parser) header(seg *segment, d descriptor, body, bodyLen int64) error {
	b, err := p.readBody(seg, d, body, bodyLen, 1)
	if err != nil {
		return err
	}
	text, err := inflate(b, maxHeaderBytes)
	if err != nil {
		return formats.Corruptf(seg.name, d.Type+" section", d.Offset, "zlib: %v", err)
	}
	img := p.img
	switch d.Type {
	case secHeader2:
		img.header2 = true
		img.meta.merge(parseHeaderText(decodeUTF16(text)))
	case secXHeader:
		img.meta.merge(parseXHeader(string(text)))
	default:
		if img.sections[secHeader] == 1 {
			img.headerCRLF = bytes.Contains(text, []byte("\r\n"))
			fmt.Sscan(string(text), &img.headerCats)
		}
		img.meta.merge(parseHeaderText(string(text)))
	}
	return nil
}

func (p *parser) xhash(seg *segment, d descriptor, body, bodyLen int64) error {
	b, err := p.readBody(seg, d, body, bodyLen, 1)
	if err != nil {
		return err
	}
	text, err := inflate(b, maxHeaderBytes)
	if err != nil {
		return formats.Corruptf(seg.name, "xhash section", d.Offset, "zlib: %v", err)
	}
	x := parseXML(string(text))
	if v, err := hex.DecodeString(x["md5"]); err == nil && len(v) == 16 && p.img.digests.MD5 == nil {
		p.img.digests.MD5 = nonZero(v)
	}
	if v, err := hex.DecodeString(x["sha1"]); err == nil && len(v) == 20 && p.img.digests.SHA1 == nil {
		p.img.digests.SHA1 = nonZero(v)
	}
	return nil
}

// volume takes the first volume (or disk/data) section as the geometry and
// requires every later copy to agree with it.
func (p *parser) volume(seg *segment, d descriptor, b []byte) error {
	v, sumOK, ok := decodeVolume(b)
	if !ok {
		return formats.Corruptf(seg.name, d.Type+" section", d.Offset, "body of %d bytes is no volume layout", len(b))
	}
	if !sumOK {
		return formats.Corruptf(seg.name, d.Type+" section", d.Offset, "Adler-32 mismatch")
	}
	if !p.haveVolume {
		p.haveVolume = true
		p.img.vol = v
		return p.geometry(seg, d)
	}
	o := p.img.vol
	if v.ChunkCount != o.ChunkCount || v.SectorsPerChunk != o.SectorsPerChunk || v.BytesPerSector != o.BytesPerSector || v.SectorCount != o.SectorCount {
		return formats.Corruptf(seg.name, d.Type+" section", d.Offset,
			"geometry (%d chunks of %d sectors of %d bytes, %d sectors) disagrees with the volume section (%d, %d, %d, %d)",
			v.ChunkCount, v.SectorsPerChunk, v.BytesPerSector, v.SectorCount, o.ChunkCount, o.SectorsPerChunk, o.BytesPerSector, o.SectorCount)
	}
	return nil
}

// geometry validates the volume and derives the chunk and disk sizes.
func (p *parser) geometry(seg *segment, d descriptor) error {
	v := p.img.vol
	if v.MediaType == mediaLogical {
		return formats.Unsupportedf(seg.name, "EWF-L01 logical evidence (media type 0x0e)")
	}
	bps := int64(v.BytesPerSector)
	if bps < minSectorBytes || bps > maxSectorBytes || bps&(bps-1) != 0 {
		return formats.Unsupportedf(seg.name, "%d bytes per sector (vdisk reads 512 to 4096, a power of two)", bps)
	}
	chunk := int64(v.SectorsPerChunk) * bps
	if v.SectorsPerChunk == 0 || chunk > maxChunkBytes {
		return formats.Limitf(seg.name, d.Type+" section", d.Offset, "%d sectors per chunk (chunks of 1 to %d bytes)", v.SectorsPerChunk, maxChunkBytes)
	}
	if v.SectorCount > uint64(p.limits.MaxVirtualSize)/uint64(bps) {
		return formats.Limitf(seg.name, d.Type+" section", d.Offset, "%d sectors exceed the %d-byte disk limit", v.SectorCount, p.limits.MaxVirtualSize)
	}
	size := int64(v.SectorCount) * bps
	if want := (size + chunk - 1) / chunk; int64(v.ChunkCount) != want {
		return formats.Corruptf(seg.name, d.Type+" section", d.Offset,
			"chunk count %d does not fit %d sectors of %d bytes in chunks of %d sectors (want %d)", v.ChunkCount, v.SectorCount, bps, v.SectorsPerChunk, want)
	}
	p.img.size, p.img.chunkBytes = size, chunk
	p.img.maxStored = 2*chunk + 1024
	return nil
}

// table records a table or table2 section. A table2 right after its table
// becomes that table's mirror (read when the table's entries are damaged);
// a table2 after a damaged table header replaces it.
func (p *parser) table(i int, d descriptor, body, bodyLen, sectorsStart, sectorsEnd int64, haveTable bool) (bool, error) {
	seg := &p.img.segs[i]
	if !p.haveVolume {
		return false, formats.Corruptf(seg.name, d.Type+" section", d.Offset, "chunk table before the volume section")
	}
	if bodyLen < tableHeaderBytes {
		return false, formats.Corruptf(seg.name, d.Type+" section", d.Offset, "body is %d bytes, shorter than the table header", bodyLen)
	}
	b := make([]byte, tableHeaderBytes)
	if _, err := seg.f.ReadAt(b, body); err != nil {
		return false, fmt.Errorf("%s: reading %s header at %d: %w", seg.name, d.Type, body, err)
	}
	h, sumOK := decodeTableHeader(b)
	if !sumOK {
		if d.Type == secTable {
			p.badTable = true
			return false, nil
		}
		return false, formats.Corruptf(seg.name, "table2 header", body, "Adler-32 mismatch")
	}
	t := table{seg: i, descOff: d.Offset, entriesOff: body + tableHeaderBytes, mirrorOff: -1,
		entries: int64(h.Entries), first: p.img.chunks}
	// Each entry is decoded to a chunkLoc in memory: that is what is bounded.
	if err := p.limits.CheckTable(seg.name, d.Type, d.Offset, uint64(h.Entries), locBytes); err != nil {
		return false, err
	}
	if int64(h.Entries)*tableEntryBytes > bodyLen-tableHeaderBytes {
		return false, formats.Corruptf(seg.name, d.Type+" section", d.Offset, "%d entries do not fit in its %d bytes", h.Entries, bodyLen)
	}
	if h.Base > uint64(seg.size) {
		return false, formats.Corruptf(seg.name, d.Type+" header", body, "base offset %d is past the end of the file", h.Base)
	}
	t.base = int64(h.Base)
	if sectorsStart >= 0 {
		t.dataStart, t.dataEnd, t.footer = sectorsStart, sectorsEnd, true
	} else { // EWF-S01, EnCase 1: the chunks follow the entries inside the table section
		t.dataStart, t.dataEnd = t.entriesOff+t.entries*tableEntryBytes, body+bodyLen
	}
	if d.Type == secTable2 && haveTable && !p.badTable {
		last := &p.img.tables[len(p.img.tables)-1]
		if last.entries == t.entries && last.base == t.base {
			last.mirrorOff = t.entriesOff
		}
		return false, nil
	}
	p.badTable = false
	if p.img.chunks+t.entries > int64(p.img.vol.ChunkCount) {
		return false, formats.Corruptf(seg.name, d.Type+" section", d.Offset,
			"tables list more than the volume's %d chunks", p.img.vol.ChunkCount)
	}
	p.img.tables = append(p.img.tables, t)
	p.img.chunks += t.entries
	return true, nil
}

// finish checks that the set is whole.
func (p *parser) finish() error {
	img := p.img
	if !p.haveVolume {
		return formats.Corruptf(img.name, "volume section", -1, "none in the segment set")
	}
	if p.badTable {
		return formats.Corruptf(img.name, "table section", -1, "the last table header is damaged and has no table2 copy")
	}
	if img.chunks != int64(img.vol.ChunkCount) {
		return formats.Corruptf(img.name, "chunk tables", -1,
			"the segment set's tables list %d chunks, the volume section %d (a segment file missing or cut short?)", img.chunks, img.vol.ChunkCount)
	}
	return nil
}

// Size is the disk size in bytes.
func (img *Image) Size() int64 { return img.size }

// Format is "ewf".
func (img *Image) Format() string { return Name }

// ClusterSize is the chunk size.
func (img *Image) ClusterSize() int64 { return img.chunkBytes }

// Extents reports everything as data: EWF stores every chunk.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	if off < 0 {
		return nil, fmt.Errorf("%s: negative offset %d", img.name, off)
	}
	return imageio.AllData(off, min(length, img.size-off)), nil
}

// Close closes every segment file.
func (img *Image) Close() error {
	var err error
	for _, s := range img.segs {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Segments is the number of segment files.
func (img *Image) Segments() int { return len(img.segs) }

// Metadata is the case information from the header sections.
func (img *Image) Metadata() Metadata { return img.meta }

// chunkLen is the number of disk bytes in chunk idx (the last may be short).
func (img *Image) chunkLen(idx int64) int64 {
	return min(img.chunkBytes, img.size-idx*img.chunkBytes)
}

// ReadAt reads disk bytes, decoding and checking each chunk. A chunk whose
// Adler-32 does not match is an ErrCorrupt naming its segment file, file
// offset and disk offset (convert --salvage reads on past it, as zeros).
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(p, off, img.size)
	for done := 0; done < n; {
		cur := off + int64(done)
		idx, within := cur/img.chunkBytes, cur%img.chunkBytes
		take := int(min(int64(n-done), img.chunkLen(idx)-within))
		if within == 0 && int64(take) == img.chunkBytes {
			if err := img.readChunk(idx, p[done:done+take]); err != nil {
				return done, err
			}
		} else {
			bp := img.chunkBuf()
			err := img.readChunk(idx, *bp)
			copy(p[done:done+take], (*bp)[within:])
			img.chunkPool.Put(bp)
			if err != nil {
				return done, err
			}
		}
		done += take
	}
	return n, eof
}

func (img *Image) chunkBuf() *[]byte {
	if bp, ok := img.chunkPool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, img.chunkBytes)
	return &b
}

// chunkLoc is where a chunk is stored.
type chunkLoc struct {
	seg        int
	off        int64 // file offset
	stored     int64 // bytes stored (compressed stream, or data and Adler-32)
	compressed bool
}

// locate finds chunk idx through its table.
func (img *Image) locate(idx int64) (chunkLoc, error) {
	ti := sort.Search(len(img.tables), func(i int) bool { return img.tables[i].first+img.tables[i].entries > idx })
	if ti == len(img.tables) {
		return chunkLoc{}, formats.Corruptf(img.name, "chunk tables", -1, "no table lists chunk %d", idx)
	}
	t := &img.tables[ti]
	locs, err := img.tableLocs(ti)
	if err != nil {
		return chunkLoc{}, err
	}
	return locs[idx-t.first], nil
}

// tableLocs returns the decoded, validated chunk locations of table ti.
func (img *Image) tableLocs(ti int) ([]chunkLoc, error) {
	if locs := img.cache.get(ti); locs != nil {
		return locs, nil
	}
	locs, err := img.loadTable(ti)
	if err != nil {
		return nil, err
	}
	img.cache.put(ti, locs)
	return locs, nil
}

// loadTable reads table ti's entries; damaged entries (Adler-32, or offsets
// out of order or out of the chunk area) are read from the table2 copy.
func (img *Image) loadTable(ti int) ([]chunkLoc, error) {
	t := &img.tables[ti]
	locs, err := img.readEntries(t, t.entriesOff)
	if err != nil && t.mirrorOff >= 0 {
		var merr error
		if locs, merr = img.readEntries(t, t.mirrorOff); merr == nil {
			return locs, nil
		}
		return nil, fmt.Errorf("%w (the table2 copy too: %v)", err, merr)
	}
	return locs, err
}

func (img *Image) readEntries(t *table, at int64) ([]chunkLoc, error) {
	seg := &img.segs[t.seg]
	n := t.entries * tableEntryBytes
	readLen := n
	if t.footer {
		readLen += checksumBytes
	}
	b := make([]byte, readLen)
	if got, err := seg.f.ReadAt(b, at); int64(got) < readLen {
		if err == nil || err == io.EOF {
			return nil, formats.Corruptf(seg.name, "table entries", at, "%d entries run past the end of the file", t.entries)
		}
		return nil, fmt.Errorf("%s: reading table entries at %d: %w", seg.name, at, err)
	}
	if t.footer && binary.LittleEndian.Uint32(b[n:]) != sum(b[:n]) {
		return nil, formats.Corruptf(seg.name, "table entries", at, "Adler-32 mismatch")
	}
	locs := make([]chunkLoc, t.entries)
	for i := range locs {
		e := binary.LittleEndian.Uint32(b[4*i:])
		locs[i] = chunkLoc{seg: t.seg, off: t.base + int64(e&entryOffsetMask), compressed: e&entryCompressed != 0}
	}
	end := min(t.dataEnd, seg.size)
	for i := range locs {
		next := end
		if i+1 < len(locs) {
			next = locs[i+1].off
		}
		l := &locs[i]
		l.stored = next - l.off
		if l.off < t.dataStart || l.stored <= 0 || l.stored > img.maxStored {
			return nil, formats.Corruptf(seg.name, "table entries", at+4*int64(i),
				"chunk %d at offset %d: stored size %d outside 1..%d, or outside the chunk data at %d..%d",
				t.first+int64(i), l.off, l.stored, img.maxStored, t.dataStart, end)
		}
	}
	return locs, nil
}

// readChunk decodes chunk idx into dst (chunkBytes long). The last chunk
// holds chunkLen bytes of the disk, and may store more (ewfacquire keeps a
// source's trailing partial sector there); they are decoded and ignored.
func (img *Image) readChunk(idx int64, dst []byte) error {
	loc, err := img.locate(idx)
	if err != nil {
		return err
	}
	seg := &img.segs[loc.seg]
	rp := img.rawBuf()
	defer img.rawPool.Put(rp)
	raw := (*rp)[:loc.stored]
	if got, err := seg.f.ReadAt(raw, loc.off); int64(got) < loc.stored {
		if err == nil || err == io.EOF {
			return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d) ends past the end of the file (truncated segment?)", idx, idx*img.chunkBytes)
		}
		return fmt.Errorf("%s: reading chunk %d at %d: %w", seg.name, idx, loc.off, err)
	}
	need := img.chunkLen(idx)
	if loc.compressed {
		return img.inflateChunk(idx, loc, raw, dst, need)
	}
	dataLen := int64(len(raw)) - checksumBytes
	if dataLen < need || dataLen > img.chunkBytes {
		return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d): %d stored bytes, want %d data bytes and an Adler-32",
			idx, idx*img.chunkBytes, len(raw), need)
	}
	data := raw[:dataLen]
	want := binary.LittleEndian.Uint32(raw[dataLen:])
	if got := sum(data); got != want {
		return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d): Adler-32 is %08x, the stored checksum %08x", idx, idx*img.chunkBytes, got, want)
	}
	copy(dst, data)
	return nil
}

func (img *Image) rawBuf() *[]byte {
	if bp, ok := img.rawPool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, img.maxStored)
	return &b
}

// inflateChunk decompresses a zlib chunk into dst: at least need and at
// most len(dst) bytes, then the end of the stream, whose Adler-32 zlib checks.
func (img *Image) inflateChunk(idx int64, loc chunkLoc, raw, dst []byte, need int64) error {
	seg := &img.segs[loc.seg]
	bad := func(format string, args ...any) error {
		return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d): %s", idx, idx*img.chunkBytes, fmt.Sprintf(format, args...))
	}
	src := bytes.NewReader(raw)
	zr, _ := img.zpool.Get().(io.ReadCloser)
	var err error
	if zr == nil {
		zr, err = zlib.NewReader(src)
	} else {
		err = zr.(zlib.Resetter).Reset(src, nil)
	}
	if err != nil {
		return bad("zlib header: %v", err)
	}
	defer img.zpool.Put(zr)
	total := 0
	var one [1]byte
	for {
		buf := dst[total:]
		if len(buf) == 0 {
			buf = one[:] // past the chunk: only the end of the stream may follow
		}
		n, err := zr.Read(buf)
		if len(dst[total:]) == 0 && n > 0 {
			return bad("decompresses to more than %d bytes", len(dst))
		}
		total += n
		if err == io.EOF {
			break
		}
		if errors.Is(err, zlib.ErrChecksum) {
			return bad("Adler-32 mismatch in the zlib stream")
		}
		if err != nil {
			return bad("zlib: %v", err)
		}
	}
	if int64(total) < need {
		return bad("decompresses to %d bytes, want %d", total, need)
	}
	return nil
}
