package compressed

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// The xz container (xz-file-format-1.2.0, sections 2 and 4), read from its
// end so that every block is found without decompressing anything:
//
//	stream      header (12) | block... | index | footer (12)
//	header      0  magic FD 37 7A 58 5A 00
//	            6  stream flags (2): 00, check type (low 4 bits)
//	            8  CRC32 of the flags
//	footer      0  CRC32 of bytes 4..9
//	            4  backward size (LE uint32): index bytes / 4 - 1
//	            8  stream flags (equal to the header's)
//	            10 magic 'Y' 'Z'
//	index       0  indicator 00
//	            1  record count (multibyte integer)
//	               records: unpadded size, uncompressed size (multibyte integers)
//	               padding to 4 bytes, CRC32 of everything before it
//	block       header, compressed data, padding to 4, check (0..64 bytes);
//	            its "unpadded size" counts all but the padding
//
// Streams may follow one another, separated by stream padding (a multiple
// of four zero bytes). Every block decodes on its own, so a file of many
// blocks reads in place: the block holding an offset is found in the
// index and only it is decompressed.

const (
	xzHeaderBytes = 12
	xzFooterBytes = 12
	// xzMaxIndexBytes bounds one stream's index read whole (a record is at
	// least 2 bytes: 8 Mi blocks).
	xzMaxIndexBytes = 16 << 20
	// maxBlocks bounds the blocks of a file indexed in place.
	maxBlocks = 1 << 22
)

var (
	xzHeaderMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	xzFooterMagic = []byte{'Y', 'Z'}
)

// block is one independently decodable piece of a compressed file.
type block struct {
	fileOff    int64 // where its compressed bytes start
	fileBytes  int64 // compressed bytes (xz: unpadded size)
	virtOff    int64 // where its bytes start in the decompressed stream
	virtBytes  int64 // decompressed bytes
	streamFlag [2]byte
}

// xzCheckBytes is the size of a block's check for a check type.
func xzCheckBytes(check byte) int64 {
	switch {
	case check == 0:
		return 0
	case check <= 3:
		return 4
	case check <= 6:
		return 8
	case check <= 9:
		return 16
	case check <= 12:
		return 32
	}
	return 64
}

// readVarint decodes an xz multibyte integer (at most 9 bytes, 63 bits)
// from b, returning it and the bytes it took.
func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 9; i++ {
		v |= uint64(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				return 0, 0, fmt.Errorf("multibyte integer not in its shortest form")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("multibyte integer runs past its end")
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func pad4(n int64) int64 { return (n + 3) &^ 3 }

// xzBlocks indexes the xz file r of size bytes: every block of every
// stream, in file order, with its decompressed offset. name is for errors.
func xzBlocks(r io.ReaderAt, size int64, name string) ([]block, error) {
	var streams [][]block
	total := 0
	end := size
	for end > 0 {
		var err error
		if end, err = skipStreamPadding(r, end, name); err != nil {
			return nil, err
		}
		if end == 0 {
			break
		}
		blocks, start, err := xzStream(r, end, name)
		if err != nil {
			return nil, err
		}
		total += len(blocks)
		if total > maxBlocks {
			return nil, formats.Limitf(name, "xz index", start, "more than %d blocks", maxBlocks)
		}
		streams = append(streams, blocks)
		end = start
	}
	if len(streams) == 0 {
		return nil, formats.Corruptf(name, "xz stream", 0, "no stream")
	}
	// Streams were found last first; number the decompressed offsets.
	out := make([]block, 0, total)
	var virt int64
	for i := len(streams) - 1; i >= 0; i-- {
		for _, b := range streams[i] {
			if b.virtBytes > formats.DefaultMaxVirtualSize-virt {
				return nil, formats.Limitf(name, "xz index", b.fileOff, "decompressed size past %d bytes", int64(formats.DefaultMaxVirtualSize))
			}
			b.virtOff = virt
			virt += b.virtBytes
			out = append(out, b)
		}
	}
	return out, nil
}

// skipStreamPadding moves end back over zero stream padding (4-byte units).
func skipStreamPadding(r io.ReaderAt, end int64, name string) (int64, error) {
	var word [4]byte
	for end >= 4 {
		if _, err := r.ReadAt(word[:], end-4); err != nil {
			return 0, fmt.Errorf("%s: reading xz stream padding at offset %d: %w", name, end-4, err)
		}
		if word != [4]byte{} {
			break
		}
		end -= 4
	}
	if end%4 != 0 {
		return 0, formats.Corruptf(name, "xz stream", end, "file size is not a multiple of 4")
	}
	return end, nil
}

// xzStream indexes the stream that ends at end; it returns the stream's
// blocks (virtOff unset) and where the stream starts.
func xzStream(r io.ReaderAt, end int64, name string) ([]block, int64, error) {
	if end < xzHeaderBytes+xzFooterBytes+8 {
		return nil, 0, formats.Corruptf(name, "xz stream footer", end, "stream too short")
	}
	footOff := end - xzFooterBytes
	foot := make([]byte, xzFooterBytes)
	if _, err := r.ReadAt(foot, footOff); err != nil {
		return nil, 0, fmt.Errorf("%s: reading the xz stream footer at offset %d: %w", name, footOff, err)
	}
	if !bytes.Equal(foot[10:], xzFooterMagic) || crc32.ChecksumIEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot) {
		return nil, 0, formats.Corruptf(name, "xz stream footer", footOff, "bad magic or CRC32")
	}
	flags := [2]byte{foot[8], foot[9]}
	if flags[0] != 0 || flags[1]&0xF0 != 0 {
		return nil, 0, formats.Corruptf(name, "xz stream footer", footOff, "reserved stream flags set")
	}
	indexBytes := (int64(binary.LittleEndian.Uint32(foot[4:8])) + 1) * 4
	if indexBytes > xzMaxIndexBytes {
		return nil, 0, formats.Limitf(name, "xz index", footOff, "index of %d bytes (the limit is %d)", indexBytes, xzMaxIndexBytes)
	}
	indexOff := footOff - indexBytes
	if indexOff < xzHeaderBytes {
		return nil, 0, formats.Corruptf(name, "xz index", footOff, "backward size %d points before the stream", indexBytes)
	}
	index := make([]byte, indexBytes)
	if _, err := r.ReadAt(index, indexOff); err != nil {
		return nil, 0, fmt.Errorf("%s: reading the xz index at offset %d: %w", name, indexOff, err)
	}
	blocks, blocksBytes, err := parseXzIndex(index, xzCheckBytes(flags[1]), name, indexOff)
	if err != nil {
		return nil, 0, err
	}
	start := indexOff - blocksBytes - xzHeaderBytes
	if blocksBytes > indexOff || start < 0 {
		return nil, 0, formats.Corruptf(name, "xz index", indexOff, "blocks of %d bytes do not fit before the index", blocksBytes)
	}
	head := make([]byte, xzHeaderBytes)
	if _, err := r.ReadAt(head, start); err != nil {
		return nil, 0, fmt.Errorf("%s: reading the xz stream header at offset %d: %w", name, start, err)
	}
	if !bytes.Equal(head[:6], xzHeaderMagic) || crc32.ChecksumIEEE(head[6:8]) != binary.LittleEndian.Uint32(head[8:]) ||
		head[6] != flags[0] || head[7] != flags[1] {
		return nil, 0, formats.Corruptf(name, "xz stream header", start, "bad magic or CRC32, or flags that differ from the footer's")
	}
	off := start + xzHeaderBytes
	for i := range blocks {
		blocks[i].fileOff = off
		blocks[i].streamFlag = flags
		off += pad4(blocks[i].fileBytes)
	}
	return blocks, start, nil
}

// parseXzIndex parses an index (located at indexOff, for errors): its
// records as blocks, and the bytes the blocks take (padding included).
// checkBytes is the stream's check size, part of every unpadded size.
func parseXzIndex(index []byte, checkBytes int64, name string, indexOff int64) ([]block, int64, error) {
	bad := func(at int, msg string, args ...any) error {
		return formats.Corruptf(name, "xz index", indexOff+int64(at), msg, args...)
	}
	if len(index) < 8 || len(index)%4 != 0 {
		return nil, 0, bad(0, "%d bytes, not a multiple of 4 of at least 8", len(index))
	}
	body := index[:len(index)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(index[len(index)-4:]) {
		return nil, 0, bad(len(body), "CRC32 mismatch")
	}
	if body[0] != 0 {
		return nil, 0, bad(0, "indicator %#x, want 0", body[0])
	}
	count, n, err := readVarint(body[1:])
	if err != nil {
		return nil, 0, bad(1, "record count: %v", err)
	}
	pos := 1 + n
	if count > uint64(len(body)-pos)/2 {
		return nil, 0, bad(1, "%d records cannot fit in %d bytes", count, len(body))
	}
	blocks := make([]block, 0, count)
	var blocksBytes int64
	const maxVarint = 1 << 62
	for i := uint64(0); i < count; i++ {
		unpadded, n, err := readVarint(body[pos:])
		if err != nil {
			return nil, 0, bad(pos, "record %d: unpadded size: %v", i, err)
		}
		at := pos
		pos += n
		uncompressed, n, err := readVarint(body[pos:])
		if err != nil {
			return nil, 0, bad(pos, "record %d: uncompressed size: %v", i, err)
		}
		pos += n
		// A block is at least a header (8 bytes), one byte of data and
		// its check.
		if unpadded < uint64(5+checkBytes) || unpadded > maxVarint || uncompressed > maxVarint {
			return nil, 0, bad(at, "record %d: unpadded size %d, uncompressed size %d", i, unpadded, uncompressed)
		}
		if blocksBytes += pad4(int64(unpadded)); blocksBytes > maxVarint {
			return nil, 0, bad(at, "blocks past %d bytes", int64(maxVarint))
		}
		blocks = append(blocks, block{fileBytes: int64(unpadded), virtBytes: int64(uncompressed)})
	}
	for ; pos%4 != 0; pos++ {
		if pos >= len(body) || body[pos] != 0 {
			return nil, 0, bad(pos, "index padding is not zeros")
		}
	}
	if pos != len(body) {
		return nil, 0, bad(pos, "%d bytes after the records", len(body)-pos)
	}
	return blocks, blocksBytes, nil
}

// xzBlockStream wraps one block's bytes (as stored, padding and check
// included) into a complete single-block xz stream, so that a stock
// decoder decodes it and verifies its check and sizes.
func xzBlockStream(b block, stored []byte) []byte {
	r, err := xzBlockReader(b, bytes.NewReader(stored), 0)
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(r)
	return out
}

// xzBlockReader is xzBlockStream reading the block from src at fileOff
// (b.fileOff is ignored): only the block header is copied (its dictionary
// size shrunk, shrinkDict); the compressed data streams from src.
func xzBlockReader(b block, src io.ReaderAt, fileOff int64) (io.Reader, error) {
	stored := pad4(b.fileBytes)
	var size [1]byte
	if _, err := src.ReadAt(size[:], fileOff); err != nil {
		return nil, err
	}
	hdrBytes := min(int64(size[0])+1, 256) * 4
	if size[0] == 0 || hdrBytes > stored {
		return nil, fmt.Errorf("block header size %d does not fit the block's %d bytes", hdrBytes, stored)
	}
	prefix := make([]byte, 0, xzHeaderBytes+hdrBytes)
	prefix = append(prefix, xzHeaderMagic...)
	prefix = append(prefix, b.streamFlag[:]...)
	prefix = binary.LittleEndian.AppendUint32(prefix, crc32.ChecksumIEEE(b.streamFlag[:]))
	hdr := prefix[len(prefix) : len(prefix)+int(hdrBytes)]
	if n, err := src.ReadAt(hdr, fileOff); int64(n) < hdrBytes {
		return nil, fmt.Errorf("reading the block header: %w", err)
	}
	shrinkDict(hdr, b.virtBytes)
	prefix = prefix[:len(prefix)+int(hdrBytes)]
	index := []byte{0, 1}
	index = appendVarint(index, uint64(b.fileBytes))
	index = appendVarint(index, uint64(b.virtBytes))
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	index = binary.LittleEndian.AppendUint32(index, crc32.ChecksumIEEE(index))
	foot := make([]byte, 0, xzFooterBytes)
	foot = binary.LittleEndian.AppendUint32(foot, 0) // CRC32, set below
	foot = binary.LittleEndian.AppendUint32(foot, uint32(len(index)/4-1))
	foot = append(foot, b.streamFlag[:]...)
	foot = append(foot, xzFooterMagic...)
	binary.LittleEndian.PutUint32(foot, crc32.ChecksumIEEE(foot[4:10]))
	return io.MultiReader(bytes.NewReader(prefix), io.NewSectionReader(src, fileOff+hdrBytes, stored-hdrBytes),
		bytes.NewReader(append(index, foot...))), nil
}

// xzLZMA2Filter is the LZMA2 filter's ID in a block header.
const xzLZMA2Filter = 0x21

// xzDictBytes is the dictionary size an LZMA2 dictionary code stands for.
func xzDictBytes(code byte) int64 {
	if code >= 40 {
		return 1<<32 - 1
	}
	return int64(2|code&1) << (code/2 + 11)
}

// shrinkDict lowers the dictionary size that the block header at the
// start of stored declares to the smallest that holds the block's
// virtBytes (a block never refers to bytes before it, so the decoder
// needs no more), and fixes the header's CRC32; a decoder then allocates
// a dictionary the size of the block, not the size the compressor chose
// for a whole stream. Headers it does not understand are left alone.
func shrinkDict(stored []byte, virtBytes int64) {
	if len(stored) < 8 || stored[0] == 0 {
		return
	}
	hdrBytes := (int(stored[0]) + 1) * 4
	if hdrBytes > len(stored) || stored[1]&0x3C != 0 || stored[1]&3 != 0 {
		return // reserved flags, or more than one filter
	}
	pos := 2
	for _, present := range []bool{stored[1]&0x40 != 0, stored[1]&0x80 != 0} {
		if present {
			_, n, err := readVarint(stored[pos : hdrBytes-4])
			if err != nil {
				return
			}
			pos += n
		}
	}
	if pos+3 > hdrBytes-4 || stored[pos] != xzLZMA2Filter || stored[pos+1] != 1 {
		return
	}
	if binary.LittleEndian.Uint32(stored[hdrBytes-4:]) != crc32.ChecksumIEEE(stored[:hdrBytes-4]) {
		return // the decoder will say so
	}
	code := byte(0)
	for code < 40 && xzDictBytes(code) < virtBytes {
		code++
	}
	if code >= stored[pos+2] {
		return
	}
	stored[pos+2] = code
	binary.LittleEndian.PutUint32(stored[hdrBytes-4:], crc32.ChecksumIEEE(stored[:hdrBytes-4]))
}
