package vhdx

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// Sizes and offsets of the fixed layout (MS-VHDX 2.1; formats.md §2.1).
const (
	mib = 1 << 20
	kib = 1 << 10

	fileIdentOffset = 0
	header1Offset   = 64 * kib
	header2Offset   = 128 * kib
	region1Offset   = 192 * kib
	region2Offset   = 256 * kib
	headerSection   = 1 * mib // everything before the first object

	headerSize      = 4 * kib  // bytes covered by a header's checksum
	regionTableSize = 64 * kib // bytes covered by a region table's checksum
	metaTableSize   = 64 * kib // the metadata table at a metadata region's start

	maxRegionEntries = 2047
	maxMetaEntries   = 2047
	maxMetaItemLen   = 1 * mib

	minBlockSize = 1 * mib
	maxBlockSize = 256 * mib

	maxVirtualSize       = 64 << 40 // 64 TiB (qemu's VHDX_MAX_IMAGE_SIZE)
	sectorsPerBitmap     = 1 << 23  // sectors one 1 MiB sector-bitmap block covers
	bitmapBlockSize      = 1 * mib
	logSectorSize        = 4 * kib
	fileIdentCreatorSize = 512
)

// Signatures.
var (
	sigFile     = [8]byte{'v', 'h', 'd', 'x', 'f', 'i', 'l', 'e'}
	sigHeader   = [4]byte{'h', 'e', 'a', 'd'}
	sigRegion   = [4]byte{'r', 'e', 'g', 'i'}
	sigMetadata = [8]byte{'m', 'e', 't', 'a', 'd', 'a', 't', 'a'}
	sigLogEntry = [4]byte{'l', 'o', 'g', 'e'}
	sigDescData = [4]byte{'d', 'e', 's', 'c'}
	sigDescZero = [4]byte{'z', 'e', 'r', 'o'}
	sigDataSect = [4]byte{'d', 'a', 't', 'a'}
)

// Well-known GUIDs (formats.md §2.9).
var (
	regionBAT      = mustGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	regionMetadata = mustGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")

	itemFileParams   = mustGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	itemVirtualSize  = mustGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	itemPage83       = mustGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	itemLogicalSect  = mustGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	itemPhysicalSect = mustGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	itemParentLoc    = mustGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

	parentLocatorType = mustGUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")
)

// header is a VHDX header (MS-VHDX 2.2.2), 4 KiB at 64 KiB and 128 KiB.
//
//	off  size  field
//	0    4     signature "head"
//	4    4     checksum: CRC-32C of the 4 KiB with this field zero
//	8    8     sequence number; the valid header with the larger one is current
//	16   16    FileWriteGuid: changes before the first write of a session
//	32   16    DataWriteGuid: changes before the first user-visible write
//	48   16    LogGuid: zero when the log holds nothing to replay
//	64   2     log version, 0
//	66   2     version, 1
//	68   4     log length in bytes, a multiple of 1 MiB
//	72   8     log offset in bytes, a multiple of 1 MiB
//	80   4016  reserved
type header struct {
	Sequence      uint64
	FileWriteGUID guid
	DataWriteGUID guid
	LogGUID       guid
	LogVersion    uint16
	Version       uint16
	LogLength     uint32
	LogOffset     uint64
}

// decodeHeader parses a header; ok is false when the signature or checksum
// is wrong (the slot is then simply not valid).
func decodeHeader(b []byte) (h header, ok bool) {
	if len(b) < headerSize || [4]byte(b[0:4]) != sigHeader || !validChecksum(b[:headerSize], 4) {
		return h, false
	}
	le := binary.LittleEndian
	h.Sequence = le.Uint64(b[8:])
	h.FileWriteGUID = guid(b[16:32])
	h.DataWriteGUID = guid(b[32:48])
	h.LogGUID = guid(b[48:64])
	h.LogVersion = le.Uint16(b[64:])
	h.Version = le.Uint16(b[66:])
	h.LogLength = le.Uint32(b[68:])
	h.LogOffset = le.Uint64(b[72:])
	return h, true
}

// encode returns the 4 KiB header with its checksum.
func (h header) encode() []byte {
	b := make([]byte, headerSize)
	le := binary.LittleEndian
	copy(b, sigHeader[:])
	le.PutUint64(b[8:], h.Sequence)
	copy(b[16:], h.FileWriteGUID[:])
	copy(b[32:], h.DataWriteGUID[:])
	copy(b[48:], h.LogGUID[:])
	le.PutUint16(b[64:], h.LogVersion)
	le.PutUint16(b[66:], h.Version)
	le.PutUint32(b[68:], h.LogLength)
	le.PutUint64(b[72:], h.LogOffset)
	setChecksum(b, 4)
	return b
}

// region is a region table entry (MS-VHDX 2.2.3.2), 32 bytes.
//
//	off  size  field
//	0    16    GUID of the region (BAT, metadata, or unknown)
//	16   8     file offset, a multiple of 1 MiB
//	24   4     length, a multiple of 1 MiB
//	28   4     bit 0: required (an unknown required region must be refused)
type region struct {
	GUID     guid
	Offset   uint64
	Length   uint32
	Required bool
}

// Region table header (16 bytes): "regi", checksum over all 64 KiB, entry
// count (≤ 2047), reserved; entries follow.
const regionEntrySize = 32

// decodeRegionTable parses a 64 KiB region table.
func decodeRegionTable(b []byte) ([]region, error) {
	if len(b) < regionTableSize || [4]byte(b[0:4]) != sigRegion {
		return nil, fmt.Errorf("bad signature")
	}
	if !validChecksum(b[:regionTableSize], 4) {
		return nil, fmt.Errorf("bad checksum")
	}
	count := binary.LittleEndian.Uint32(b[8:])
	if count > maxRegionEntries {
		return nil, fmt.Errorf("%d entries (at most %d)", count, maxRegionEntries)
	}
	rs := make([]region, count)
	for i := range rs {
		e := b[16+i*regionEntrySize:]
		rs[i] = region{GUID: guid(e[0:16]), Offset: binary.LittleEndian.Uint64(e[16:]),
			Length: binary.LittleEndian.Uint32(e[24:]), Required: binary.LittleEndian.Uint32(e[28:])&1 != 0}
	}
	return rs, nil
}

// encodeRegionTable builds a 64 KiB region table with its checksum.
func encodeRegionTable(rs []region) []byte {
	b := make([]byte, regionTableSize)
	copy(b, sigRegion[:])
	binary.LittleEndian.PutUint32(b[8:], uint32(len(rs)))
	for i, r := range rs {
		if 16+(i+1)*regionEntrySize > len(b) {
			break // only a crafted count can exceed the table
		}
		e := b[16+i*regionEntrySize:]
		copy(e, r.GUID[:])
		binary.LittleEndian.PutUint64(e[16:], r.Offset)
		binary.LittleEndian.PutUint32(e[24:], r.Length)
		if r.Required {
			binary.LittleEndian.PutUint32(e[28:], 1)
		}
	}
	setChecksum(b, 4)
	return b
}

// metaEntry is a metadata table entry (MS-VHDX 2.6.1.2), 32 bytes.
//
//	off  size  field
//	0    16    item GUID
//	16   4     offset from the region start (≥ 64 KiB; 0 only when length is 0)
//	20   4     length (≤ 1 MiB)
//	24   4     bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired
//	28   4     reserved
type metaEntry struct {
	GUID     guid
	Offset   uint32
	Length   uint32
	Flags    uint32
	Required bool
}

const (
	metaFlagUser        = 1 << 0
	metaFlagVirtualDisk = 1 << 1
	metaFlagRequired    = 1 << 2
	metaEntrySize       = 32
)

// Metadata table header (32 bytes): "metadata", reserved u16, entry count
// u16 (≤ 2047), 20 reserved bytes; entries follow.

func decodeMetaTable(b []byte) ([]metaEntry, error) {
	if len(b) < metaTableSize || [8]byte(b[0:8]) != sigMetadata {
		return nil, fmt.Errorf("bad signature")
	}
	count := binary.LittleEndian.Uint16(b[10:])
	if count > maxMetaEntries {
		return nil, fmt.Errorf("%d entries (at most %d)", count, maxMetaEntries)
	}
	es := make([]metaEntry, count)
	for i := range es {
		e := b[32+i*metaEntrySize:]
		flags := binary.LittleEndian.Uint32(e[24:])
		es[i] = metaEntry{GUID: guid(e[0:16]), Offset: binary.LittleEndian.Uint32(e[16:]),
			Length: binary.LittleEndian.Uint32(e[20:]), Flags: flags, Required: flags&metaFlagRequired != 0}
	}
	return es, nil
}

func encodeMetaTable(es []metaEntry) []byte {
	b := make([]byte, metaTableSize)
	copy(b, sigMetadata[:])
	binary.LittleEndian.PutUint16(b[10:], uint16(len(es)))
	for i, m := range es {
		if 32+(i+1)*metaEntrySize > len(b) {
			break // only a crafted count can exceed the table
		}
		e := b[32+i*metaEntrySize:]
		copy(e, m.GUID[:])
		binary.LittleEndian.PutUint32(e[16:], m.Offset)
		binary.LittleEndian.PutUint32(e[20:], m.Length)
		binary.LittleEndian.PutUint32(e[24:], m.Flags)
	}
	return b
}

// File parameters item (MS-VHDX 2.6.2.1), 8 bytes: block size u32, flags u32.
const (
	fileParamLeaveAllocated = 1 << 0 // fixed VHDX
	fileParamHasParent      = 1 << 1 // differencing VHDX
)

// BAT entry (MS-VHDX 2.5.1): bits 0-2 state, 3-19 reserved, 20-63 file
// offset in MiB.
const (
	batStateMask   = 7
	batOffsetMask  = ^uint64(mib - 1)
	batEntrySize   = 8
	payloadNotPres = 0 // PAYLOAD_BLOCK_NOT_PRESENT
	payloadUndef   = 1 // PAYLOAD_BLOCK_UNDEFINED
	payloadZero    = 2 // PAYLOAD_BLOCK_ZERO
	payloadUnmap   = 3 // PAYLOAD_BLOCK_UNMAPPED
	payloadUnmapQ  = 5 // UNMAPPED in qemu's vhdx.h (older draft)
	payloadFull    = 6 // PAYLOAD_BLOCK_FULLY_PRESENT
	payloadPartial = 7 // PAYLOAD_BLOCK_PARTIALLY_PRESENT
	bitmapNotPres  = 0 // SB_BLOCK_NOT_PRESENT
	bitmapPresent  = 6 // SB_BLOCK_PRESENT
)

func batEntry(state uint8, fileOff uint64) uint64 { return fileOff&batOffsetMask | uint64(state) }
func batState(e uint64) uint8                     { return uint8(e & batStateMask) }
func batOffset(e uint64) int64                    { return int64(e & batOffsetMask) }

// parentLocator is the VHDX parent locator item (MS-VHDX 2.6.2.6): a 20-byte
// header (locator type GUID, reserved u16, key-value count u16) and 12-byte
// entries (key offset u32, value offset u32, key length u16, value length
// u16; offsets from the item start) naming UTF-16LE strings.
type parentLocator struct {
	Keys   []string
	Values map[string]string
}

const (
	locHeaderSize = 20
	locEntrySize  = 12
)

func decodeParentLocator(b []byte) (parentLocator, error) {
	pl := parentLocator{Values: map[string]string{}}
	if len(b) < locHeaderSize {
		return pl, fmt.Errorf("item of %d bytes is too short", len(b))
	}
	if guid(b[0:16]) != parentLocatorType {
		return pl, fmt.Errorf("unknown locator type %v", guid(b[0:16]))
	}
	count := int(binary.LittleEndian.Uint16(b[18:]))
	if locHeaderSize+count*locEntrySize > len(b) {
		return pl, fmt.Errorf("%d entries do not fit in %d bytes", count, len(b))
	}
	total := 0 // bytes of strings: they cannot exceed the item (no sharing)
	for i := 0; i < count; i++ {
		e := b[locHeaderSize+i*locEntrySize:]
		if total += int(binary.LittleEndian.Uint16(e[8:])) + int(binary.LittleEndian.Uint16(e[10:])); total > len(b) {
			return pl, fmt.Errorf("strings of %d entries exceed the %d-byte item", i+1, len(b))
		}
		key, err := utf16At(b, binary.LittleEndian.Uint32(e[0:]), binary.LittleEndian.Uint16(e[8:]))
		if err != nil {
			return pl, fmt.Errorf("entry %d key: %v", i, err)
		}
		val, err := utf16At(b, binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint16(e[10:]))
		if err != nil {
			return pl, fmt.Errorf("entry %d value: %v", i, err)
		}
		if _, dup := pl.Values[key]; dup {
			return pl, fmt.Errorf("duplicate key %q", key)
		}
		pl.Keys = append(pl.Keys, key)
		pl.Values[key] = val
	}
	return pl, nil
}

func utf16At(b []byte, off uint32, length uint16) (string, error) {
	if length == 0 || length%2 != 0 || uint64(off)+uint64(length) > uint64(len(b)) {
		return "", fmt.Errorf("string at %d+%d outside the %d-byte item", off, length, len(b))
	}
	return decodeUTF16(b[off : off+uint32(length)]), nil
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

func encodeUTF16(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// encode builds the locator item with keys in pl.Keys order.
func (pl parentLocator) encode() []byte {
	head := make([]byte, locHeaderSize+len(pl.Keys)*locEntrySize)
	copy(head, parentLocatorType[:])
	binary.LittleEndian.PutUint16(head[18:], uint16(len(pl.Keys)))
	var strs []byte
	for i, k := range pl.Keys {
		kb, vb := encodeUTF16(k), encodeUTF16(pl.Values[k])
		e := head[locHeaderSize+i*locEntrySize:]
		binary.LittleEndian.PutUint32(e[0:], uint32(len(head)+len(strs)))
		binary.LittleEndian.PutUint16(e[8:], uint16(len(kb)))
		strs = append(strs, kb...)
		binary.LittleEndian.PutUint32(e[4:], uint32(len(head)+len(strs)))
		binary.LittleEndian.PutUint16(e[10:], uint16(len(vb)))
		strs = append(strs, vb...)
	}
	return append(head, strs...)
}
