package ewf

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"
	"strings"
)

// Signatures at offset 0 of every segment file.
var (
	sigEVF  = []byte("EVF\x09\x0d\x0a\xff\x00") // EWF-E01 and EWF-S01 (this driver)
	sigLVF  = []byte("LVF\x09\x0d\x0a\xff\x00") // EWF-L01 logical evidence (files, not a disk)
	sigEVF2 = []byte("EVF2\x0d\x0a\x81\x00")    // EWF2-Ex01
	sigLEF2 = []byte("LEF2\x0d\x0a\x81\x00")    // EWF2-Lx01
)

// Sizes of the fixed structures, in bytes.
const (
	fileHeaderBytes  = 13   // signature, 0x01, segment number, 0x0000
	descriptorBytes  = 76   // section descriptor
	volumeBytes      = 1052 // volume, disk and data section body (EWF-E01)
	smartVolumeBytes = 94   // volume section body of EWF / EWF-S01
	tableHeaderBytes = 24   // table and table2 header
	tableEntryBytes  = 4
	digestBytes      = 80 // digest section body
	hashBytes        = 36 // hash section body
	checksumBytes    = 4  // Adler-32 after a chunk, an entry array, a structure
)

// Section types this driver reads or writes (the descriptor's type field).
const (
	secHeader  = "header"
	secHeader2 = "header2"
	secXHeader = "xheader"
	secVolume  = "volume"
	secDisk    = "disk"
	secData    = "data"
	secSectors = "sectors"
	secTable   = "table"
	secTable2  = "table2"
	secDigest  = "digest"
	secHash    = "hash"
	secXHash   = "xhash"
	secNext    = "next"
	secDone    = "done"
	secLtree   = "ltree"
	secLtypes  = "ltypes"
	secIncompl = "incomplete"
)

// entryCompressed is the table entry bit marking a zlib-compressed chunk;
// the other 31 bits are the chunk's offset (from the table's base).
const entryCompressed = 1 << 31

// sum is the Adler-32 EWF puts after every structure (initial value 1, as zlib).
func sum(p []byte) uint32 { return adler32.Checksum(p) }

// fileHeader is the 13 bytes at the start of a segment file:
//
//	0  [8]byte  signature (sigEVF)
//	8  uint8    0x01, start of fields
//	9  uint16   segment number, 1 for the first file
//	11 uint16   0x0000, end of fields
type fileHeader struct {
	Segment uint16
}

func (h fileHeader) encode() []byte {
	b := make([]byte, fileHeaderBytes)
	copy(b, sigEVF)
	b[8] = 1
	binary.LittleEndian.PutUint16(b[9:], h.Segment)
	return b
}

// descriptor is the 76-byte section descriptor that starts every section:
//
//	0  [16]byte type, NUL-padded ASCII ("header", "table", ...)
//	16 uint64   offset of the next section's descriptor, from the start of
//	            the segment file ("next" and "done" point to themselves)
//	24 uint64   section size, descriptor included (0 in "next" and "done")
//	32 [40]byte padding
//	72 uint32   Adler-32 of bytes 0..71
type descriptor struct {
	Type   string
	Next   uint64
	Size   uint64
	Offset int64 // where the descriptor was read (not stored)
}

func decodeDescriptor(b []byte) (d descriptor, sumOK bool) {
	d.Type = strings.TrimRight(string(b[:16]), "\x00")
	d.Next = binary.LittleEndian.Uint64(b[16:])
	d.Size = binary.LittleEndian.Uint64(b[24:])
	return d, binary.LittleEndian.Uint32(b[72:]) == sum(b[:72])
}

func (d descriptor) encode() []byte {
	b := make([]byte, descriptorBytes)
	copy(b[:16], d.Type)
	binary.LittleEndian.PutUint64(b[16:], d.Next)
	binary.LittleEndian.PutUint64(b[24:], d.Size)
	binary.LittleEndian.PutUint32(b[72:], sum(b[:72]))
	return b
}

// printable is a section type for messages (crafted types may hold anything).
func printable(t string) string {
	if strings.IndexFunc(t, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
		return "(binary)"
	}
	return t
}

// volume is the body of the volume section of the first segment file (and
// of the data section, its copy). The EWF-E01 layout is 1052 bytes:
//
//	0    uint8    media type (0 removable, 1 fixed, 3 optical, 0x0e logical, 0x10 memory)
//	4    uint32   chunk count, over all segment files
//	8    uint32   sectors per chunk (64 by default)
//	12   uint32   bytes per sector (512)
//	16   uint64   sector count
//	24   uint32   CHS cylinders, 28 heads, 32 sectors (usually 0)
//	36   uint8    media flags (0x01 image file, 0x02 physical, 0x04 Fastbloc, 0x08 Tableau)
//	40   uint32   PALM volume start sector
//	48   uint32   SMART logs start sector
//	52   uint8    compression level (0 none, 1 good/fast, 2 best)
//	56   uint32   error granularity, in sectors
//	64   [16]byte segment file set GUID
//	1043 [5]byte  signature (zeros)
//	1048 uint32   Adler-32 of bytes 0..1047
//
// EWF and EWF-S01 (SMART) use a 94-byte body with the same first 16 bytes,
// a 32-bit sector count at 16, a signature at 85 and the Adler-32 at 90.
type volume struct {
	MediaType        uint8
	ChunkCount       uint32
	SectorsPerChunk  uint32
	BytesPerSector   uint32
	SectorCount      uint64
	MediaFlags       uint8
	CompressionLevel uint8
	ErrorGranularity uint32
	SetID            [16]byte
	Smart            bool // the 94-byte layout
	SmartSig         bool // ... with "SMART" at 85 (EWF-S01)
}

// Media types and flags.
const (
	mediaFixed      = 0x01
	mediaLogical    = 0x0e
	flagImageFile   = 0x01
	flagPhysical    = 0x02
	levelNone       = 0
	levelGood       = 1
	levelBest       = 2
	smartSigOffset  = 85
	smartSumOffset  = 90
	volumeSumOffset = 1048
)

// decodeVolume decodes a volume body of either layout; ok is false when the
// length fits neither or the checksum is wrong.
func decodeVolume(b []byte) (v volume, sumOK bool, ok bool) {
	switch {
	case len(b) >= volumeBytes:
		b = b[:volumeBytes]
		sumOK = binary.LittleEndian.Uint32(b[volumeSumOffset:]) == sum(b[:volumeSumOffset])
		v.SectorCount = binary.LittleEndian.Uint64(b[16:])
		v.MediaFlags = b[36]
		v.CompressionLevel = b[52]
		v.ErrorGranularity = binary.LittleEndian.Uint32(b[56:])
		copy(v.SetID[:], b[64:80])
	case len(b) >= smartVolumeBytes:
		b = b[:smartVolumeBytes]
		sumOK = binary.LittleEndian.Uint32(b[smartSumOffset:]) == sum(b[:smartSumOffset])
		v.SectorCount = uint64(binary.LittleEndian.Uint32(b[16:]))
		v.Smart = true
		v.SmartSig = string(b[smartSigOffset:smartSigOffset+5]) == "SMART"
	default:
		return v, false, false
	}
	v.MediaType = b[0]
	v.ChunkCount = binary.LittleEndian.Uint32(b[4:])
	v.SectorsPerChunk = binary.LittleEndian.Uint32(b[8:])
	v.BytesPerSector = binary.LittleEndian.Uint32(b[12:])
	return v, sumOK, true
}

func (v volume) encode() []byte {
	b := make([]byte, volumeBytes)
	b[0] = v.MediaType
	binary.LittleEndian.PutUint32(b[4:], v.ChunkCount)
	binary.LittleEndian.PutUint32(b[8:], v.SectorsPerChunk)
	binary.LittleEndian.PutUint32(b[12:], v.BytesPerSector)
	binary.LittleEndian.PutUint64(b[16:], v.SectorCount)
	b[36] = v.MediaFlags
	b[52] = v.CompressionLevel
	binary.LittleEndian.PutUint32(b[56:], v.ErrorGranularity)
	copy(b[64:80], v.SetID[:])
	binary.LittleEndian.PutUint32(b[volumeSumOffset:], sum(b[:volumeSumOffset]))
	return b
}

// tableHeader starts the body of a table or table2 section:
//
//	0  uint32 number of entries
//	4  uint32 padding
//	8  uint64 base offset the entries are relative to (EnCase 6 and later;
//	          0 before, where entries are offsets in the segment file)
//	16 uint32 padding
//	20 uint32 Adler-32 of bytes 0..19
//
// The entries follow (uint32 each: entryCompressed | offset), then, in
// EWF-E01, the Adler-32 of the entry array. In EWF-S01 and EnCase 1 the
// chunks themselves follow inside the table section.
type tableHeader struct {
	Entries uint32
	Base    uint64
}

func decodeTableHeader(b []byte) (h tableHeader, sumOK bool) {
	h.Entries = binary.LittleEndian.Uint32(b[0:])
	h.Base = binary.LittleEndian.Uint64(b[8:])
	return h, binary.LittleEndian.Uint32(b[20:]) == sum(b[:20])
}

func (h tableHeader) encode() []byte {
	b := make([]byte, tableHeaderBytes)
	binary.LittleEndian.PutUint32(b[0:], h.Entries)
	binary.LittleEndian.PutUint64(b[8:], h.Base)
	binary.LittleEndian.PutUint32(b[20:], sum(b[:20]))
	return b
}

// digests are the hashes of the media data kept in the last segment file:
// the hash section (36 bytes: MD5 at 0, 16 unknown bytes, Adler-32 at 32),
// the digest section of EnCase 6.12 and later (80 bytes: MD5 at 0, SHA-1 at
// 16, 40 bytes of padding, Adler-32 at 76) and EWF-X's xhash (zlib XML).
type digests struct {
	MD5  []byte // nil when not stored
	SHA1 []byte
}

func encodeDigest(md5, sha1 []byte) []byte {
	b := make([]byte, digestBytes)
	copy(b[0:16], md5)
	copy(b[16:36], sha1)
	binary.LittleEndian.PutUint32(b[76:], sum(b[:76]))
	return b
}

func encodeHash(md5 []byte) []byte {
	b := make([]byte, hashBytes)
	copy(b[0:16], md5)
	binary.LittleEndian.PutUint32(b[32:], sum(b[:32]))
	return b
}

// nonZero returns p, or nil when p is all zeros (an unset digest).
func nonZero(p []byte) []byte {
	if bytes.Count(p, []byte{0}) == len(p) {
		return nil
	}
	return append([]byte(nil), p...)
}
