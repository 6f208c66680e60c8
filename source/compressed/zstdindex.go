package compressed

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// A zstd file (RFC 8878) is a sequence of frames, each decodable on its
// own. Two ways to find them without decompressing:
//
// The seekable format (zstd's contrib/seekable_format) ends with a
// skippable frame holding a seek table:
//
//	0   magic 0x184D2A5E (LE), frame size (LE uint32)
//	8   entries: compressed size, decompressed size (LE uint32 each),
//	    [XXH64 low 32 bits when the checksum flag is set]
//	end-9  number of frames (LE uint32), descriptor (bit 7: checksums;
//	       bits 0..6 reserved, zero), magic 0x8F92EAB1 (LE)
//
// Without one, the frames are walked: a frame header (magic 0xFD2FB528,
// descriptor, window, dictionary ID, content size) and then its blocks,
// each with a 3-byte header (last flag, type, size) that says how many
// bytes it stores; a content checksum may follow. A frame whose header
// does not carry its content size cannot be indexed: such a file is
// spooled. Skippable frames (magic 0x184D2A5?) are stepped over.

const (
	zstdFrameMagic     = 0xFD2FB528
	zstdSkippableMask  = 0xFFFFFFF0
	zstdSkippableMagic = 0x184D2A50
	zstdSeekTableMagic = 0x184D2A5E
	zstdSeekableMagic  = 0x8F92EAB1
	zstdSeekFooter     = 9
	zstdMaxBlockBytes  = 128 << 10
)

// errNotIndexable: the file has no index that lets it read in place; it
// is spooled instead.
var errNotIndexable = fmt.Errorf("not indexable")

// zstdBlocks indexes the zstd file r of size bytes: from its seek table
// when it ends with one, else by walking its frames.
func zstdBlocks(r io.ReaderAt, size int64, name string, maxFrameBytes int64) ([]block, error) {
	blocks, err := zstdSeekTable(r, size, name)
	if err != errNotIndexable {
		return blocks, err
	}
	return zstdWalk(r, size, name, maxFrameBytes)
}

// zstdSeekTable reads the seek table at the end of a seekable-zstd file;
// errNotIndexable when there is none.
func zstdSeekTable(r io.ReaderAt, size int64, name string) ([]block, error) {
	if size < 8+zstdSeekFooter {
		return nil, errNotIndexable
	}
	foot := make([]byte, zstdSeekFooter)
	if _, err := r.ReadAt(foot, size-zstdSeekFooter); err != nil {
		return nil, fmt.Errorf("%s: reading the zstd seek table footer: %w", name, err)
	}
	if binary.LittleEndian.Uint32(foot[5:]) != zstdSeekableMagic {
		return nil, errNotIndexable
	}
	return parseSeekTable(r, size, foot, name)
}

func parseSeekTable(r io.ReaderAt, size int64, foot []byte, name string) ([]block, error) {
	footOff := size - zstdSeekFooter
	frames := int64(binary.LittleEndian.Uint32(foot))
	desc := foot[4]
	if desc&0x7F != 0 {
		return nil, formats.Corruptf(name, "zstd seek table", footOff, "reserved descriptor bits set (%#x)", desc)
	}
	entryBytes := int64(8)
	if desc&0x80 != 0 {
		entryBytes = 12
	}
	if frames > maxBlocks {
		return nil, formats.Limitf(name, "zstd seek table", footOff, "%d frames (the limit is %d)", frames, maxBlocks)
	}
	tableBytes := frames*entryBytes + zstdSeekFooter
	start := size - 8 - tableBytes
	if start < 0 {
		return nil, formats.Corruptf(name, "zstd seek table", footOff, "%d frames do not fit in the file", frames)
	}
	table := make([]byte, 8+tableBytes)
	if _, err := r.ReadAt(table, start); err != nil {
		return nil, fmt.Errorf("%s: reading the zstd seek table at offset %d: %w", name, start, err)
	}
	if binary.LittleEndian.Uint32(table) != zstdSeekTableMagic || int64(binary.LittleEndian.Uint32(table[4:])) != tableBytes {
		return nil, formats.Corruptf(name, "zstd seek table", start, "skippable frame header does not match the footer")
	}
	blocks := make([]block, 0, frames)
	var fileOff, virtOff int64
	for i := int64(0); i < frames; i++ {
		e := table[8+i*entryBytes:]
		c, d := int64(binary.LittleEndian.Uint32(e)), int64(binary.LittleEndian.Uint32(e[4:]))
		if c == 0 || fileOff+c > start {
			return nil, formats.Corruptf(name, "zstd seek table", start+8+i*entryBytes, "frame %d: %d compressed bytes at offset %d past the table", i, c, fileOff)
		}
		blocks = append(blocks, block{fileOff: fileOff, fileBytes: c, virtOff: virtOff, virtBytes: d})
		fileOff += c
		virtOff += d
	}
	if fileOff != start {
		return nil, formats.Corruptf(name, "zstd seek table", start, "frames end at %d, the table starts at %d", fileOff, start)
	}
	return blocks, nil
}

// zstdWalk indexes the frames by their headers and block headers. A frame
// without a content size, or one decompressing to more than
// maxFrameBytes, makes the file errNotIndexable.
func zstdWalk(r io.ReaderAt, size int64, name string, maxFrameBytes int64) ([]block, error) {
	var blocks []block
	var off, virtOff int64
	for off < size {
		var word [8]byte
		if _, err := r.ReadAt(word[:], off); err != nil && !(err == io.EOF && size-off >= 8) {
			if size-off < 8 {
				return nil, formats.Corruptf(name, "zstd frame", off, "truncated frame header")
			}
			return nil, fmt.Errorf("%s: reading a zstd frame at offset %d: %w", name, off, err)
		}
		magic := binary.LittleEndian.Uint32(word[:])
		if magic&zstdSkippableMask == zstdSkippableMagic {
			off += 8 + int64(binary.LittleEndian.Uint32(word[4:]))
			continue
		}
		if magic != zstdFrameMagic {
			return nil, formats.Corruptf(name, "zstd frame", off, "magic %#08x", magic)
		}
		frameBytes, content, err := zstdFrame(r, off, size, name, maxFrameBytes)
		if err != nil {
			return nil, err
		}
		if len(blocks) >= maxBlocks {
			return nil, errNotIndexable
		}
		blocks = append(blocks, block{fileOff: off, fileBytes: frameBytes, virtOff: virtOff, virtBytes: content})
		off += frameBytes
		virtOff += content
	}
	if off != size {
		return nil, formats.Corruptf(name, "zstd frame", size, "a skippable frame runs past the end of the file")
	}
	return blocks, nil
}

// zstdFrame measures the frame at off: its bytes and its content size;
// errNotIndexable when the header does not say the content size or it is
// past maxContent.
func zstdFrame(r io.ReaderAt, off, size int64, name string, maxContent int64) (int64, int64, error) {
	var hdr [18]byte // magic, descriptor, window, dictionary ID (4), content size (8)
	n, err := r.ReadAt(hdr[:], off)
	if n < 6 {
		return 0, 0, formats.Corruptf(name, "zstd frame header", off, "truncated (%v)", err)
	}
	desc := hdr[4]
	if desc&0x08 != 0 {
		return 0, 0, formats.Corruptf(name, "zstd frame header", off, "reserved bit set")
	}
	single := desc&0x20 != 0
	pos := 5
	if !single {
		pos++
	}
	pos += []int{0, 1, 2, 4}[desc&3]
	fcsBytes := []int{0, 2, 4, 8}[desc>>6]
	if fcsBytes == 0 && single {
		fcsBytes = 1
	}
	if pos+fcsBytes > n {
		return 0, 0, formats.Corruptf(name, "zstd frame header", off, "truncated")
	}
	content := int64(-1)
	if fcsBytes > 0 {
		var v uint64
		for i := fcsBytes - 1; i >= 0; i-- {
			v = v<<8 | uint64(hdr[pos+i])
		}
		if fcsBytes == 2 {
			v += 256
		}
		if v > uint64(formats.DefaultMaxVirtualSize) {
			return 0, 0, formats.Limitf(name, "zstd frame header", off, "content size %d", v)
		}
		content = int64(v)
	}
	if content < 0 || content > maxContent {
		return 0, 0, errNotIndexable
	}
	pos += fcsBytes
	at := off + int64(pos)
	for {
		var bh [3]byte
		if at+3 > size {
			return 0, 0, formats.Corruptf(name, "zstd block header", at, "past the end of the file")
		}
		if _, err := r.ReadAt(bh[:], at); err != nil {
			return 0, 0, fmt.Errorf("%s: reading a zstd block header at offset %d: %w", name, at, err)
		}
		v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		last, kind, bsize := v&1 != 0, (v>>1)&3, int64(v>>3)
		switch kind {
		case 1: // RLE: one byte stored
			bsize = 1
		case 3:
			return 0, 0, formats.Corruptf(name, "zstd block header", at, "reserved block type")
		}
		if bsize > zstdMaxBlockBytes {
			return 0, 0, formats.Corruptf(name, "zstd block header", at, "block of %d bytes", bsize)
		}
		at += 3 + bsize
		if at > size {
			return 0, 0, formats.Corruptf(name, "zstd block", at, "past the end of the file")
		}
		if last {
			break
		}
	}
	if desc&0x04 != 0 {
		at += 4
	}
	if at > size {
		return 0, 0, formats.Corruptf(name, "zstd frame", at, "checksum past the end of the file")
	}
	return at - off, content, nil
}
