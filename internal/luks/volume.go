package luks

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/vdiskio/vdisk/formats"
)

// Volume is a parsed LUKS1 or LUKS2 header.
type Volume struct {
	Name          string // the file, for messages
	Version       int    // 1 or 2
	UUID          string
	Label         string // LUKS2 label
	Spec          Spec   // payload encryption
	KeyBytes      int    // master key length
	Hash          string // LUKS1 hash_spec (PBKDF2 and AF hash)
	PayloadOffset int64  // bytes from the start of the header
	PayloadSize   int64  // bytes; -1: up to the end of the file
	SectorSize    int    // payload encryption unit (512; LUKS2 up to 4096)
	IVTweak       uint64 // LUKS2 segment iv_tweak, added to sector numbers
	MKIterations  uint32 // LUKS1 master key digest iterations
	HeaderSize    int64  // LUKS2: hdr_size of one copy (binary + JSON)
	Slots         []Keyslot
	Digests       []Digest
	hdr1          *header1
}

// Keyslot is one key slot: a KDF, an AF split and an encrypted area.
type Keyslot struct {
	Index    int
	Active   bool
	KDF      KDF
	AFHash   string
	Stripes  uint32
	KeyBytes int
	Area     int64 // byte offset of the key material
	AreaSize int64
	AreaSpec Spec // how the key material is encrypted (LUKS1: the payload's)
	Priority int  // LUKS2: 0 ignore, 1 normal, 2 high
}

// Digest verifies a master key.
type Digest struct {
	KDF      KDF
	Value    []byte
	Slots    []int // the key slots it verifies
	AllSlots bool  // LUKS1: the one digest verifies every slot
}

func corruptf(name, structure string, off int64, format string, args ...any) error {
	return formats.Corruptf(name, structure, off, format, args...)
}

func unsupportedf(name, format string, args ...any) error {
	return formats.Unsupportedf(name, format, args...)
}

func limitf(name, structure string, off int64, format string, args ...any) error {
	return formats.Limitf(name, structure, off, format, args...)
}

var errLimit = formats.ErrLimit

// Probe reports the LUKS version whose header starts buf (0: none).
func Probe(buf []byte) int {
	if len(buf) < 8 || !bytes.Equal(buf[:magicLen], magic1) {
		return 0
	}
	v := int(binary.BigEndian.Uint16(buf[6:]))
	if v == 1 || v == 2 {
		return v
	}
	return 0
}

// Parse reads the LUKS header at the start of r (the bytes of a raw
// volume, or the header area of an encrypted qcow2); size is r's length.
func Parse(r io.ReaderAt, size int64, name string) (*Volume, error) {
	buf := make([]byte, 4096)
	n, err := r.ReadAt(buf, 0)
	if n < header1Size {
		return nil, corruptf(name, "LUKS header", 0, "only %d bytes readable: %v", n, err)
	}
	if !bytes.Equal(buf[:magicLen], magic1) {
		if bytes.Equal(buf[:magicLen], magic2Second) {
			return parse2(r, size, name)
		}
		return nil, corruptf(name, "LUKS header", 0, "no LUKS magic")
	}
	switch v := binary.BigEndian.Uint16(buf[6:]); v {
	case 1:
		return volume1(name, buf)
	case 2:
		return parse2(r, size, name)
	default:
		return nil, unsupportedf(name, "LUKS version %d", v)
	}
}

// Check reports whether vdisk can decrypt this volume's payload (the
// cipher spec and key size are ones it implements).
func (v *Volume) Check() error {
	if err := v.Spec.check(v.KeyBytes); err != nil {
		return unsupportedf(v.Name, "LUKS%d encryption %s: %v", v.Version, v.Spec, err)
	}
	return nil
}

// ActiveSlots counts the active key slots.
func (v *Volume) ActiveSlots() int {
	n := 0
	for _, s := range v.Slots {
		if s.Active {
			n++
		}
	}
	return n
}

// Unlock finds the master key with passphrase, trying each active key
// slot (LUKS2: high priority first, "ignore" slots last), and returns the
// payload cipher. A wrong passphrase is an error wrapping formats.ErrBadKey
// that names the file and how many slots were tried.
func (v *Volume) Unlock(r io.ReaderAt, passphrase []byte, lim Limits) (*SectorCipher, error) {
	mk, err := v.masterKey(r, passphrase, lim)
	if err != nil {
		return nil, err
	}
	c, err := NewSectorCipher(v.Spec, mk, v.SectorSize)
	clear(mk)
	if err != nil {
		return nil, unsupportedf(v.Name, "LUKS%d encryption %s: %v", v.Version, v.Spec, err)
	}
	return c, nil
}

// masterKey finds the master key with passphrase (the caller clears it).
func (v *Volume) masterKey(r io.ReaderAt, passphrase []byte, lim Limits) ([]byte, error) {
	if err := v.Check(); err != nil {
		return nil, err
	}
	lim = lim.WithDefaults()
	budget := lim.MaxTotalIterations
	order := v.slotOrder()
	tried := 0
	for _, i := range order {
		ks := v.Slots[i]
		mk, cost, err := v.tryKeyslot(r, ks, passphrase, lim, budget, tried)
		budget -= min(budget, cost)
		if err != nil {
			return nil, err
		}
		tried++
		if mk != nil {
			return mk, nil
		}
	}
	return nil, &formats.Error{File: v.Name, Structure: fmt.Sprintf("LUKS%d key slots", v.Version), Offset: -1,
		Kind: formats.ErrBadKey, Msg: fmt.Sprintf("the passphrase opens none of the %d active key slots (%d tried)", v.ActiveSlots(), tried)}
}

// slotOrder lists the active slots in the order cryptsetup tries them.
func (v *Volume) slotOrder() []int {
	var order []int
	for i, s := range v.Slots {
		if s.Active {
			order = append(order, i)
		}
	}
	rank := func(p int) int { return map[int]int{2: 0, 1: 1, 0: 2}[p] }
	sort.SliceStable(order, func(a, b int) bool { return rank(v.Slots[order[a]].Priority) < rank(v.Slots[order[b]].Priority) })
	return order
}

// kdfCost is the PBKDF2 iterations a derivation spends (Argon2 is bounded
// by its own limits and counts one).
func kdfCost(k KDF) uint64 {
	if k.Type == KDFPBKDF2 {
		return uint64(k.Iterations)
	}
	return 1
}

// tryKeyslot derives the slot key, decrypts and merges the key material
// and verifies it with the slot's digest. It returns the master key, or
// nil when the passphrase does not fit this slot.
func (v *Volume) tryKeyslot(r io.ReaderAt, ks Keyslot, passphrase []byte, lim Limits, budget uint64, tried int) ([]byte, uint64, error) {
	structure := fmt.Sprintf("LUKS%d key slot %d", v.Version, ks.Index)
	if err := ks.KDF.check(lim); err != nil {
		return nil, 0, v.kdfError(structure, err)
	}
	dg, err := v.digestFor(ks.Index)
	if err != nil {
		return nil, 0, err
	}
	if err := dg.KDF.check(lim); err != nil {
		return nil, 0, v.kdfError(fmt.Sprintf("LUKS%d digest", v.Version), err)
	}
	cost := kdfCost(ks.KDF) + kdfCost(dg.KDF)
	if cost > budget {
		return nil, cost, formats.Limitf(v.Name, structure, -1, "unlocking would take more than %d PBKDF2 iterations in all (%d key slots tried)", lim.MaxTotalIterations, tried)
	}
	hf, err := hashFunc(ks.AFHash)
	if err != nil {
		return nil, cost, unsupportedf(v.Name, "%s: anti-forensic %v", structure, err)
	}
	split := make([]byte, int(ks.Stripes)*ks.KeyBytes)
	defer clear(split)
	if n, err := r.ReadAt(split, ks.Area); n < len(split) {
		return nil, cost, corruptf(v.Name, structure, ks.Area, "key material truncated (%d of %d bytes): %v", n, len(split), err)
	}
	slotKey := ks.KDF.derive(passphrase, ks.KeyBytes)
	defer clear(slotKey)
	c, err := NewSectorCipher(ks.AreaSpec, slotKey, sectorSize)
	if err != nil {
		return nil, cost, unsupportedf(v.Name, "%s: encryption %s: %v", structure, ks.AreaSpec, err)
	}
	padded := split
	if len(split)%sectorSize != 0 {
		padded = make([]byte, roundUp(int64(len(split)), sectorSize))
		defer clear(padded)
		copy(padded, split)
	}
	c.Decrypt(padded, 0)
	mk := afMerge(hf, padded, ks.KeyBytes, int(ks.Stripes))
	got := dg.KDF.derive(mk, len(dg.Value))
	defer clear(got)
	if subtle.ConstantTimeCompare(got, dg.Value) == 1 && ks.KeyBytes == v.KeyBytes {
		return mk, cost, nil
	}
	clear(mk)
	return nil, cost, nil
}

func (v *Volume) kdfError(structure string, err error) error {
	if errors.Is(err, errLimit) {
		return &formats.Error{File: v.Name, Structure: structure, Offset: -1, Kind: formats.ErrLimit, Msg: err.Error()}
	}
	return unsupportedf(v.Name, "%s: %v", structure, err)
}

// digestFor returns the digest that verifies key slot i.
func (v *Volume) digestFor(i int) (Digest, error) {
	for _, d := range v.Digests {
		if d.AllSlots {
			return d, nil
		}
		for _, s := range d.Slots {
			if s == i {
				return d, nil
			}
		}
	}
	return Digest{}, corruptf(v.Name, "LUKS2 digests", -1, "no digest covers key slot %d", i)
}
