package luks

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/vdiskio/vdisk/internal/fuzzpatch"
)

// seedJSON2 is LUKS2 metadata as cryptsetup 2.6 writes it (one pbkdf2 and
// one argon2id keyslot, one crypt segment, one digest).
const seedJSON2 = `{"keyslots":{"0":{"type":"luks2","key_size":64,"af":{"type":"luks1","stripes":4000,"hash":"sha256"},
"area":{"type":"raw","offset":"32768","size":"258048","encryption":"aes-xts-plain64","key_size":64},
"kdf":{"type":"pbkdf2","hash":"sha256","iterations":1000,"salt":"YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="}},
"1":{"type":"luks2","key_size":64,"priority":2,"af":{"type":"luks1","stripes":4000,"hash":"sha256"},
"area":{"type":"raw","offset":"290816","size":"258048","encryption":"aes-xts-plain64","key_size":64},
"kdf":{"type":"argon2id","time":4,"memory":32,"cpus":1,"salt":"YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="}}},
"tokens":{},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}},
"digests":{"0":{"type":"pbkdf2","keyslots":["0","1"],"segments":["0"],"hash":"sha256","iterations":1000,
"salt":"YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=","digest":"YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="}},
"config":{"json_size":"12288","keyslots_size":"16744448"}}`

// luks2Copy builds one LUKS2 header copy of hdrSize bytes at off with json
// and a correct checksum.
func luks2Copy(json []byte, hdrSize, off int) []byte {
	b := make([]byte, hdrSize)
	copy(b, magic1)
	if off != 0 {
		copy(b, magic2Second)
	}
	be := binary.BigEndian
	be.PutUint16(b[6:], 2)
	be.PutUint64(b[8:], uint64(hdrSize))
	be.PutUint64(b[16:], 1)
	copy(b[72:], "sha256")
	copy(b[168:], "4c6b3d4e-0c5a-4c36-9d1b-8d9a3b2f1e00")
	be.PutUint64(b[256:], uint64(off))
	copy(b[binHeader2Size:], json)
	sum := sha256.Sum256(b)
	copy(b[448:], sum[:])
	return b
}

// fuzzLimits keep each fuzz input cheap: a header asking for more is
// refused, which is what the limits are for. The unlockable bases take 8
// iterations a derivation.
var fuzzLimits = Limits{MaxIterations: 64, MaxTotalIterations: 128, MaxArgon2MemoryKiB: 64, MaxArgon2Time: 4, MaxArgon2CPUs: 2}

func exerciseHeader(b []byte) {
	v, err := Parse(bytes.NewReader(b), int64(len(b)), "fuzz.luks")
	if err != nil {
		return
	}
	_ = v.Details(true)
	if v.Check() == nil {
		v.Unlock(bytes.NewReader(b), []byte("pass"), fuzzLimits)
	}
}

// resum2 rewrites the checksum of the LUKS2 header copy at off of b, as
// readBinHeader2 checks it, when one is there (a magic and an hdr_size
// inside b).
func resum2(b []byte, off int) {
	if off+binHeader2Size > len(b) || !bytes.Equal(b[off:off+magicLen], magic1) && !bytes.Equal(b[off:off+magicLen], magic2Second) {
		return
	}
	size := binary.BigEndian.Uint64(b[off+8:])
	if size < binHeader2Size || size > uint64(len(b)-off) {
		return
	}
	clear(b[off+448 : off+512])
	sum := sha256.Sum256(b[off : off+int(size)])
	copy(b[off+448:], sum[:])
}

// tinyVolume is a volume made by Create1 (or Create2 when luks2) with
// passphrase "pass", 8 iterations a derivation and slot 0's key material
// split again over stripes (LUKS1 writes 4000, 256 KiB for a 64-byte key),
// cut after that material: a few KiB that unlock in microseconds. c is
// the payload cipher Create made.
func tinyVolume(tb testing.TB, p CreateParams, luks2 bool, stripes int) (b []byte, c *SectorCipher) {
	p.Passphrase, p.SlotIterations, p.DigestIterations = []byte("pass"), 8, 8
	var area []byte
	var v *Volume
	var err error
	if luks2 {
		area, v, c, err = Create2("tiny.luks", p, Params2{KDF: KDFPBKDF2})
	} else {
		area, v, c, err = Create1("tiny.luks", p)
	}
	if err != nil {
		tb.Fatal(err)
	}
	ks := v.Slots[0]
	hf, err := hashFunc(ks.AFHash)
	if err != nil {
		tb.Fatal(err)
	}
	slotCipher, err := NewSectorCipher(ks.AreaSpec, ks.KDF.derive(p.Passphrase, ks.KeyBytes), sectorSize)
	if err != nil {
		tb.Fatal(err)
	}
	old := bytes.Clone(area[ks.Area : ks.Area+roundUp(int64(ks.Stripes)*int64(ks.KeyBytes), sectorSize)])
	slotCipher.Decrypt(old, 0)
	split, err := afSplit(hf, afMerge(hf, old, ks.KeyBytes, int(ks.Stripes)), stripes)
	if err != nil {
		tb.Fatal(err)
	}
	material := make([]byte, roundUp(int64(len(split)), sectorSize))
	copy(material, split)
	slotCipher.Encrypt(material, 0)
	b = append(area[:ks.Area:ks.Area], material...)
	if !luks2 {
		binary.BigEndian.PutUint32(b[208+44:], uint32(stripes)) // slot 0's stripes
		return b, c
	}
	for _, off := range []int{0, hdrSize2} {
		js := b[off+binHeader2Size : off+hdrSize2]
		text := bytes.Replace(bytes.TrimRight(js, "\x00"), []byte(`"stripes":4000`), []byte(fmt.Sprintf(`"stripes":%d`, stripes)), 1)
		clear(js)
		copy(js, text)
		resum2(b, off)
	}
	return b, c
}

// FuzzParse: no LUKS1 or LUKS2 header panics, allocates beyond its bounds
// or derives keys beyond the limits. Inputs are patches (fuzzpatch) over
// small volumes: LUKS1 and LUKS2 ones that unlock (4 stripes, 8
// iterations), the header of a default LUKS1 one (its key material cut
// off) and two LUKS2 copies of cryptsetup-style metadata, each twice: the
// second time the LUKS2 checksums are rewritten after patching, so patches
// reach the JSON.
func FuzzParse(f *testing.F) {
	tiny1, _ := tinyVolume(f, CreateParams{Spec: Spec{Cipher: "aes", Mode: ModeCBC, IVGen: IVPlain64}, KeyBytes: 16}, false, 4)
	tiny2, _ := tinyVolume(f, CreateParams{}, true, 4)
	full1, _, _, err := Create1("seed.luks", CreateParams{Passphrase: []byte("pass"), SlotIterations: 8, DigestIterations: 8})
	if err != nil {
		f.Fatal(err)
	}
	two := append(luks2Copy([]byte(seedJSON2), hdrSize2, 0), luks2Copy([]byte(seedJSON2), hdrSize2, hdrSize2)...)
	bases := [][]byte{tiny1, tiny2, full1[:4096], two, two[hdrSize2:]}
	bases = append(bases, bases...) // the second time, checksums rewritten
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		b := fuzzpatch.Apply(bases, input)
		if len(input) > 0 && int(input[0])%len(bases) >= len(bases)/2 {
			resum2(b, 0)
			resum2(b, hdrSize2)
		}
		exerciseHeader(b)
	})
}

// TestTinyVolumes: FuzzParse's small bases unlock with the passphrase,
// to the master key Create made.
func TestTinyVolumes(t *testing.T) {
	for _, luks2 := range []bool{false, true} {
		b, c := tinyVolume(t, CreateParams{}, luks2, 4)
		if len(b) > 64<<10 {
			t.Errorf("LUKS2 %v: %d bytes", luks2, len(b))
		}
		v, err := Parse(bytes.NewReader(b), int64(len(b)), "tiny.luks")
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Unlock(bytes.NewReader(b), []byte("pass"), fuzzLimits)
		if err != nil {
			t.Fatalf("LUKS2 %v: %v", luks2, err)
		}
		want, sector := make([]byte, 512), make([]byte, 512)
		c.Encrypt(want, 7)
		got.Encrypt(sector, 7)
		if !bytes.Equal(sector, want) {
			t.Errorf("LUKS2 %v: unlocked to another key", luks2)
		}
	}
}

// FuzzLUKS2JSON: the LUKS2 JSON metadata parser, past the checksum.
func FuzzLUKS2JSON(f *testing.F) {
	f.Add([]byte(seedJSON2))
	f.Add([]byte(`{"keyslots":{},"segments":{"0":{"type":"crypt","offset":"32768","size":"4096","iv_tweak":"7","encryption":"aes-cbc-essiv:sha256","sector_size":4096}},"digests":{},"config":{}}`))
	f.Add([]byte(`{"keyslots":{"31":{}},"segments":{"0":{"type":"linear"}},"config":{"requirements":{"mandatory":["online-reencrypt"]}}}`))
	f.Fuzz(func(t *testing.T, js []byte) {
		if len(js) > 16384-binHeader2Size {
			return
		}
		h := &binHeader2{HdrSize: 16384, headerBytes: make([]byte, 16384)}
		copy(h.headerBytes[binHeader2Size:], js)
		v, err := volume2("fuzz.luks", h)
		if err != nil {
			return
		}
		_ = v.Details(false)
		if v.Check() == nil {
			v.Unlock(bytes.NewReader(nil), []byte("pass"), fuzzLimits)
		}
	})
}

// TestLUKS2Seeds: the code-made LUKS2 seed parses (so the fuzz targets
// start from valid headers), and the secondary copy is found when the
// primary is damaged.
func TestLUKS2Seeds(t *testing.T) {
	two := append(luks2Copy([]byte(seedJSON2), 16384, 0), luks2Copy([]byte(seedJSON2), 16384, 16384)...)
	v, err := Parse(bytes.NewReader(two), int64(len(two)), "seed.luks")
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 2 || len(v.Slots) != 2 || v.PayloadOffset != 16<<20 || v.Spec.String() != "aes-xts-plain64" {
		t.Fatalf("parsed %+v", v)
	}
	if order := v.slotOrder(); order[0] != 1 {
		t.Fatalf("slot order %v: the high-priority slot goes first", order)
	}
	two[100] ^= 1 // breaks the primary's checksum
	if _, err := Parse(bytes.NewReader(two), int64(len(two)), "seed.luks"); err != nil {
		t.Fatalf("secondary copy not used: %v", err)
	}
}
