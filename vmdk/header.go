package vmdk

import (
	"encoding/binary"
)

// Sizes and magic numbers of the hosted sparse extent format.
const (
	sectorSize     = 512
	sparseMagic    = 0x564D444B // "KDMV" little-endian
	cowdMagic      = 0x44574F43 // "COWD": ESX vmfsSparse, refused
	headerSize     = 512
	gdAtEnd        = 0xFFFFFFFFFFFFFFFF // gdOffset of a stream whose GD follows the data
	defaultGTEs    = 512                // numGTEsPerGT
	gteBytes       = 4
	defaultGrain   = 128 // sectors (64 KiB)
	maxGrainSector = 0x200000
	maxGDEntries   = 32 << 20
	maxDescBytes   = 1<<20 - 1
	zeroedGrainGTE = 1
)

// Header flag bits.
const (
	flagNewlineTest = 1 << 0  // the newline-check bytes are valid
	flagRedundantGD = 1 << 1  // a redundant GD/GT copy is kept at rgdOffset
	flagZeroedGrain = 1 << 2  // GTE 1 means a zeroed grain
	flagCompressed  = 1 << 16 // grains are compressed
	flagMarkers     = 1 << 17 // grains and metadata carry markers
)

// compressDeflate is compressAlgorithm 1: zlib (RFC 1950) streams.
const compressDeflate = 1

// newlineCheck is the byte sequence at offset 73 that detects text-mode
// transfers ("\n \r\n").
var newlineCheck = [4]byte{'\n', ' ', '\r', '\n'}

// sparseHeader is the 512-byte hosted sparse extent header (SparseExtentHeader),
// little-endian; all offsets and sizes are in 512-byte sectors.
type sparseHeader struct {
	Magic            uint32  // 0: "KDMV"
	Version          uint32  // 4: 1, 2 (zeroed grains) or 3 (stream / CBT)
	Flags            uint32  // 8: flag* bits
	Capacity         uint64  // 12: extent size in sectors
	GrainSize        uint64  // 20: sectors per grain, a power of two
	DescriptorOffset uint64  // 28: embedded descriptor, 0 if none
	DescriptorSize   uint64  // 36: embedded descriptor length
	NumGTEsPerGT     uint32  // 44: entries per grain table (512)
	RGDOffset        uint64  // 48: redundant grain directory
	GDOffset         uint64  // 56: grain directory, or gdAtEnd
	OverHead         uint64  // 64: sectors of metadata before the first grain
	UncleanShutdown  uint8   // 72: nonzero while open for writing
	NewlineCheck     [4]byte // 73: "\n \r\n"
	CompressAlgo     uint16  // 77: 0 none, 1 deflate
	// 79..511: zero padding
}

func decodeHeader(b []byte) sparseHeader {
	le := binary.LittleEndian
	h := sparseHeader{
		Magic:            le.Uint32(b[0:]),
		Version:          le.Uint32(b[4:]),
		Flags:            le.Uint32(b[8:]),
		Capacity:         le.Uint64(b[12:]),
		GrainSize:        le.Uint64(b[20:]),
		DescriptorOffset: le.Uint64(b[28:]),
		DescriptorSize:   le.Uint64(b[36:]),
		NumGTEsPerGT:     le.Uint32(b[44:]),
		RGDOffset:        le.Uint64(b[48:]),
		GDOffset:         le.Uint64(b[56:]),
		OverHead:         le.Uint64(b[64:]),
		UncleanShutdown:  b[72],
		CompressAlgo:     le.Uint16(b[77:]),
	}
	copy(h.NewlineCheck[:], b[73:77])
	return h
}

func (h *sparseHeader) encode() []byte {
	b := make([]byte, headerSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.Magic)
	le.PutUint32(b[4:], h.Version)
	le.PutUint32(b[8:], h.Flags)
	le.PutUint64(b[12:], h.Capacity)
	le.PutUint64(b[20:], h.GrainSize)
	le.PutUint64(b[28:], h.DescriptorOffset)
	le.PutUint64(b[36:], h.DescriptorSize)
	le.PutUint32(b[44:], h.NumGTEsPerGT)
	le.PutUint64(b[48:], h.RGDOffset)
	le.PutUint64(b[56:], h.GDOffset)
	le.PutUint64(b[64:], h.OverHead)
	b[72] = h.UncleanShutdown
	copy(b[73:77], h.NewlineCheck[:])
	le.PutUint16(b[77:], h.CompressAlgo)
	return b
}

// Marker types of a streamOptimized extent (the u32 at offset 12 of a
// metadata marker, whose size field is 0).
const (
	markerEOS    = 0 // end of stream
	markerGT     = 1 // a grain table follows
	markerGD     = 2 // the grain directory follows
	markerFooter = 3 // the footer (a header copy) follows
)

// grainMarkerSize is the length of a grain marker's fixed part: the grain's
// first sector (u64) and the compressed byte count (u32); data follows.
const grainMarkerSize = 12

// marker is a 512-byte stream marker: Value is the grain's LBA (grain
// markers) or the count of metadata sectors that follow (metadata markers);
// Size is the compressed byte count of a grain, 0 for metadata markers;
// Type (only for Size == 0) is one of marker*.
type marker struct {
	Value uint64 // 0
	Size  uint32 // 8
	Type  uint32 // 12 (metadata markers only); 16..511 zero
}

func decodeMarker(b []byte) marker {
	le := binary.LittleEndian
	m := marker{Value: le.Uint64(b[0:]), Size: le.Uint32(b[8:])}
	if m.Size == 0 {
		m.Type = le.Uint32(b[12:])
	}
	return m
}

// encodeMetaMarker returns a 512-byte metadata marker.
func encodeMetaMarker(sectors uint64, typ uint32) []byte {
	b := make([]byte, sectorSize)
	binary.LittleEndian.PutUint64(b[0:], sectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}
