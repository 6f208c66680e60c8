package iso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// ECMA-119 constants.
const (
	blockBytes      = 2048 // logical block (sector) size; the only one supported
	systemAreaBytes = 16 * blockBytes
	firstVDOffset   = systemAreaBytes // volume descriptors start at block 16
	standardID      = "CD001"
	maxDescriptors  = 64 // descriptors read before giving up on a terminator

	vdBoot          = 0
	vdPrimary       = 1
	vdSupplementary = 2
	vdPartition     = 3
	vdTerminator    = 255

	elToritoID = "EL TORITO SPECIFICATION"
)

// volumeDescriptor is a primary (type 1) or supplementary (type 2)
// volume descriptor (ECMA-119 §8.4, §8.5). Offsets are within the 2048-byte
// descriptor.
type volumeDescriptor struct {
	Type          byte     // 0: 1 primary, 2 supplementary
	SystemID      string   // 8: 32 a-characters
	VolumeID      string   // 40: 32 d-characters
	VolumeBlocks  uint32   // 80: volume space size, both-endian
	Escapes       [32]byte // 88: SVD escape sequences (Joliet: %/@ %/C %/E)
	LogicalBlock  uint16   // 128: logical block size, both-endian
	Root          []byte   // 156: root directory record, 34 bytes
	PublisherID   string   // 318: 128
	PreparerID    string   // 446: 128
	ApplicationID string   // 574: 128
	Created       string   // 813: 17-byte date
	Modified      string   // 830
	Offset        int64    // where the descriptor is in the image
}

// joliet reports whether an SVD is a Joliet descriptor (UCS-2 escapes).
func (v *volumeDescriptor) joliet() bool {
	if v.Type != vdSupplementary {
		return false
	}
	e := v.Escapes[:3]
	return bytes.Equal(e, []byte("%/@")) || bytes.Equal(e, []byte("%/C")) || bytes.Equal(e, []byte("%/E"))
}

func parseVolumeDescriptor(b []byte, off int64) *volumeDescriptor {
	le := binary.LittleEndian
	v := &volumeDescriptor{Type: b[0], Offset: off}
	copy(v.Escapes[:], b[88:120])
	text := aString
	if v.joliet() {
		text = ucs2String
	}
	v.SystemID = text(b[8:40])
	v.VolumeID = text(b[40:72])
	v.VolumeBlocks = le.Uint32(b[80:])
	v.LogicalBlock = le.Uint16(b[128:])
	v.Root = append([]byte(nil), b[156:190]...)
	v.PublisherID = text(b[318:446])
	v.PreparerID = text(b[446:574])
	v.ApplicationID = text(b[574:702])
	v.Created = string(b[813:830])
	v.Modified = string(b[830:847])
	return v
}

// aString trims the space (and NUL) padding of an a/d-character field.
func aString(b []byte) string {
	return strings.TrimRight(string(b), " \x00")
}

// ucs2String decodes a big-endian UCS-2 (UTF-16) field, trimming padding.
func ucs2String(b []byte) string {
	return strings.TrimRight(string(utf16.Decode(ucs2Units(b))), " \x00")
}

// ucs2Units splits big-endian UCS-2 bytes into code units (an odd last
// byte is ignored).
func ucs2Units(b []byte) []uint16 {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return u
}

// ucs2Bytes encodes code units big-endian.
func ucs2Bytes(u []uint16) []byte {
	b := make([]byte, 2*len(u))
	for i, x := range u {
		binary.BigEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// parseVDDate parses a 17-byte volume descriptor date ("YYYYMMDDHHMMSScc"
// and a signed offset in 15-minute units); ok is false when it is unset.
func parseVDDate(s string) (time.Time, bool) {
	if len(s) != 17 || strings.Trim(s[:16], "0") == "" || strings.Trim(s[:16], " \x00") == "" {
		return time.Time{}, false
	}
	num := func(a, b int) int {
		n, err := strconv.Atoi(s[a:b])
		if err != nil {
			return -1
		}
		return n
	}
	y, mo, d, h, mi, se, cs := num(0, 4), num(4, 6), num(6, 8), num(8, 10), num(10, 12), num(12, 14), num(14, 16)
	if y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60 || cs < 0 {
		return time.Time{}, false
	}
	zone := time.FixedZone("", int(int8(s[16]))*15*60)
	return time.Date(y, time.Month(mo), d, h, mi, se, cs*10_000_000, zone), true
}

// volumeSet is what the descriptors of an image say.
type volumeSet struct {
	primary      *volumeDescriptor
	joliet       *volumeDescriptor
	bootCatalog  int64 // LBA of the El Torito catalog, -1 when none
	terminatorAt int64
}

// readVolumeSet reads descriptors from block 16 up to the terminator.
func readVolumeSet(r readerAt, name string, size int64) (*volumeSet, error) {
	vs := &volumeSet{bootCatalog: -1}
	buf := make([]byte, blockBytes)
	for i := 0; ; i++ {
		off := int64(firstVDOffset) + int64(i)*blockBytes
		if i >= maxDescriptors {
			return nil, formats.Corruptf(name, "volume descriptor set", firstVDOffset, "no terminator in %d descriptors", maxDescriptors)
		}
		if off+blockBytes > size {
			return nil, formats.Corruptf(name, "volume descriptor set", off, "the image ends before the set terminator")
		}
		if err := fileio.ReadFull(r, buf, off); err != nil {
			return nil, fmt.Errorf("%s: reading volume descriptor at %d: %w", name, off, err)
		}
		if string(buf[1:6]) != standardID {
			return nil, formats.Corruptf(name, "volume descriptor", off, "identifier %q, want %q", buf[1:6], standardID)
		}
		switch buf[0] {
		case vdTerminator:
			vs.terminatorAt = off
			return vs, vs.finish(name)
		case vdPrimary:
			if vs.primary == nil {
				vs.primary = parseVolumeDescriptor(buf, off)
			}
		case vdSupplementary:
			if v := parseVolumeDescriptor(buf, off); v.joliet() && vs.joliet == nil {
				vs.joliet = v
			}
		case vdBoot:
			if strings.TrimRight(string(buf[7:39]), "\x00") == elToritoID {
				vs.bootCatalog = int64(binary.LittleEndian.Uint32(buf[71:]))
			}
		}
	}
}

// finish validates the set once the terminator is found.
func (vs *volumeSet) finish(name string) error {
	p := vs.primary
	if p == nil {
		return formats.Corruptf(name, "volume descriptor set", firstVDOffset, "no primary volume descriptor")
	}
	for _, v := range []*volumeDescriptor{p, vs.joliet} {
		if v == nil {
			continue
		}
		switch {
		case v.LogicalBlock == 0 || v.LogicalBlock&(v.LogicalBlock-1) != 0 || v.LogicalBlock < 512:
			return formats.Corruptf(name, "volume descriptor", v.Offset+128, "logical block size %d", v.LogicalBlock)
		case v.LogicalBlock != blockBytes:
			return formats.Unsupportedf(name, "ISO 9660 logical block size %d (only 2048)", v.LogicalBlock)
		case v.VolumeBlocks == 0:
			return formats.Corruptf(name, "volume descriptor", v.Offset+80, "volume space size 0")
		}
	}
	return nil
}

// volumeBytes is the size the primary descriptor gives the volume.
func (vs *volumeSet) volumeBytes() int64 { return int64(vs.primary.VolumeBlocks) * blockBytes }

// checkSize refuses a volume larger than the size-byte image.
func (vs *volumeSet) checkSize(name string, size int64) error {
	if vs.volumeBytes() > size {
		return formats.Corruptf(name, "primary volume descriptor", vs.primary.Offset+80,
			"volume of %d blocks is larger than the %d-byte image", vs.primary.VolumeBlocks, size)
	}
	return nil
}
