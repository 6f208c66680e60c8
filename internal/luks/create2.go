package luks

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
)

// LUKS2 layout of a new volume, cryptsetup's defaults: two 16 KiB header
// copies, the key slot area from 32 KiB, the payload at 16 MiB.
const (
	hdrSize2       = 16 << 10
	keyslotsStart2 = 2 * hdrSize2
	payload2       = 16 << 20
	digestSize2    = 32 // sha256
)

// HeaderSize2 is the bytes before the payload of a new LUKS2 volume.
const HeaderSize2 = payload2

// Params2 are the LUKS2-only choices of a new volume.
type Params2 struct {
	KDF       string // KDFPBKDF2, KDFArgon2i or KDFArgon2id ("" : argon2id)
	MemoryKiB uint32 // Argon2 memory (0: 1 GiB, cryptsetup's default)
	Time      uint32 // Argon2 passes (0: 4, cryptsetup's minimum)
	CPUs      uint32 // Argon2 lanes (0: 1)
}

// Create2 makes a LUKS2 header (both copies and the key slot area,
// payload2 bytes) with a new master key in keyslot 0, as cryptsetup
// luksFormat --type luks2 lays it out.
func Create2(name string, p CreateParams, p2 Params2) ([]byte, *Volume, *SectorCipher, error) {
	p, hf, err := p.prepare(name)
	if err != nil {
		return nil, nil, nil, err
	}
	slotKDF, err := newKDF2(p, p2)
	if err != nil {
		return nil, nil, nil, invalid(name, err)
	}
	digestIters := p.DigestIterations
	if digestIters == 0 {
		perTime, err := iterationsFor(p.Hash, digestSize2, p.IterTime)
		if err != nil {
			return nil, nil, nil, err
		}
		digestIters = max(perTime/8, minIterations)
	}
	digestKDF := KDF{Type: KDFPBKDF2, Hash: p.Hash, Iterations: digestIters, Salt: make([]byte, saltSize)}
	if _, err := rand.Read(digestKDF.Salt); err != nil {
		return nil, nil, nil, err
	}
	mk := make([]byte, p.KeyBytes)
	defer clear(mk)
	if _, err := rand.Read(mk); err != nil {
		return nil, nil, nil, err
	}
	area := make([]byte, payload2)
	slotSize := roundUp(int64(p.KeyBytes)*defaultStripes, keySlotAlign)
	s := slot1{Iterations: slotKDF.Iterations, Stripes: defaultStripes, KeyOffset: keyslotsStart2 / sectorSize}
	if err := writeSlotKDF(area, s, p, slotKDF, hf, mk); err != nil {
		return nil, nil, nil, err
	}
	digest := digestKDF.derive(mk, digestSize2)
	uuid, err := randomUUID()
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := json2Metadata(p, slotKDF, digestKDF, digest, slotSize)
	if err != nil {
		return nil, nil, nil, err
	}
	var salt [64]byte
	for i, off := range []int{0, hdrSize2} {
		if _, err := rand.Read(salt[:]); err != nil {
			return nil, nil, nil, err
		}
		copy(area[off:], encodeCopy2(js, uuid, salt[:], off, i == 1))
	}
	v, err := parse2(bytes.NewReader(area), int64(len(area)), name)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := NewSectorCipher(p.Spec, mk, sectorSize)
	if err != nil {
		return nil, nil, nil, err
	}
	return area, v, c, nil
}

// newKDF2 is the keyslot KDF: PBKDF2 calibrated to IterTime, or Argon2
// with the given (or cryptsetup's default) cost.
func newKDF2(p CreateParams, p2 Params2) (KDF, error) {
	k := KDF{Type: p2.KDF, Salt: make([]byte, saltSize)}
	if _, err := rand.Read(k.Salt); err != nil {
		return k, err
	}
	switch k.Type {
	case "", KDFArgon2id, KDFArgon2i:
		if k.Type == "" {
			k.Type = KDFArgon2id
		}
		k.MemoryKiB, k.Time, k.CPUs = p2.MemoryKiB, p2.Time, p2.CPUs
		if k.MemoryKiB == 0 {
			k.MemoryKiB = DefaultMaxArgon2MemoryKiB
		}
		if k.Time == 0 {
			k.Time = 4
		}
		if k.CPUs == 0 {
			k.CPUs = 1
		}
		return k, k.check(Limits{}.WithDefaults())
	case KDFPBKDF2:
		k.Hash, k.Iterations = p.Hash, p.SlotIterations
		if k.Iterations == 0 {
			n, err := iterationsFor(p.Hash, p.KeyBytes, p.IterTime)
			if err != nil {
				return k, err
			}
			k.Iterations = max(n, minIterations)
		}
		return k, nil
	}
	return k, fmt.Errorf("key derivation %q is not one of pbkdf2, argon2i, argon2id", k.Type)
}

// writeSlotKDF stores mk in the key material area of slot s.
func writeSlotKDF(area []byte, s slot1, p CreateParams, k KDF, hf func() hash.Hash, mk []byte) error {
	slotKey := k.derive(p.Passphrase, p.KeyBytes)
	defer clear(slotKey)
	split, err := afSplit(hf, mk, int(s.Stripes))
	if err != nil {
		return err
	}
	defer clear(split)
	padded := make([]byte, roundUp(int64(len(split)), sectorSize))
	defer clear(padded)
	copy(padded, split)
	c, err := NewSectorCipher(p.Spec, slotKey, sectorSize)
	if err != nil {
		return err
	}
	c.Encrypt(padded, 0)
	copy(area[int64(s.KeyOffset)*sectorSize:], padded)
	return nil
}

// json2Metadata renders the JSON area of a new LUKS2 volume.
func json2Metadata(p CreateParams, slotKDF, digestKDF KDF, digest []byte, slotSize int64) ([]byte, error) {
	b64 := base64.StdEncoding.EncodeToString
	kdf := map[string]any{"type": slotKDF.Type, "salt": b64(slotKDF.Salt)}
	if slotKDF.Type == KDFPBKDF2 {
		kdf["hash"], kdf["iterations"] = slotKDF.Hash, slotKDF.Iterations
	} else {
		kdf["time"], kdf["memory"], kdf["cpus"] = slotKDF.Time, slotKDF.MemoryKiB, slotKDF.CPUs
	}
	enc := p.Spec.String()
	meta := map[string]any{
		"keyslots": map[string]any{"0": map[string]any{
			"type": "luks2", "key_size": p.KeyBytes,
			"af": map[string]any{"type": "luks1", "stripes": defaultStripes, "hash": p.Hash},
			"area": map[string]any{"type": "raw", "offset": strconv.Itoa(keyslotsStart2), "size": strconv.FormatInt(slotSize, 10),
				"encryption": enc, "key_size": p.KeyBytes},
			"kdf": kdf,
		}},
		"tokens": map[string]any{},
		"segments": map[string]any{"0": map[string]any{"type": "crypt", "offset": strconv.Itoa(payload2), "size": "dynamic",
			"iv_tweak": "0", "encryption": enc, "sector_size": sectorSize}},
		"digests": map[string]any{"0": map[string]any{"type": "pbkdf2", "keyslots": []string{"0"}, "segments": []string{"0"},
			"hash": digestKDF.Hash, "iterations": digestKDF.Iterations, "salt": b64(digestKDF.Salt), "digest": b64(digest)}},
		"config": map[string]any{"json_size": strconv.Itoa(hdrSize2 - binHeader2Size),
			"keyslots_size": strconv.Itoa(payload2 - keyslotsStart2)},
	}
	return json.Marshal(meta)
}

// encodeCopy2 renders one header copy (binary header and JSON area) at off.
func encodeCopy2(js []byte, uuid string, salt []byte, off int, secondary bool) []byte {
	b := make([]byte, hdrSize2)
	copy(b, magic1)
	if secondary {
		copy(b, magic2Second)
	}
	be := binary.BigEndian
	be.PutUint16(b[6:], 2)
	be.PutUint64(b[8:], hdrSize2)
	be.PutUint64(b[16:], 1)
	copy(b[72:], "sha256")
	copy(b[104:168], salt)
	copy(b[168:208], uuid)
	be.PutUint64(b[256:], uint64(off))
	copy(b[binHeader2Size:], js)
	sum := sha256.Sum256(b)
	copy(b[448:], sum[:])
	return b
}
