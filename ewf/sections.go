package ewf

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

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
