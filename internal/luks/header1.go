package luks

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// LUKS1 constants (on-disk-format.pdf, §2 and §4).
const (
	magicLen        = 6
	header1Size     = 592 // the phdr: 208 bytes and 8 key slots of 48
	numSlots1       = 8
	slotActive1     = 0x00AC71F3 // LUKS_KEY_ENABLED
	slotInactive1   = 0x0000DEAD // LUKS_KEY_DISABLED
	digestSize1     = 20         // LUKS_DIGESTSIZE
	saltSize        = 32         // LUKS_SALTSIZE
	defaultStripes  = 4000       // LUKS_STRIPES
	sectorSize      = 512        // LUKS1 sectors (offsets are in these units)
	keySlotAlign    = 4096       // qemu and cryptsetup align key material to 4 KiB
	minIterations   = 1000       // qemu's minimum slot and digest iterations
	maxSplitBytes   = 4 << 20    // key material read for one slot, at most
	maxStripes      = 1 << 16    // far above the 4000 every implementation writes
	maxKeyBytes     = 64         // aes-256-xts
	maxLUKS2HdrSize = 4 << 20    // largest LUKS2 hdr_size (binary header + JSON)
)

var (
	magic1       = []byte{'L', 'U', 'K', 'S', 0xBA, 0xBE}
	magic2Second = []byte{'S', 'K', 'U', 'L', 0xBA, 0xBE}
)

// header1 is the LUKS1 partition header ("phdr"), big-endian, at offset 0.
type header1 struct {
	// 0: magic "LUKS\xba\xbe"; 6: version u16 = 1
	CipherName    string   // 8: [32] "aes"
	CipherMode    string   // 40: [32] "xts-plain64"
	HashSpec      string   // 72: [32] "sha256": PBKDF2 and AF hash
	PayloadOffset uint32   // 104: start of the payload in 512-byte sectors
	KeyBytes      uint32   // 108: master key length
	MKDigest      [20]byte // 112: PBKDF2 of the master key
	MKDigestSalt  [32]byte // 132
	MKDigestIter  uint32   // 164
	UUID          string   // 168: [40] text UUID
	Slots         [numSlots1]slot1
}

// slot1 is one LUKS1 key slot (48 bytes from offset 208 + 48*i).
type slot1 struct {
	Active     uint32   // 0: slotActive1 or slotInactive1
	Iterations uint32   // 4: PBKDF2 iterations
	Salt       [32]byte // 8
	KeyOffset  uint32   // 40: key material start, in 512-byte sectors
	Stripes    uint32   // 44: AF stripes
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseHeader1 decodes a LUKS1 header (buf holds at least header1Size bytes,
// magic and version already checked).
func parseHeader1(buf []byte) header1 {
	be := binary.BigEndian
	h := header1{
		CipherName:    cstring(buf[8:40]),
		CipherMode:    cstring(buf[40:72]),
		HashSpec:      cstring(buf[72:104]),
		PayloadOffset: be.Uint32(buf[104:]),
		KeyBytes:      be.Uint32(buf[108:]),
		MKDigestIter:  be.Uint32(buf[164:]),
		UUID:          cstring(buf[168:208]),
	}
	copy(h.MKDigest[:], buf[112:132])
	copy(h.MKDigestSalt[:], buf[132:164])
	for i := range h.Slots {
		s := buf[208+48*i:]
		h.Slots[i] = slot1{Active: be.Uint32(s[0:]), Iterations: be.Uint32(s[4:]),
			KeyOffset: be.Uint32(s[40:]), Stripes: be.Uint32(s[44:])}
		copy(h.Slots[i].Salt[:], s[8:40])
	}
	return h
}

// encode returns the header's 592 bytes.
func (h *header1) encode() ([]byte, error) {
	buf := make([]byte, header1Size)
	be := binary.BigEndian
	copy(buf, magic1)
	be.PutUint16(buf[6:], 1)
	for _, f := range []struct {
		dst []byte
		s   string
	}{{buf[8:40], h.CipherName}, {buf[40:72], h.CipherMode}, {buf[72:104], h.HashSpec}, {buf[168:208], h.UUID}} {
		if len(f.s) >= len(f.dst) {
			return nil, fmt.Errorf("%q is too long for its %d-byte LUKS1 header field", f.s, len(f.dst))
		}
		copy(f.dst, f.s)
	}
	be.PutUint32(buf[104:], h.PayloadOffset)
	be.PutUint32(buf[108:], h.KeyBytes)
	copy(buf[112:], h.MKDigest[:])
	copy(buf[132:], h.MKDigestSalt[:])
	be.PutUint32(buf[164:], h.MKDigestIter)
	for i, sl := range h.Slots {
		s := buf[208+48*i:]
		be.PutUint32(s[0:], sl.Active)
		be.PutUint32(s[4:], sl.Iterations)
		copy(s[8:40], sl.Salt[:])
		be.PutUint32(s[40:], sl.KeyOffset)
		be.PutUint32(s[44:], sl.Stripes)
	}
	return buf, nil
}

// volume1 validates a LUKS1 header and describes it as a Volume.
func volume1(name string, buf []byte) (*Volume, error) {
	h := parseHeader1(buf)
	corrupt := func(off int64, format string, args ...any) error {
		return corruptf(name, "LUKS1 header", off, format, args...)
	}
	spec, err := ParseSpec(h.CipherName, h.CipherMode)
	if err != nil {
		return nil, corrupt(40, "%v", err)
	}
	if h.KeyBytes == 0 || h.KeyBytes > maxKeyBytes {
		return nil, corrupt(108, "master key of %d bytes (want 1..%d)", h.KeyBytes, maxKeyBytes)
	}
	if h.PayloadOffset == 0 {
		// A detached header (payload elsewhere) is not an image vdisk can read.
		return nil, unsupportedf(name, "LUKS1 payload offset 0 (a detached header)")
	}
	v := &Volume{Name: name, Version: 1, UUID: h.UUID, Spec: spec, KeyBytes: int(h.KeyBytes),
		PayloadOffset: int64(h.PayloadOffset) * sectorSize, PayloadSize: -1, SectorSize: sectorSize,
		Hash: h.HashSpec, MKIterations: h.MKDigestIter, hdr1: &h}
	v.Digests = []Digest{{KDF: KDF{Type: KDFPBKDF2, Hash: h.HashSpec, Iterations: h.MKDigestIter,
		Salt: h.MKDigestSalt[:]}, Value: h.MKDigest[:], AllSlots: true}}
	for i, s := range h.Slots {
		ks := Keyslot{Index: i, KeyBytes: v.KeyBytes, AFHash: h.HashSpec, Stripes: s.Stripes,
			Area: int64(s.KeyOffset) * sectorSize, AreaSpec: spec, Priority: 1,
			KDF: KDF{Type: KDFPBKDF2, Hash: h.HashSpec, Iterations: s.Iterations, Salt: s.Salt[:]}}
		switch s.Active {
		case slotActive1:
			ks.Active = true
		case slotInactive1:
		default:
			return nil, corrupt(int64(208+48*i), "key slot %d state %#x is neither enabled nor disabled", i, s.Active)
		}
		if ks.Active {
			if s.Stripes == 0 || s.Stripes > maxStripes || uint64(s.Stripes)*uint64(h.KeyBytes) > maxSplitBytes {
				return nil, corrupt(int64(208+48*i+44), "key slot %d: %d stripes of %d bytes (at most %d bytes)", i, s.Stripes, h.KeyBytes, maxSplitBytes)
			}
			ks.AreaSize = roundUp(int64(s.Stripes)*int64(h.KeyBytes), sectorSize)
			if ks.Area < header1Size || ks.Area+ks.AreaSize > v.PayloadOffset {
				return nil, corrupt(int64(208+48*i+40), "key slot %d material at %d (%d bytes) is outside the header area before the payload at %d",
					i, ks.Area, ks.AreaSize, v.PayloadOffset)
			}
		}
		v.Slots = append(v.Slots, ks)
	}
	return v, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
