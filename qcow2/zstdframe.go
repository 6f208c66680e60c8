package qcow2

import (
	"encoding/binary"
	"fmt"
)

// A zstd compressed cluster is one or more zstd frames (RFC 8878 section
// 3.1) whose content fills the cluster exactly. Its stored length is only
// known to 512-byte precision, and qemu packs compressed clusters end to
// end, so the bytes after the last frame are usually the start of the next
// cluster's frame. zstdFrameLen finds where a frame ends by walking its
// header and block headers, so each frame is decoded whole (DecodeAll,
// straight into the cluster) and the next cluster's bytes are never read as
// part of this one.
//
// Frame layout (all little-endian):
//
//	0  Magic_Number           4 bytes, 0xFD2FB528
//	4  Frame_Header_Descriptor 1 byte: bits 7-6 FCS_Field_Size flag,
//	                          bit 5 Single_Segment, bit 3 reserved (0),
//	                          bit 2 Content_Checksum, bits 1-0 Dictionary_ID flag
//	   Window_Descriptor      1 byte, absent when Single_Segment
//	   Dictionary_ID          0, 1, 2 or 4 bytes
//	   Frame_Content_Size     0, 1 (Single_Segment only), 2, 4 or 8 bytes
//	   blocks                 each a 3-byte header: bit 0 Last_Block,
//	                          bits 2-1 Block_Type (0 raw, 1 RLE, 2 compressed,
//	                          3 reserved), bits 23-3 Block_Size; then
//	                          Block_Size bytes (raw, compressed) or 1 (RLE)
//	   Content_Checksum       4 bytes when the descriptor says so
//
// A skippable frame (magic 0x184D2A50-0x184D2A5F) is the magic, a 4-byte
// Frame_Size and that many bytes.
const (
	zstdMagic          = 0xFD2FB528
	zstdSkippableMagic = 0x184D2A50 // low 4 bits vary
	zstdMaxBlockBytes  = 128 << 10  // Block_Maximum_Size
)

// zstdFrameLen returns the length of the frame at the start of b.
func zstdFrameLen(b []byte) (int, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("zstd frame header cut short (%d bytes)", len(b))
	}
	magic := binary.LittleEndian.Uint32(b)
	if magic&^0xF == zstdSkippableMagic {
		n := 8 + int64(binary.LittleEndian.Uint32(b[4:]))
		if n > int64(len(b)) {
			return 0, fmt.Errorf("zstd skippable frame of %d bytes past the end of the data (%d bytes)", n, len(b))
		}
		return int(n), nil
	}
	if magic != zstdMagic {
		return 0, fmt.Errorf("no zstd frame (magic %#08x)", magic)
	}
	fhd := b[4]
	if fhd&0x08 != 0 {
		return 0, fmt.Errorf("zstd frame header descriptor %#02x: reserved bit set", fhd)
	}
	single := fhd&0x20 != 0
	pos := 5
	if !single {
		pos++ // Window_Descriptor
	}
	pos += [4]int{0, 1, 2, 4}[fhd&3]
	fcs := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	pos += fcs
	for {
		if pos+3 > len(b) {
			return 0, fmt.Errorf("zstd block header at %d past the end of the data (%d bytes)", pos, len(b))
		}
		h := uint32(b[pos]) | uint32(b[pos+1])<<8 | uint32(b[pos+2])<<16
		pos += 3
		size := int(h >> 3)
		switch (h >> 1) & 3 {
		case 1: // RLE: one byte repeated Block_Size times
			size = 1
		case 3:
			return 0, fmt.Errorf("zstd block at %d: reserved block type", pos-3)
		}
		if size > zstdMaxBlockBytes {
			return 0, fmt.Errorf("zstd block at %d: %d bytes, more than the format's %d", pos-3, size, zstdMaxBlockBytes)
		}
		pos += size
		if pos > len(b) {
			return 0, fmt.Errorf("zstd block at %d: %d bytes past the end of the data (%d bytes)", pos-3-size, size, len(b))
		}
		if h&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		pos += 4
		if pos > len(b) {
			return 0, fmt.Errorf("zstd content checksum past the end of the data (%d bytes)", len(b))
		}
	}
	return pos, nil
}
