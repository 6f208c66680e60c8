package vdi

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/guid"
)

// On-disk constants (VDICore.h).
const (
	preHeaderBytes = 72         // VDIPREHEADER: text[64], signature, version
	signature      = 0xBEDA107F // VDI_IMAGE_SIGNATURE, at offset 64
	version11      = 0x00010001 // major 1, minor 1 (what everyone writes)
	header0Bytes   = 348        // sizeof(VDIHEADER0)
	header1Bytes   = 384        // sizeof(VDIHEADER1) = 0x180 (qemu)
	header1Plus    = 400        // sizeof(VDIHEADER1PLUS) = 0x190 (VirtualBox)
	maxHeaderBytes = 64 << 10   // sanity bound on cbHeader
	sectorBytes    = 512        // VDI_GEOMETRY_SECTOR_SIZE
	defaultBlock   = 1 << 20    // VDI_IMAGE_DEFAULT_BLOCK_SIZE
	dataAlign      = 1 << 20    // VDI_DATA_ALIGN: VirtualBox aligns map and data to 1 MiB
	minBlockBytes  = 512
	maxBlockBytes  = 256 << 20
	// maxBlocks is qemu's VDI_BLOCKS_IN_IMAGE_MAX: (INT_MAX+1-512)/4.
	maxBlocks = 536870784

	blockFree = 0xFFFFFFFF // VDI_IMAGE_BLOCK_FREE: never allocated
	blockZero = 0xFFFFFFFE // VDI_IMAGE_BLOCK_ZERO: discarded, reads zeros

	flagZeroExpand = 0x0100 // VDI_IMAGE_FLAGS_ZERO_EXPAND (the only flag defined)

	bannerVBox = "<<< Oracle VM VirtualBox Disk Image >>>\n"
)

// Image types (VDIIMAGETYPE).
const (
	typeNormal = 1 // dynamic
	typeFixed  = 2 // static, preallocated
	typeUndo   = 3
	typeDiff   = 4 // differencing
)

func typeName(t uint32) string {
	switch t {
	case typeNormal:
		return "dynamic"
	case typeFixed:
		return "static"
	case typeUndo:
		return "undo"
	case typeDiff:
		return "differencing"
	}
	return fmt.Sprintf("unknown (%d)", t)
}

// isAllocated reports whether a block map entry points into the data area.
func isAllocated(entry uint32) bool { return entry < blockZero }

// geometry is VDIDISKGEOMETRY (16 bytes).
type geometry struct {
	Cylinders   uint32 // +0
	Heads       uint32 // +4
	Sectors     uint32 // +8
	SectorBytes uint32 // +12, always 512
}

// uuid is an RTUUID as stored: Microsoft layout (first three groups
// little-endian).
type uuid [16]byte

func (u uuid) isNull() bool { return u == uuid{} }

// String renders the UUID in the usual text form.
func (u uuid) String() string { return guid.FromMixed(u[:]).String() }

// rfc returns the bytes in RFC 4122 (big-endian) order.
func (u uuid) rfc() [16]byte { return guid.FromMixed(u[:]) }

// newUUID returns a random (version 4) UUID in the on-disk layout.
func newUUID() (uuid, error) {
	g, err := guid.New()
	return uuid(g.Mixed()), err
}

// header is the pre-header and header, whatever the version, with the
// offsets of version 1.x. Offsets in the comments are absolute file offsets
// for version 1.x; version 0 lacks HeaderBytes, BlocksOff, DataOff, Unused,
// BlockExtraBytes, UUIDParentModify and LCHS (its fields follow in the same
// order from offset 72).
type header struct {
	Text             [64]byte  // 0: banner, for eyes only
	Signature        uint32    // 64: 0xBEDA107F
	Version          uint32    // 68: major<<16 | minor
	HeaderBytes      uint32    // 72: cbHeader, 384 or 400
	Type             uint32    // 76: 1 normal, 2 fixed, 3 undo, 4 diff
	Flags            uint32    // 80: VDI_IMAGE_FLAGS_*
	Comment          [256]byte // 84: UTF-8, NUL terminated
	BlocksOff        uint32    // 340: block map offset
	DataOff          uint32    // 344: data area offset
	Legacy           geometry  // 348: legacy (physical) geometry
	Unused           uint32    // 364: old translation mode
	DiskBytes        uint64    // 368: cbDisk, the virtual size
	BlockBytes       uint32    // 376: cbBlock, a power of 2
	BlockExtraBytes  uint32    // 380: cbBlockExtra, prefix of each block
	Blocks           uint32    // 384: cBlocks, block map entries
	BlocksAllocated  uint32    // 388: cBlocksAllocated
	UUIDCreate       uuid      // 392: this image
	UUIDModify       uuid      // 408: last modification
	UUIDLinkage      uuid      // 424: parent's UUIDCreate (differencing)
	UUIDParentModify uuid      // 440: parent's UUIDModify (differencing)
	LCHS             geometry  // 456: logical geometry, when cbHeader >= 400
}

func (h *header) major() uint32 { return h.Version >> 16 }
func (h *header) minor() uint32 { return h.Version & 0xffff }

// needBytes is how much of the file start decode reads.
const needBytes = preHeaderBytes + header1Plus

// decodeHeader parses the first needBytes of a file (shorter input is
// padded with zeros by the caller's read, and validate refuses it).
func decodeHeader(b []byte) header {
	var buf [needBytes]byte
	copy(buf[:], b)
	le := binary.LittleEndian
	var h header
	copy(h.Text[:], buf[0:64])
	h.Signature = le.Uint32(buf[64:])
	h.Version = le.Uint32(buf[68:])
	if h.major() == 0 {
		decodeV0(&h, buf[preHeaderBytes:])
		return h
	}
	p := buf[preHeaderBytes:]
	h.HeaderBytes = le.Uint32(p[0:])
	h.Type = le.Uint32(p[4:])
	h.Flags = le.Uint32(p[8:])
	copy(h.Comment[:], p[12:268])
	h.BlocksOff = le.Uint32(p[268:])
	h.DataOff = le.Uint32(p[272:])
	h.Legacy = decodeGeometry(p[276:])
	h.Unused = le.Uint32(p[292:])
	h.DiskBytes = le.Uint64(p[296:])
	h.BlockBytes = le.Uint32(p[304:])
	h.BlockExtraBytes = le.Uint32(p[308:])
	h.Blocks = le.Uint32(p[312:])
	h.BlocksAllocated = le.Uint32(p[316:])
	copy(h.UUIDCreate[:], p[320:])
	copy(h.UUIDModify[:], p[336:])
	copy(h.UUIDLinkage[:], p[352:])
	copy(h.UUIDParentModify[:], p[368:])
	if h.HeaderBytes >= header1Plus {
		h.LCHS = decodeGeometry(p[384:])
	}
	return h
}

// decodeV0 reads VDIHEADER0 (p starts at offset 72); the map follows it.
func decodeV0(h *header, p []byte) {
	le := binary.LittleEndian
	h.Type = le.Uint32(p[0:])
	h.Flags = le.Uint32(p[4:])
	copy(h.Comment[:], p[8:264])
	h.Legacy = decodeGeometry(p[264:])
	h.DiskBytes = le.Uint64(p[280:])
	h.BlockBytes = le.Uint32(p[288:])
	h.Blocks = le.Uint32(p[292:])
	h.BlocksAllocated = le.Uint32(p[296:])
	copy(h.UUIDCreate[:], p[300:])
	copy(h.UUIDModify[:], p[316:])
	copy(h.UUIDLinkage[:], p[332:])
	h.HeaderBytes = header0Bytes
	h.BlocksOff = preHeaderBytes + header0Bytes
	h.DataOff = uint32(min(uint64(h.BlocksOff)+4*uint64(h.Blocks), 1<<32-1))
}

func decodeGeometry(b []byte) geometry {
	le := binary.LittleEndian
	return geometry{le.Uint32(b[0:]), le.Uint32(b[4:]), le.Uint32(b[8:]), le.Uint32(b[12:])}
}

func encodeGeometry(b []byte, g geometry) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], g.Cylinders)
	le.PutUint32(b[4:], g.Heads)
	le.PutUint32(b[8:], g.Sectors)
	le.PutUint32(b[12:], g.SectorBytes)
}

// encode renders a version 1.x header (pre-header included), needBytes long.
func (h *header) encode() []byte {
	b := make([]byte, needBytes)
	le := binary.LittleEndian
	copy(b[0:64], h.Text[:])
	le.PutUint32(b[64:], h.Signature)
	le.PutUint32(b[68:], h.Version)
	p := b[preHeaderBytes:]
	le.PutUint32(p[0:], h.HeaderBytes)
	le.PutUint32(p[4:], h.Type)
	le.PutUint32(p[8:], h.Flags)
	copy(p[12:268], h.Comment[:])
	le.PutUint32(p[268:], h.BlocksOff)
	le.PutUint32(p[272:], h.DataOff)
	encodeGeometry(p[276:], h.Legacy)
	le.PutUint32(p[292:], h.Unused)
	le.PutUint64(p[296:], h.DiskBytes)
	le.PutUint32(p[304:], h.BlockBytes)
	le.PutUint32(p[308:], h.BlockExtraBytes)
	le.PutUint32(p[312:], h.Blocks)
	le.PutUint32(p[316:], h.BlocksAllocated)
	copy(p[320:], h.UUIDCreate[:])
	copy(p[336:], h.UUIDModify[:])
	copy(p[352:], h.UUIDLinkage[:])
	copy(p[368:], h.UUIDParentModify[:])
	if h.HeaderBytes >= header1Plus {
		encodeGeometry(p[384:], h.LCHS)
	}
	return b
}

func isPow2(n uint32) bool { return n != 0 && bits.OnesCount32(n) == 1 }

// validate checks the header against what VirtualBox and qemu require,
// with the limits of lim. fileBytes is the image file size.
func (h *header) validate(name string, lim formats.Limits) error {
	corrupt := func(off int64, format string, args ...any) error {
		return formats.Corruptf(name, "VDI header", off, format, args...)
	}
	if h.Signature != signature {
		return corrupt(64, "signature %#08x, want %#08x", h.Signature, signature)
	}
	switch {
	case h.major() == 0:
	case h.major() == 1 && h.minor() <= 1:
		if h.HeaderBytes < header1Bytes || h.HeaderBytes > maxHeaderBytes {
			return corrupt(72, "header size %d is outside %d..%d", h.HeaderBytes, header1Bytes, maxHeaderBytes)
		}
		if h.BlocksOff%sectorBytes != 0 || h.DataOff%sectorBytes != 0 {
			return corrupt(340, "block map offset %d or data offset %d is not a multiple of %d", h.BlocksOff, h.DataOff, sectorBytes)
		}
		if h.BlocksOff < preHeaderBytes+header1Bytes {
			return corrupt(340, "block map offset %d overlaps the header", h.BlocksOff)
		}
	default:
		return formats.Unsupportedf(name, "VDI header version %d.%d (supported: 0.x, 1.0, 1.1)", h.major(), h.minor())
	}
	if h.Type < typeNormal || h.Type > typeDiff {
		return corrupt(76, "image type %d is not 1..4", h.Type)
	}
	if h.Flags&^flagZeroExpand != 0 {
		return formats.Unsupportedf(name, "VDI image flags %#x", h.Flags)
	}
	if h.Legacy.SectorBytes != sectorBytes {
		return corrupt(360, "sector size %d, want %d", h.Legacy.SectorBytes, sectorBytes)
	}
	if !isPow2(h.BlockBytes) || h.BlockBytes < minBlockBytes || h.BlockBytes > maxBlockBytes {
		return corrupt(376, "block size %d is not a power of 2 in %d..%d", h.BlockBytes, minBlockBytes, maxBlockBytes)
	}
	if h.BlockExtraBytes != 0 && (!isPow2(h.BlockExtraBytes) || h.BlockExtraBytes > h.BlockBytes) {
		return corrupt(380, "block extra size %d is not 0 or a power of 2 up to the block size", h.BlockExtraBytes)
	}
	if h.Blocks > maxBlocks {
		return formats.Limitf(name, "VDI header", 384, "%d blocks exceed the maximum %d", h.Blocks, maxBlocks)
	}
	if err := lim.CheckVirtualSize(name, int64(min(h.DiskBytes, 1<<63-1))); err != nil {
		return err
	}
	if h.DiskBytes > uint64(h.Blocks)*uint64(h.BlockBytes) {
		return corrupt(368, "disk size %d exceeds %d blocks of %d bytes", h.DiskBytes, h.Blocks, h.BlockBytes)
	}
	if h.BlocksAllocated > h.Blocks {
		return corrupt(388, "%d allocated blocks exceed the %d blocks", h.BlocksAllocated, h.Blocks)
	}
	if uint64(h.DataOff) < uint64(h.BlocksOff)+4*uint64(h.Blocks) {
		return corrupt(344, "data offset %d overlaps the block map (%d entries at %d)", h.DataOff, h.Blocks, h.BlocksOff)
	}
	return lim.CheckTable(name, "VDI block map", int64(h.BlocksOff), uint64(h.Blocks), 4)
}

// versionString renders the version as "1.1".
func (h *header) versionString() string { return fmt.Sprintf("%d.%d", h.major(), h.minor()) }

// newHeader returns the header VirtualBox writes for a new image of
// diskBytes with 1 MiB blocks.
func newHeader(diskBytes int64, static bool) (header, error) {
	h := header{
		Signature:   signature,
		Version:     version11,
		HeaderBytes: header1Plus,
		Type:        typeNormal,
		Legacy:      geometry{SectorBytes: sectorBytes},
		LCHS:        geometry{SectorBytes: sectorBytes},
		DiskBytes:   uint64(diskBytes),
		BlockBytes:  defaultBlock,
	}
	copy(h.Text[:], bannerVBox)
	if static {
		h.Type = typeFixed
	}
	blocks := (diskBytes + defaultBlock - 1) / defaultBlock
	if blocks > maxBlocks {
		return header{}, fmt.Errorf("%w: VDI size %d is above the maximum %d", formats.ErrInvalidOption, diskBytes, int64(maxBlocks)*defaultBlock)
	}
	h.Blocks = uint32(blocks)
	h.BlocksOff = alignUp(preHeaderBytes+header1Plus, dataAlign)
	h.DataOff = alignUp(h.BlocksOff+4*h.Blocks, dataAlign)
	if static {
		h.BlocksAllocated = h.Blocks
	}
	var err error
	if h.UUIDCreate, err = newUUID(); err != nil {
		return header{}, err
	}
	if h.UUIDModify, err = newUUID(); err != nil {
		return header{}, err
	}
	return h, nil
}

func alignUp(n, align uint32) uint32 { return (n + align - 1) / align * align }
