package compressed

import (
	"bytes"
	"encoding/binary"
)

// A decompression bomb cannot expand past what the image inside says it
// is: when the first bytes of the stream are the header of an image that
// declares its virtual size, the spool stops at that size plus room for
// the image's metadata (declaredSlack), unless the caller set
// Spooler.LimitBytes explicitly (--spool-limit), which then rules alone.
// The headers read (offsets from the start of the image):
//
//	qcow2  "QFI\xfb" at 0, size (BE uint64) at 24
//	vmdk   "KDMV" at 0 (sparse extent), capacity in sectors (LE uint64) at 12
//	vdi    signature 0xbeda107f (LE) at 0x40, disk size (LE uint64) at 0x170
//	vhd    "conectix" at 0 (a dynamic disk's footer copy), current size (BE uint64) at 48
//
// A raw image, a fixed VHD and a VHDX (whose size is deep in its metadata
// region) declare nothing here; the spool limit bounds them.

// declaredHeadBytes is how much of the stream declaredSize looks at.
const declaredHeadBytes = 0x178

// declaredSlackBytes is the metadata room over the declared size: the
// tables of a fully allocated image are a few percent of it (qcow2 with
// 512-byte clusters: L2 tables 1/64 of the data, refcounts 1/256).
func declaredSlackBytes(virtual int64) int64 { return virtual/8 + 64<<20 }

// declaredSize returns the virtual size the image header at the start of
// head declares, and its format, or ok false.
func declaredSize(head []byte) (size int64, format string, ok bool) {
	be, le := binary.BigEndian, binary.LittleEndian
	var v uint64
	switch {
	case len(head) >= 32 && bytes.HasPrefix(head, []byte("QFI\xfb")):
		v, format = be.Uint64(head[24:]), "qcow2"
	case len(head) >= 20 && bytes.HasPrefix(head, []byte("KDMV")):
		v, format = le.Uint64(head[12:]), "vmdk"
		if v > 1<<54 {
			return 0, "", false
		}
		v *= 512
	case len(head) >= 0x178 && le.Uint32(head[0x40:]) == 0xbeda107f:
		v, format = le.Uint64(head[0x170:]), "vdi"
	case len(head) >= 56 && bytes.HasPrefix(head, []byte("conectix")):
		v, format = be.Uint64(head[48:]), "vhd"
	default:
		return 0, "", false
	}
	if v > 1<<60 {
		return 0, "", false
	}
	return int64(v), format, true
}
