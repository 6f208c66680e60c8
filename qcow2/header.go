package qcow2

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// Magic numbers and fixed sizes of the header (qcow2.txt "Header").
const (
	magic           = 0x514649FB // "QFI\xfb"
	v2HeaderLength  = 72         // version 2 header: fields up to snapshots_offset
	v3MinHeaderLen  = 104        // version 3 header without compression_type
	v3HeaderLength  = 112        // what qemu and vdisk write for version 3
	minClusterBits  = 9          // 512-byte clusters
	maxClusterBits  = 21         // 2 MiB clusters
	minExtL2Bits    = 14         // extended L2 needs 16 KiB clusters
	maxBackingName  = 1023       // qemu's limit on backing_file_size
	maxRefcountOrd  = 6          // 64-bit refcounts
	maxL1Bytes      = 32 << 20   // QCOW_MAX_L1_SIZE
	maxReftableSize = 8 << 20    // QCOW_MAX_REFTABLE_SIZE
	maxSnapshots    = 65536      // QCOW_MAX_SNAPSHOTS
	maxSnapTable    = 64 << 20   // QCOW_MAX_SNAPSHOTS_SIZE
	maxSnapExtra    = 1024       // QCOW_MAX_SNAPSHOT_EXTRA_DATA
	maxBitmaps      = 65535      // QCOW2_MAX_BITMAPS
	maxBitmapDir    = 1024 * maxBitmaps
	maxHostOffset   = 1<<56 - 1 // QCOW_MAX_CLUSTER_OFFSET
)

// Incompatible, compatible and autoclear feature bits.
const (
	incompatDirty       = 1 << 0
	incompatCorrupt     = 1 << 1
	incompatDataFile    = 1 << 2
	incompatCompression = 1 << 3
	incompatExtL2       = 1 << 4
	incompatKnown       = 0x1f

	compatLazyRefcounts = 1 << 0

	autoclearBitmaps = 1 << 0
	autoclearRawData = 1 << 1
)

// Compression types (header byte 104).
const (
	compressionZlib = 0
	compressionZstd = 1
)

// Header extension types (qcow2.txt "Header extensions").
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xE2792ACA
	extFeatureTable  = 0x6803F857
	extBitmaps       = 0x23852875
	extCrypto        = 0x0537BE77
	extDataFile      = 0x44415441
)

// header is the qcow2 header, big-endian, at offset 0 of the image file.
type header struct {
	Version               uint32 // 4: 2 or 3 (0: magic "QFI\xfb")
	BackingFileOffset     uint64 // 8: offset of the backing file name in cluster 0, 0 = none
	BackingFileSize       uint32 // 16: length of that name, not NUL-terminated
	ClusterBits           uint32 // 20: log2 of the cluster size
	Size                  uint64 // 24: virtual size in bytes
	CryptMethod           uint32 // 32: 0 none, 1 AES, 2 LUKS
	L1Size                uint32 // 36: entries in the active L1 table
	L1TableOffset         uint64 // 40: host offset of the active L1 table
	RefcountTableOffset   uint64 // 48: host offset of the refcount table
	RefcountTableClusters uint32 // 56: clusters of the refcount table
	NbSnapshots           uint32 // 60: internal snapshots
	SnapshotsOffset       uint64 // 64: host offset of the snapshot table
	// Version 3 only (absent in v2 and read as zero):
	IncompatibleFeatures uint64 // 72: bits an implementation must know to open
	CompatibleFeatures   uint64 // 80: bits it may ignore
	AutoclearFeatures    uint64 // 88: bits a writer that does not know them clears
	RefcountOrder        uint32 // 96: refcount_bits = 1 << order (v2: 4)
	HeaderLength         uint32 // 100: bytes of header before the extensions
	CompressionType      uint8  // 104: 0 zlib, 1 zstd (when header_length > 104)
	// Extra holds header bytes from 112 to HeaderLength (unknown additional
	// fields), preserved when the header is rewritten.
	Extra []byte
}

// featureName is one 48-byte entry of the feature name table extension.
type featureName struct {
	Type uint8  // 0: 0 incompatible, 1 compatible, 2 autoclear
	Bit  uint8  // 1: bit number
	Name string // 2: 46 bytes, NUL padded
}

// bitmapsExt is the bitmaps extension (24 bytes).
type bitmapsExt struct {
	NbBitmaps     uint32 // 0
	DirectorySize uint64 // 8
	DirectoryOff  uint64 // 16
}

// rawExt is an extension vdisk does not interpret, kept to rewrite it.
type rawExt struct {
	Type uint32
	Data []byte
}

// extensions are the header extensions that follow the header.
type extensions struct {
	BackingFormat string
	Features      []featureName
	DataFile      string
	Bitmaps       *bitmapsExt
	Crypto        *cryptoExt // full disk encryption header pointer
	Unknown       []rawExt
	End           int // offset just past the end marker
}

// parseHeader decodes the header at the start of buf (at least 72 bytes).
func parseHeader(buf []byte) (header, error) {
	var h header
	if len(buf) < v2HeaderLength {
		return h, fmt.Errorf("file too short for a header (%d bytes)", len(buf))
	}
	be := binary.BigEndian
	if be.Uint32(buf[0:]) != magic {
		return h, fmt.Errorf("bad magic %#x", be.Uint32(buf[0:]))
	}
	h.Version = be.Uint32(buf[4:])
	h.BackingFileOffset = be.Uint64(buf[8:])
	h.BackingFileSize = be.Uint32(buf[16:])
	h.ClusterBits = be.Uint32(buf[20:])
	h.Size = be.Uint64(buf[24:])
	h.CryptMethod = be.Uint32(buf[32:])
	h.L1Size = be.Uint32(buf[36:])
	h.L1TableOffset = be.Uint64(buf[40:])
	h.RefcountTableOffset = be.Uint64(buf[48:])
	h.RefcountTableClusters = be.Uint32(buf[56:])
	h.NbSnapshots = be.Uint32(buf[60:])
	h.SnapshotsOffset = be.Uint64(buf[64:])
	if h.Version == 2 {
		h.RefcountOrder = 4
		h.HeaderLength = v2HeaderLength
		return h, nil
	}
	if len(buf) < v3MinHeaderLen {
		return h, fmt.Errorf("file too short for a version 3 header")
	}
	h.IncompatibleFeatures = be.Uint64(buf[72:])
	h.CompatibleFeatures = be.Uint64(buf[80:])
	h.AutoclearFeatures = be.Uint64(buf[88:])
	h.RefcountOrder = be.Uint32(buf[96:])
	h.HeaderLength = be.Uint32(buf[100:])
	if h.HeaderLength > v3MinHeaderLen && len(buf) > 104 {
		h.CompressionType = buf[104]
	}
	if h.HeaderLength > v3HeaderLength && int(h.HeaderLength) <= len(buf) {
		h.Extra = append([]byte(nil), buf[v3HeaderLength:h.HeaderLength]...)
	}
	return h, nil
}

// encode returns the header's bytes (HeaderLength of them).
func (h *header) encode() []byte {
	n := int(h.HeaderLength)
	if h.Version == 2 {
		n = v2HeaderLength
	}
	buf := make([]byte, max(n, v2HeaderLength))
	be := binary.BigEndian
	be.PutUint32(buf[0:], magic)
	be.PutUint32(buf[4:], h.Version)
	be.PutUint64(buf[8:], h.BackingFileOffset)
	be.PutUint32(buf[16:], h.BackingFileSize)
	be.PutUint32(buf[20:], h.ClusterBits)
	be.PutUint64(buf[24:], h.Size)
	be.PutUint32(buf[32:], h.CryptMethod)
	be.PutUint32(buf[36:], h.L1Size)
	be.PutUint64(buf[40:], h.L1TableOffset)
	be.PutUint64(buf[48:], h.RefcountTableOffset)
	be.PutUint32(buf[56:], h.RefcountTableClusters)
	be.PutUint32(buf[60:], h.NbSnapshots)
	be.PutUint64(buf[64:], h.SnapshotsOffset)
	if h.Version == 2 {
		return buf
	}
	be.PutUint64(buf[72:], h.IncompatibleFeatures)
	be.PutUint64(buf[80:], h.CompatibleFeatures)
	be.PutUint64(buf[88:], h.AutoclearFeatures)
	be.PutUint32(buf[96:], h.RefcountOrder)
	be.PutUint32(buf[100:], h.HeaderLength)
	if n > v3MinHeaderLen {
		buf[104] = h.CompressionType
	}
	if n > v3HeaderLength {
		copy(buf[v3HeaderLength:], h.Extra)
	}
	return buf
}

// validate applies qemu's open-time checks that need only the header.
func (h *header) validate(name string, fileSize int64, lim formats.Limits) error {
	corrupt := func(format string, args ...any) error {
		return formats.Corruptf(name, "qcow2 header", 0, format, args...)
	}
	if h.Version != 2 && h.Version != 3 {
		return formats.Unsupportedf(name, "qcow2 version %d", h.Version)
	}
	if h.ClusterBits < minClusterBits || h.ClusterBits > maxClusterBits {
		return corrupt("cluster_bits %d outside %d..%d", h.ClusterBits, minClusterBits, maxClusterBits)
	}
	cs := uint64(1) << h.ClusterBits
	if h.Version == 3 {
		if h.HeaderLength < v3MinHeaderLen || h.HeaderLength%8 != 0 || uint64(h.HeaderLength) > cs {
			return corrupt("header_length %d is not a multiple of 8 in %d..%d", h.HeaderLength, v3MinHeaderLen, cs)
		}
	}
	if unknown := h.IncompatibleFeatures &^ incompatKnown; unknown != 0 {
		return formats.Unsupportedf(name, "qcow2 unknown incompatible feature bits %#x", unknown)
	}
	if h.CryptMethod > cryptLUKS {
		return formats.Unsupportedf(name, "qcow2 encryption method %d", h.CryptMethod)
	}
	if h.RefcountOrder > maxRefcountOrd {
		return corrupt("refcount_order %d above %d", h.RefcountOrder, maxRefcountOrd)
	}
	if h.IncompatibleFeatures&incompatExtL2 != 0 && h.ClusterBits < minExtL2Bits {
		return corrupt("extended L2 entries need cluster_bits >= %d, have %d", minExtL2Bits, h.ClusterBits)
	}
	hasCompBit := h.IncompatibleFeatures&incompatCompression != 0
	switch {
	case h.CompressionType > compressionZstd:
		return formats.Unsupportedf(name, "qcow2 compression type %d", h.CompressionType)
	case hasCompBit != (h.CompressionType != compressionZlib):
		return corrupt("compression type %d disagrees with the compression-type feature bit", h.CompressionType)
	}
	if h.Size > 1<<63-1 {
		return formats.Limitf(name, "qcow2 header", 24, "virtual size %d too large", h.Size)
	}
	if err := lim.CheckVirtualSize(name, int64(h.Size)); err != nil {
		return err
	}
	if h.BackingFileOffset != 0 {
		if h.BackingFileOffset > cs || h.BackingFileSize > maxBackingName ||
			h.BackingFileOffset+uint64(h.BackingFileSize) > cs {
			return corrupt("backing file name at %d (%d bytes) is not inside the first cluster or longer than %d bytes",
				h.BackingFileOffset, h.BackingFileSize, maxBackingName)
		}
	}
	if err := checkTableOffset(name, "L1 table", h.L1TableOffset, uint64(h.L1Size)*8, cs); err != nil {
		return err
	}
	if uint64(h.L1Size)*8 > maxL1Bytes {
		return formats.Limitf(name, "L1 table", int64(h.L1TableOffset), "%d entries exceed qemu's %d-byte limit", h.L1Size, maxL1Bytes)
	}
	if uint64(h.RefcountTableClusters)*cs > maxReftableSize {
		return formats.Limitf(name, "refcount table", int64(h.RefcountTableOffset), "%d clusters exceed qemu's %d-byte limit", h.RefcountTableClusters, maxReftableSize)
	}
	if err := checkTableOffset(name, "refcount table", h.RefcountTableOffset, uint64(h.RefcountTableClusters)*cs, cs); err != nil {
		return err
	}
	if h.NbSnapshots > maxSnapshots {
		return formats.Limitf(name, "snapshot table", int64(h.SnapshotsOffset), "%d snapshots exceed qemu's limit of %d", h.NbSnapshots, maxSnapshots)
	}
	if h.NbSnapshots > 0 {
		if err := checkTableOffset(name, "snapshot table", h.SnapshotsOffset, 0, cs); err != nil {
			return err
		}
	}
	return nil
}

// checkTableOffset checks that a table is cluster aligned and that its end
// neither overflows nor passes the largest host offset.
func checkTableOffset(name, structure string, off, length, cs uint64) error {
	if off%cs != 0 {
		return formats.Corruptf(name, structure, int64(off&(1<<63-1)), "offset %#x is not cluster aligned", off)
	}
	if off > maxHostOffset || length > maxHostOffset-off {
		return formats.Corruptf(name, structure, -1, "offset %#x + %d bytes is past the largest host offset", off, length)
	}
	return nil
}

// parseExtensions reads the extensions starting at start in cluster 0 (buf
// is the whole first cluster, or the file when shorter).
func parseExtensions(name string, buf []byte, start int, v3 bool) (extensions, error) {
	var e extensions
	if !v3 {
		// Version 2 images may carry extensions too (backing format).
		start = v2HeaderLength
	}
	be := binary.BigEndian
	seen := map[uint32]bool{}
	off := start
	for {
		if off+8 > len(buf) {
			if !v3 && off >= len(buf) {
				e.End = off
				return e, nil
			}
			return e, formats.Corruptf(name, "header extension", int64(off), "extension area runs past the first cluster")
		}
		typ, length := be.Uint32(buf[off:]), be.Uint32(buf[off+4:])
		if typ == extEnd {
			e.End = off + 8
			return e, nil
		}
		dataOff := off + 8
		if uint64(length) > uint64(len(buf)-dataOff) {
			return e, formats.Corruptf(name, "header extension", int64(off), "extension %#x of %d bytes runs past the first cluster", typ, length)
		}
		if seen[typ] {
			return e, formats.Corruptf(name, "header extension", int64(off), "extension %#x appears twice", typ)
		}
		seen[typ] = true
		data := buf[dataOff : dataOff+int(length)]
		if err := e.add(name, typ, data, int64(off)); err != nil {
			return e, err
		}
		off = dataOff + int(length+7)&^7
		if off > len(buf) {
			off = len(buf)
		}
	}
}

func (e *extensions) add(name string, typ uint32, data []byte, off int64) error {
	be := binary.BigEndian
	switch typ {
	case extBackingFormat:
		e.BackingFormat = string(data)
	case extDataFile:
		e.DataFile = string(data)
	case extFeatureTable:
		for i := 0; i+48 <= len(data); i += 48 {
			e.Features = append(e.Features, featureName{Type: data[i], Bit: data[i+1],
				Name: strings.TrimRight(string(data[i+2:i+48]), "\x00")})
		}
	case extBitmaps:
		if len(data) < 24 {
			return formats.Corruptf(name, "bitmaps extension", off, "%d bytes, want 24", len(data))
		}
		b := &bitmapsExt{NbBitmaps: be.Uint32(data[0:]), DirectorySize: be.Uint64(data[8:]), DirectoryOff: be.Uint64(data[16:])}
		if b.NbBitmaps > maxBitmaps {
			return formats.Limitf(name, "bitmaps extension", off, "%d bitmaps exceed qemu's limit of %d", b.NbBitmaps, maxBitmaps)
		}
		if b.DirectorySize > maxBitmapDir {
			return formats.Limitf(name, "bitmaps extension", off, "bitmap directory of %d bytes exceeds %d", b.DirectorySize, maxBitmapDir)
		}
		e.Bitmaps = b
	case extCrypto:
		return e.addCrypto(name, data, off)
	default:
		e.Unknown = append(e.Unknown, rawExt{Type: typ, Data: append([]byte(nil), data...)})
	}
	return nil
}

// featureNames is the table qemu writes in every version 3 image.
var featureNames = []featureName{
	{0, 0, "dirty bit"},
	{0, 1, "corrupt bit"},
	{0, 2, "external data file"},
	{0, 3, "compression type"},
	{0, 4, "extended L2 entries"},
	{1, 0, "lazy refcounts"},
	{2, 0, "bitmaps"},
	{2, 1, "raw external data"},
}

// encodeExtensions returns the extension area (with its end marker).
func (e *extensions) encode(v3 bool) []byte {
	var out []byte
	put := func(typ uint32, data []byte) {
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[0:], typ)
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(data)))
		out = append(out, hdr[:]...)
		out = append(out, data...)
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
	}
	if e.BackingFormat != "" {
		put(extBackingFormat, []byte(e.BackingFormat))
	}
	if e.DataFile != "" {
		put(extDataFile, []byte(e.DataFile))
	}
	if e.Crypto != nil {
		put(extCrypto, e.Crypto.encode())
	}
	if v3 {
		feats := e.Features
		if len(feats) == 0 {
			feats = featureNames
		}
		tbl := make([]byte, 48*len(feats))
		for i, f := range feats {
			tbl[48*i], tbl[48*i+1] = f.Type, f.Bit
			copy(tbl[48*i+2:48*i+48], f.Name)
		}
		put(extFeatureTable, tbl)
	}
	if e.Bitmaps != nil {
		b := make([]byte, 24)
		binary.BigEndian.PutUint32(b[0:], e.Bitmaps.NbBitmaps)
		binary.BigEndian.PutUint64(b[8:], e.Bitmaps.DirectorySize)
		binary.BigEndian.PutUint64(b[16:], e.Bitmaps.DirectoryOff)
		put(extBitmaps, b)
	}
	for _, u := range e.Unknown {
		put(u.Type, u.Data)
	}
	put(extEnd, nil)
	return out
}

// incompatName names set incompatible bits using the image's feature table.
func incompatNames(bits uint64, table []featureName) string {
	var names []string
	for b := range 64 {
		if bits&(1<<b) == 0 {
			continue
		}
		n := fmt.Sprintf("bit %d", b)
		for _, f := range table {
			if f.Type == 0 && int(f.Bit) == b {
				n = fmt.Sprintf("%q (bit %d)", f.Name, b)
			}
		}
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}
