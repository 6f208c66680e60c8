package luks

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// LUKS2 limits (on-disk-format-luks2.pdf §3: hdr_size is one of 16 KiB..4 MiB;
// cryptsetup allows 32 key slots, segments and digests).
const (
	binHeader2Size = 4096
	maxObjects2    = 32
)

// binHeader2 is the LUKS2 binary header, big-endian, at the start of each
// header copy (4096 bytes).
type binHeader2 struct {
	// 0: magic "LUKS\xba\xbe" (primary) or "SKUL\xba\xbe" (secondary); 6: version u16 = 2
	HdrSize     uint64 // 8: binary header + JSON area, bytes
	SeqID       uint64 // 16: increases with every update; the higher copy wins
	Label       string // 24: [48]
	CsumAlg     string // 72: [32] "sha256"
	Salt        []byte // 104: [64]
	UUID        string // 168: [40]
	Subsystem   string // 208: [48]
	HdrOffset   uint64 // 256: offset of this copy
	Csum        []byte // 448: [64] checksum of hdr_size bytes with this field zeroed
	headerBytes []byte // the whole copy (hdr_size bytes) as read
}

// The JSON metadata, as far as vdisk reads it.
type json2 struct {
	Keyslots map[string]jsonKeyslot2 `json:"keyslots"`
	Segments map[string]jsonSegment2 `json:"segments"`
	Digests  map[string]jsonDigest2  `json:"digests"`
	Config   struct {
		JSONSize     string `json:"json_size"`
		KeyslotsSize string `json:"keyslots_size"`
		Requirements *struct {
			Mandatory []string `json:"mandatory"`
		} `json:"requirements"`
	} `json:"config"`
}

type jsonKeyslot2 struct {
	Type     string `json:"type"`
	KeySize  int    `json:"key_size"`
	Priority *int   `json:"priority"`
	AF       struct {
		Type    string `json:"type"`
		Stripes uint32 `json:"stripes"`
		Hash    string `json:"hash"`
	} `json:"af"`
	Area struct {
		Type       string `json:"type"`
		Offset     string `json:"offset"`
		Size       string `json:"size"`
		Encryption string `json:"encryption"`
		KeySize    int    `json:"key_size"`
	} `json:"area"`
	KDF struct {
		Type       string `json:"type"`
		Hash       string `json:"hash"`
		Iterations uint32 `json:"iterations"`
		Time       uint32 `json:"time"`
		Memory     uint32 `json:"memory"`
		CPUs       uint32 `json:"cpus"`
		Salt       string `json:"salt"`
	} `json:"kdf"`
}

type jsonSegment2 struct {
	Type       string          `json:"type"`
	Offset     string          `json:"offset"`
	Size       string          `json:"size"`
	IVTweak    string          `json:"iv_tweak"`
	Encryption string          `json:"encryption"`
	SectorSize int             `json:"sector_size"`
	Integrity  json.RawMessage `json:"integrity"`
}

type jsonDigest2 struct {
	Type       string   `json:"type"`
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations uint32   `json:"iterations"`
	Salt       string   `json:"salt"`
	Digest     string   `json:"digest"`
}

func validHdrSize(n uint64) bool {
	for s := uint64(16 << 10); s <= maxLUKS2HdrSize; s *= 2 {
		if n == s {
			return true
		}
	}
	return false
}

// readBinHeader2 reads and checksums the header copy at off.
func readBinHeader2(r io.ReaderAt, off int64, name string) (*binHeader2, error) {
	buf := make([]byte, binHeader2Size)
	if n, err := r.ReadAt(buf, off); n < len(buf) {
		return nil, corruptf(name, "LUKS2 header", off, "truncated (%d bytes): %v", n, err)
	}
	be := binary.BigEndian
	want := magic1
	if off != 0 {
		want = magic2Second
	}
	if !bytes.Equal(buf[:magicLen], want) || be.Uint16(buf[6:]) != 2 {
		return nil, corruptf(name, "LUKS2 header", off, "no LUKS2 magic")
	}
	h := &binHeader2{HdrSize: be.Uint64(buf[8:]), SeqID: be.Uint64(buf[16:]), Label: cstring(buf[24:72]),
		CsumAlg: cstring(buf[72:104]), Salt: buf[104:168], UUID: cstring(buf[168:208]),
		Subsystem: cstring(buf[208:256]), HdrOffset: be.Uint64(buf[256:]), Csum: append([]byte(nil), buf[448:512]...)}
	if !validHdrSize(h.HdrSize) {
		return nil, corruptf(name, "LUKS2 header", off+8, "hdr_size %d is not a power of two in 16 KiB..4 MiB", h.HdrSize)
	}
	if h.HdrOffset != uint64(off) {
		return nil, corruptf(name, "LUKS2 header", off+256, "hdr_offset %d disagrees with the copy's place %d", h.HdrOffset, off)
	}
	if h.CsumAlg != "sha256" {
		return nil, unsupportedf(name, "LUKS2 header checksum %q", h.CsumAlg)
	}
	all := make([]byte, h.HdrSize)
	if n, err := r.ReadAt(all, off); uint64(n) < h.HdrSize {
		return nil, corruptf(name, "LUKS2 header", off, "JSON area truncated (%d of %d bytes): %v", n, h.HdrSize, err)
	}
	sum := sha256.New()
	sum.Write(all[:448])
	sum.Write(make([]byte, 64))
	sum.Write(all[512:])
	if !bytes.Equal(sum.Sum(nil), h.Csum[:sha256.Size]) {
		return nil, corruptf(name, "LUKS2 header", off+448, "checksum mismatch")
	}
	h.headerBytes = all
	return h, nil
}

// parse2 reads the LUKS2 header: the primary copy, else the secondary at
// the offsets cryptsetup tries.
func parse2(r io.ReaderAt, size int64, name string) (*Volume, error) {
	h, err := readBinHeader2(r, 0, name)
	if err != nil {
		first := err
		for off := int64(16 << 10); off <= maxLUKS2HdrSize && off < size; off *= 2 {
			if h, err = readBinHeader2(r, off, name); err == nil {
				break
			}
		}
		if h == nil {
			return nil, first
		}
	} else if second, err := readBinHeader2(r, int64(h.HdrSize), name); err == nil && second.SeqID > h.SeqID {
		h = second
	}
	return volume2(name, h)
}

// parseJSON2 decodes and bounds the JSON area.
func parseJSON2(name string, h *binHeader2) (*json2, error) {
	area := h.headerBytes[binHeader2Size:]
	if i := bytes.IndexByte(area, 0); i >= 0 {
		area = area[:i]
	}
	var j json2
	if err := json.Unmarshal(area, &j); err != nil {
		return nil, corruptf(name, "LUKS2 JSON metadata", int64(h.HdrOffset)+binHeader2Size, "%v", err)
	}
	if len(j.Keyslots) > maxObjects2 || len(j.Segments) > maxObjects2 || len(j.Digests) > maxObjects2 {
		return nil, limitJSON(name, h, "%d keyslots, %d segments, %d digests (at most %d each)",
			len(j.Keyslots), len(j.Segments), len(j.Digests), maxObjects2)
	}
	if j.Config.Requirements != nil && len(j.Config.Requirements.Mandatory) > 0 {
		return nil, unsupportedf(name, "LUKS2 mandatory requirements %q (reencryption in progress?)", j.Config.Requirements.Mandatory)
	}
	return &j, nil
}

// volume2 describes a LUKS2 header as a Volume.
func volume2(name string, h *binHeader2) (*Volume, error) {
	j, err := parseJSON2(name, h)
	if err != nil {
		return nil, err
	}
	corrupt := func(structure, format string, args ...any) error {
		return corruptf(name, "LUKS2 "+structure, -1, format, args...)
	}
	v := &Volume{Name: name, Version: 2, UUID: h.UUID, Label: h.Label, HeaderSize: int64(h.HdrSize)}
	seg, ok := j.Segments["0"]
	if !ok || len(j.Segments) != 1 {
		return nil, unsupportedf(name, "LUKS2 with %d segments (vdisk reads one crypt segment, \"0\")", len(j.Segments))
	}
	if seg.Type != "crypt" {
		return nil, unsupportedf(name, "LUKS2 segment type %q", seg.Type)
	}
	if len(seg.Integrity) > 0 && string(seg.Integrity) != "null" {
		return nil, unsupportedf(name, "LUKS2 integrity protection (authenticated encryption)")
	}
	if v.Spec, err = ParseSpec2(seg.Encryption); err != nil {
		return nil, corrupt("segment 0", "%v", err)
	}
	if seg.SectorSize < 512 || seg.SectorSize > 4096 || seg.SectorSize&(seg.SectorSize-1) != 0 {
		return nil, corrupt("segment 0", "sector_size %d is not a power of two in 512..4096", seg.SectorSize)
	}
	v.SectorSize = seg.SectorSize
	if v.PayloadOffset, err = jsonUint(seg.Offset); err != nil || v.PayloadOffset%int64(v.SectorSize) != 0 {
		return nil, corrupt("segment 0", "offset %q is not a multiple of the sector size", seg.Offset)
	}
	if v.PayloadOffset < 2*int64(h.HdrSize) {
		return nil, corrupt("segment 0", "payload offset %d overlaps the two header copies", v.PayloadOffset)
	}
	v.PayloadSize = -1
	if seg.Size != "dynamic" {
		if v.PayloadSize, err = jsonUint(seg.Size); err != nil || v.PayloadSize%int64(v.SectorSize) != 0 {
			return nil, corrupt("segment 0", "size %q is not a multiple of the sector size", seg.Size)
		}
	}
	tweak, err := jsonUint(seg.IVTweak)
	if err != nil {
		return nil, corrupt("segment 0", "iv_tweak %q: %v", seg.IVTweak, err)
	}
	v.IVTweak = uint64(tweak)
	if err := v.keyslots2(j); err != nil {
		return nil, err
	}
	return v, v.digests2(j)
}

// jsonUint parses a LUKS2 decimal string ("" is 0).
func jsonUint(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	return int64(n), err
}

func sortedKeys[T any](m map[string]T) ([]string, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if n, err := strconv.Atoi(k); err != nil || n < 0 || n >= maxObjects2 {
			return nil, fmt.Errorf("object key %q is not a number below %d", k, maxObjects2)
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { x, _ := strconv.Atoi(keys[a]); y, _ := strconv.Atoi(keys[b]); return x < y })
	return keys, nil
}

func (v *Volume) keyslots2(j *json2) error {
	keys, err := sortedKeys(j.Keyslots)
	if err != nil {
		return corruptf(v.Name, "LUKS2 keyslots", -1, "%v", err)
	}
	for _, k := range keys {
		js := j.Keyslots[k]
		idx, _ := strconv.Atoi(k)
		structure := "LUKS2 keyslot " + k
		if js.Type != "luks2" {
			return unsupportedf(v.Name, "%s of type %q", structure, js.Type)
		}
		if js.AF.Type != "luks1" || js.Area.Type != "raw" {
			return unsupportedf(v.Name, "%s with af %q and area %q", structure, js.AF.Type, js.Area.Type)
		}
		ks := Keyslot{Index: idx, Active: true, KeyBytes: js.KeySize, AFHash: js.AF.Hash, Stripes: js.AF.Stripes, Priority: 1}
		if js.Priority != nil {
			ks.Priority = *js.Priority
		}
		if js.KeySize <= 0 || js.KeySize > maxKeyBytes || js.AF.Stripes == 0 || js.AF.Stripes > maxStripes ||
			uint64(js.AF.Stripes)*uint64(js.KeySize) > maxSplitBytes {
			return corruptf(v.Name, structure, -1, "key of %d bytes in %d stripes (at most %d bytes)", js.KeySize, js.AF.Stripes, maxSplitBytes)
		}
		if ks.AreaSpec, err = ParseSpec2(js.Area.Encryption); err != nil {
			return corruptf(v.Name, structure, -1, "area %v", err)
		}
		if js.Area.KeySize != js.KeySize {
			return unsupportedf(v.Name, "%s area key of %d bytes for a %d-byte key", structure, js.Area.KeySize, js.KeySize)
		}
		off, err1 := jsonUint(js.Area.Offset)
		size, err2 := jsonUint(js.Area.Size)
		if err1 != nil || err2 != nil || off < 2*v.HeaderSize || size < int64(ks.Stripes)*int64(ks.KeyBytes) ||
			off%sectorSize != 0 || off+size > v.PayloadOffset {
			return corruptf(v.Name, structure, -1, "area at %q (%q bytes) is outside the key slot area", js.Area.Offset, js.Area.Size)
		}
		ks.Area, ks.AreaSize = off, size
		salt, err := base64.StdEncoding.DecodeString(js.KDF.Salt)
		if err != nil {
			return corruptf(v.Name, structure, -1, "kdf salt: %v", err)
		}
		ks.KDF = KDF{Type: js.KDF.Type, Hash: js.KDF.Hash, Iterations: js.KDF.Iterations, Time: js.KDF.Time,
			MemoryKiB: js.KDF.Memory, CPUs: js.KDF.CPUs, Salt: salt}
		v.Slots = append(v.Slots, ks)
		if js.KeySize > v.KeyBytes {
			v.KeyBytes = js.KeySize
		}
	}
	return nil
}

func (v *Volume) digests2(j *json2) error {
	keys, err := sortedKeys(j.Digests)
	if err != nil {
		return corruptf(v.Name, "LUKS2 digests", -1, "%v", err)
	}
	for _, k := range keys {
		jd := j.Digests[k]
		structure := "LUKS2 digest " + k
		if jd.Type != KDFPBKDF2 {
			return unsupportedf(v.Name, "%s of type %q", structure, jd.Type)
		}
		salt, err1 := base64.StdEncoding.DecodeString(jd.Salt)
		value, err2 := base64.StdEncoding.DecodeString(jd.Digest)
		if err1 != nil || err2 != nil || len(value) == 0 || len(value) > 64 {
			return corruptf(v.Name, structure, -1, "salt or digest is not base64 of 1..64 bytes")
		}
		d := Digest{KDF: KDF{Type: KDFPBKDF2, Hash: jd.Hash, Iterations: jd.Iterations, Salt: salt}, Value: value}
		for _, s := range jd.Keyslots {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n >= maxObjects2 {
				return corruptf(v.Name, structure, -1, "keyslot reference %q", s)
			}
			d.Slots = append(d.Slots, n)
		}
		v.Digests = append(v.Digests, d)
	}
	if len(v.Digests) > 0 {
		// For info: the first digest stands for LUKS1's master key digest.
		v.Hash, v.MKIterations = v.Digests[0].KDF.Hash, v.Digests[0].KDF.Iterations
	}
	return nil
}

func limitJSON(name string, h *binHeader2, format string, args ...any) error {
	return limitf(name, "LUKS2 JSON metadata", int64(h.HdrOffset)+binHeader2Size, format, args...)
}
