package luks

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
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
// refused, which is what the limits are for.
var fuzzLimits = Limits{MaxIterations: 2000, MaxTotalIterations: 4000, MaxArgon2MemoryKiB: 64, MaxArgon2Time: 4, MaxArgon2CPUs: 2}

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

// FuzzParse: no LUKS1 or LUKS2 header panics, allocates beyond its bounds
// or derives keys beyond the limits.
func FuzzParse(f *testing.F) {
	area, _, _, err := Create1("seed.luks", CreateParams{Passphrase: []byte("pass"), SlotIterations: 1000, DigestIterations: 1000})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(area[:4096])
	// A small LUKS1 volume whose key material is in the input: 16-byte key, 16 stripes.
	small, _, _, err := Create1("seed.luks", CreateParams{Spec: Spec{Cipher: "aes", Mode: ModeCBC, IVGen: IVPlain64},
		KeyBytes: 16, Passphrase: []byte("pass"), SlotIterations: 1000, DigestIterations: 1000})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small[:8192])
	two := append(luks2Copy([]byte(seedJSON2), 16384, 0), luks2Copy([]byte(seedJSON2), 16384, 16384)...)
	f.Add(two)
	made, _, _, err := Create2("seed.luks", CreateParams{Passphrase: []byte("pass"), SlotIterations: 1000, DigestIterations: 1000},
		Params2{KDF: KDFPBKDF2})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(made[:2*hdrSize2])
	f.Add(two[16384:])
	f.Fuzz(func(t *testing.T, b []byte) { exerciseHeader(b) })
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
