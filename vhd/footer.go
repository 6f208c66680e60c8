package vhd

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Sizes and magic values of the VHD specification (§ "Hard Disk Footer
// Format").
const (
	sectorSize = 512

	footerSize       = 512 // footer since Virtual PC 2004
	legacyFooterSize = 511 // footer of images made before Virtual PC 2004

	footerCookie  = "conectix"
	featureBits   = 0x00000002 // bit 1 is reserved and always set
	fileVersion   = 0x00010000
	noDataOffset  = ^uint64(0) // data offset of a fixed disk: all 64 bits set
	creatorQemu   = "qemu"     // CHS-sized images, as qemu writes them
	creatorQemu2  = "qem2"     // current_size-sized images (qemu force_size)
	creatorVer    = 0x00050003 // qemu's creator version
	creatorOSWin  = "Wi2k"
	vhdEpochUnix  = 946684800 // 2000-01-01 00:00:00 UTC
	footerSumOff  = 64        // offset of the checksum field in the footer
	headerSumOff  = 36        // offset of the checksum field in the dynamic header
	maxCHSSectors = 65535 * 16 * 255
)

// diskType is the footer's disk type field.
type diskType uint32

const (
	typeFixed        diskType = 2
	typeDynamic      diskType = 3
	typeDifferencing diskType = 4
)

func (t diskType) String() string {
	switch t {
	case typeFixed:
		return "fixed"
	case typeDynamic:
		return "dynamic"
	case typeDifferencing:
		return "differencing"
	}
	return "unknown"
}

// footer is the 512-byte hard disk footer (511 bytes before Virtual PC 2004),
// big-endian. It ends every VHD; dynamic and differencing disks also keep a
// copy at offset 0.
type footer struct {
	Cookie          [8]byte  // 0: "conectix"
	Features        uint32   // 8: bit 0 temporary disk, bit 1 reserved (set)
	FileVersion     uint32   // 12: 0x00010000
	DataOffset      uint64   // 16: dynamic header offset; all-ones for fixed disks
	Timestamp       uint32   // 24: creation, seconds since 2000-01-01 UTC
	CreatorApp      [4]byte  // 28: "vpc ", "win ", "qemu", "qem2", "d2v ", ...
	CreatorVersion  uint32   // 32: major<<16 | minor
	CreatorOS       [4]byte  // 36: "Wi2k" or "Mac "
	OriginalSize    uint64   // 40: size at creation, bytes
	CurrentSize     uint64   // 48: current size, bytes
	Cylinders       uint16   // 56: CHS geometry
	Heads           uint8    // 58
	SectorsPerTrack uint8    // 59
	DiskType        diskType // 60: 2 fixed, 3 dynamic, 4 differencing
	Checksum        uint32   // 64: one's complement of the byte sum
	UniqueID        [16]byte // 68: UUID, RFC 4122 byte order
	SavedState      uint8    // 84: 1 while a saved state exists
	// 85..511 reserved, zero
}

// decodeFooter parses a footer from b (511 or 512 bytes). It does not
// validate anything; see footer.problem.
func decodeFooter(b []byte) footer {
	var ft footer
	be := binary.BigEndian
	copy(ft.Cookie[:], b[0:8])
	ft.Features = be.Uint32(b[8:])
	ft.FileVersion = be.Uint32(b[12:])
	ft.DataOffset = be.Uint64(b[16:])
	ft.Timestamp = be.Uint32(b[24:])
	copy(ft.CreatorApp[:], b[28:32])
	ft.CreatorVersion = be.Uint32(b[32:])
	copy(ft.CreatorOS[:], b[36:40])
	ft.OriginalSize = be.Uint64(b[40:])
	ft.CurrentSize = be.Uint64(b[48:])
	ft.Cylinders = be.Uint16(b[56:])
	ft.Heads = b[58]
	ft.SectorsPerTrack = b[59]
	ft.DiskType = diskType(be.Uint32(b[60:]))
	ft.Checksum = be.Uint32(b[64:])
	copy(ft.UniqueID[:], b[68:84])
	ft.SavedState = b[84]
	return ft
}

// encode returns the 512-byte footer with its checksum computed (and stored
// in ft).
func (ft *footer) encode() []byte {
	b := make([]byte, footerSize)
	be := binary.BigEndian
	copy(b[0:8], ft.Cookie[:])
	be.PutUint32(b[8:], ft.Features)
	be.PutUint32(b[12:], ft.FileVersion)
	be.PutUint64(b[16:], ft.DataOffset)
	be.PutUint32(b[24:], ft.Timestamp)
	copy(b[28:32], ft.CreatorApp[:])
	be.PutUint32(b[32:], ft.CreatorVersion)
	copy(b[36:40], ft.CreatorOS[:])
	be.PutUint64(b[40:], ft.OriginalSize)
	be.PutUint64(b[48:], ft.CurrentSize)
	be.PutUint16(b[56:], ft.Cylinders)
	b[58] = ft.Heads
	b[59] = ft.SectorsPerTrack
	be.PutUint32(b[60:], uint32(ft.DiskType))
	copy(b[68:84], ft.UniqueID[:])
	b[84] = ft.SavedState
	ft.Checksum = checksum(b, footerSumOff)
	be.PutUint32(b[footerSumOff:], ft.Checksum)
	return b
}

// checksum is the VHD checksum of b: the one's complement of the sum of its
// bytes, the 4-byte checksum field at sumOff counted as zeros.
func checksum(b []byte, sumOff int) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= sumOff && i < sumOff+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// footerValid reports whether b (511 or 512 bytes) holds a footer with the
// right cookie and checksum.
func footerValid(b []byte) bool {
	if len(b) < legacyFooterSize || !bytes.Equal(b[:8], []byte(footerCookie)) {
		return false
	}
	return checksum(b, footerSumOff) == binary.BigEndian.Uint32(b[footerSumOff:])
}

// geometry is a CHS disk geometry.
type geometry struct {
	Cylinders       uint16
	Heads           uint8
	SectorsPerTrack uint8
}

func (g geometry) sectors() int64 {
	return int64(g.Cylinders) * int64(g.Heads) * int64(g.SectorsPerTrack)
}

// maxGeometry is the largest CHS geometry, 65535/16/255; a footer carrying it
// always means "the size is current_size".
var maxGeometry = geometry{65535, 16, 255}

// geometryFor is the CHS geometry algorithm of the VHD specification
// (appendix "CHS Calculation"), identical to qemu's calculate_geometry: the
// largest geometry whose capacity does not exceed totalSectors (capped at
// maxGeometry).
func geometryFor(totalSectors int64) geometry {
	totalSectors = max(min(totalSectors, maxCHSSectors), 0)
	var spt, heads, cylTimesHeads int64
	if totalSectors >= 65535*16*63 {
		spt, heads = 255, 16
		cylTimesHeads = totalSectors / spt
	} else {
		spt = 17
		cylTimesHeads = totalSectors / spt
		heads = max((cylTimesHeads+1023)/1024, 4)
		if cylTimesHeads >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cylTimesHeads = totalSectors / spt
		}
		if cylTimesHeads >= heads*1024 {
			spt, heads = 63, 16
			cylTimesHeads = totalSectors / spt
		}
	}
	return geometry{uint16(cylTimesHeads / heads), uint8(heads), uint8(spt)}
}

// roundUpToGeometry returns the smallest geometry whose capacity is at least
// totalSectors, the way qemu sizes a VHD created without force_size, and the
// size in sectors it gives the disk: the geometry's capacity, or totalSectors
// itself when the geometry is the maximum one.
func roundUpToGeometry(totalSectors int64) (geometry, int64) {
	var g geometry
	for i := int64(0); g.sectors() < totalSectors && g != maxGeometry; i++ {
		g = geometryFor(totalSectors + i)
	}
	if g == maxGeometry {
		return g, totalSectors
	}
	return g, g.sectors()
}

// currentSizeCreators are the creator applications whose images qemu 7.2
// sizes by current_size rather than by CHS geometry.
var currentSizeCreators = []string{"win ", "qem2", "d2v ", "tap\x00", "CTXS"}

// usesCurrentSize reports whether qemu 7.2 takes the virtual size of the disk
// described by ft from its current_size field (true) or from its CHS
// geometry (false).
func (ft *footer) usesCurrentSize() bool {
	if ft.geometry() == maxGeometry {
		return true
	}
	for _, app := range currentSizeCreators {
		if string(ft.CreatorApp[:]) == app {
			return true
		}
	}
	return false
}

func (ft *footer) geometry() geometry {
	return geometry{ft.Cylinders, ft.Heads, ft.SectorsPerTrack}
}

// virtualSize is the disk size as qemu 7.2 reads it: whole sectors of
// current_size, or the CHS capacity (see usesCurrentSize).
func (ft *footer) virtualSize() int64 {
	if ft.usesCurrentSize() {
		return int64(min(ft.CurrentSize, 1<<62) / sectorSize * sectorSize)
	}
	return ft.geometry().sectors() * sectorSize
}

// vhdTime converts t to a VHD timestamp (seconds since 2000-01-01 UTC).
func vhdTime(t time.Time) uint32 {
	return uint32(t.Unix() - vhdEpochUnix)
}

// timeOf converts a VHD timestamp to a time.
func timeOf(ts uint32) time.Time {
	return time.Unix(int64(ts)+vhdEpochUnix, 0).UTC()
}

// printable renders a 4-byte creator field, NULs and other control bytes
// escaped ("tap\x00").
func printable(b []byte) string {
	var s []byte
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			s = append(s, []byte("\\x")...)
			s = append(s, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			continue
		}
		s = append(s, c)
	}
	return string(s)
}
