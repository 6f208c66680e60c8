package vhd

import (
	"encoding/binary"
	"unicode/utf16"
)

// Dynamic disk header constants (§ "Dynamic Disk Header Format").
const (
	headerSize     = 1024
	headerCookie   = "cxsparse"
	headerVersion  = 0x00010000
	batUnused      = 0xFFFFFFFF // BAT entry of a block not in the file
	numLocators    = 8
	locatorOff     = 576 // offset of the first parent locator entry
	locatorSize    = 24
	parentNameOff  = 64
	parentNameSize = 512

	defaultBlockSize = 2 << 20
	// maxBlockSize bounds the block size vdisk accepts (the specification
	// only requires a power of two; Microsoft tested 512 KiB and 2 MiB).
	maxBlockSize = 256 << 20
)

// Parent locator platform codes.
const (
	platNone = 0
	platWi2r = 0x57693272 // "Wi2r": relative Windows path, 8-bit (deprecated)
	platWi2k = 0x5769326B // "Wi2k": absolute Windows path, 8-bit (deprecated)
	platW2ru = 0x57327275 // "W2ru": relative Windows path, UTF-16LE
	platW2ku = 0x57326B75 // "W2ku": absolute Windows path, UTF-16LE
	platMac  = 0x4D616320 // "Mac ": Mac OS alias blob (not a path)
	platMacX = 0x4D616358 // "MacX": file:// URL, UTF-8
)

// locator is one 24-byte parent locator entry of the dynamic header.
type locator struct {
	PlatformCode uint32 // 0: platform code (platW2ru, ...); 0 when unused
	DataSpace    uint32 // 4: space reserved for the data (sectors per the spec; bytes in practice)
	DataLength   uint32 // 8: length of the locator data in bytes
	Reserved     uint32 // 12: zero
	DataOffset   uint64 // 16: absolute file offset of the locator data
}

// dynHeader is the 1024-byte dynamic disk header, big-endian, at the
// footer's data offset (512 in practice).
type dynHeader struct {
	Cookie          [8]byte              // 0: "cxsparse"
	DataOffset      uint64               // 8: unused, all-ones
	TableOffset     uint64               // 16: absolute byte offset of the BAT
	HeaderVersion   uint32               // 24: 0x00010000
	MaxTableEntries uint32               // 28: BAT entries
	BlockSize       uint32               // 32: data bytes per block (power of two)
	Checksum        uint32               // 36: one's complement of the byte sum
	ParentUniqueID  [16]byte             // 40: parent footer UUID (differencing)
	ParentTimestamp uint32               // 56: parent modification time (VHD epoch)
	Reserved1       uint32               // 60: zero
	ParentName      [parentNameSize]byte // 64: parent file name, UTF-16BE
	Locators        [numLocators]locator // 576: parent locators, 8 × 24 bytes
	// 768..1023 reserved, zero
}

func decodeHeader(b []byte) dynHeader {
	var h dynHeader
	be := binary.BigEndian
	copy(h.Cookie[:], b[0:8])
	h.DataOffset = be.Uint64(b[8:])
	h.TableOffset = be.Uint64(b[16:])
	h.HeaderVersion = be.Uint32(b[24:])
	h.MaxTableEntries = be.Uint32(b[28:])
	h.BlockSize = be.Uint32(b[32:])
	h.Checksum = be.Uint32(b[36:])
	copy(h.ParentUniqueID[:], b[40:56])
	h.ParentTimestamp = be.Uint32(b[56:])
	h.Reserved1 = be.Uint32(b[60:])
	copy(h.ParentName[:], b[parentNameOff:parentNameOff+parentNameSize])
	for i := range h.Locators {
		e := b[locatorOff+i*locatorSize:]
		h.Locators[i] = locator{
			PlatformCode: be.Uint32(e[0:]),
			DataSpace:    be.Uint32(e[4:]),
			DataLength:   be.Uint32(e[8:]),
			Reserved:     be.Uint32(e[12:]),
			DataOffset:   be.Uint64(e[16:]),
		}
	}
	return h
}

// encode returns the 1024-byte header with its checksum computed (and stored
// in h).
func (h *dynHeader) encode() []byte {
	b := make([]byte, headerSize)
	be := binary.BigEndian
	copy(b[0:8], h.Cookie[:])
	be.PutUint64(b[8:], h.DataOffset)
	be.PutUint64(b[16:], h.TableOffset)
	be.PutUint32(b[24:], h.HeaderVersion)
	be.PutUint32(b[28:], h.MaxTableEntries)
	be.PutUint32(b[32:], h.BlockSize)
	copy(b[40:56], h.ParentUniqueID[:])
	be.PutUint32(b[56:], h.ParentTimestamp)
	be.PutUint32(b[60:], h.Reserved1)
	copy(b[parentNameOff:], h.ParentName[:])
	for i, l := range h.Locators {
		e := b[locatorOff+i*locatorSize:]
		be.PutUint32(e[0:], l.PlatformCode)
		be.PutUint32(e[4:], l.DataSpace)
		be.PutUint32(e[8:], l.DataLength)
		be.PutUint32(e[12:], l.Reserved)
		be.PutUint64(e[16:], l.DataOffset)
	}
	h.Checksum = checksum(b, headerSumOff)
	be.PutUint32(b[headerSumOff:], h.Checksum)
	return b
}

// parentName decodes the header's UTF-16BE parent name (up to the first NUL).
func (h *dynHeader) parentName() string {
	return decodeUTF16(h.ParentName[:], binary.BigEndian)
}

// setParentName stores name as UTF-16BE, truncated to the field.
func (h *dynHeader) setParentName(name string) {
	h.ParentName = [parentNameSize]byte{}
	b := encodeUTF16(name, binary.BigEndian)
	copy(h.ParentName[:], b[:min(len(b), parentNameSize)&^1])
}

// decodeUTF16 decodes b as UTF-16 in byte order bo, stopping at a NUL.
// Unpaired surrogates become U+FFFD.
func decodeUTF16(b []byte, bo binary.ByteOrder) string {
	units := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u := bo.Uint16(b[i:])
		if u == 0 {
			break
		}
		units = append(units, u)
	}
	return string(utf16.Decode(units))
}

func encodeUTF16(s string, bo binary.ByteOrder) []byte {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(units))
	for i, u := range units {
		bo.PutUint16(b[2*i:], u)
	}
	return b
}

// bitmapBytes is the size of the sector bitmap in front of each block: one
// bit per sector, rounded up to whole sectors.
func bitmapBytes(blockSize int64) int64 {
	bits := blockSize / sectorSize
	return ((bits+7)/8 + sectorSize - 1) / sectorSize * sectorSize
}
