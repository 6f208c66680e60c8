package luks

import (
	"crypto/rand"
	"fmt"
	"hash"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/guid"
)

// CreateParams describe a new LUKS1 header as qemu makes it (its defaults:
// aes-256 xts-plain64, sha256, one active slot, 2 s of PBKDF2).
type CreateParams struct {
	Spec       Spec   // zero: aes xts-plain64
	KeyBytes   int    // master key length; zero: 64 for xts, 32 otherwise
	Hash       string // PBKDF2 and AF hash; "": sha256
	IterTime   time.Duration
	Passphrase []byte
	// SlotIterations and DigestIterations, when set, replace the
	// iterations IterTime would give (tests, reproducible output).
	SlotIterations, DigestIterations uint32
}

// DefaultSpec is qemu's and cryptsetup's default payload encryption.
var DefaultSpec = Spec{Cipher: "aes", Mode: ModeXTS, IVGen: IVPlain64}

// withDefaults fills unset fields with qemu's defaults.
func (p CreateParams) withDefaults() CreateParams {
	if p.Spec.Cipher == "" {
		p.Spec.Cipher = "aes"
	}
	if p.Spec.Mode == "" {
		p.Spec.Mode = ModeXTS
	}
	if p.Spec.IVGen == "" {
		p.Spec.IVGen = IVPlain64
	}
	if p.Spec.IVGen == IVESSIV && p.Spec.IVHash == "" {
		p.Spec.IVHash = "sha256"
	}
	if p.KeyBytes == 0 {
		p.KeyBytes = 32
		if p.Spec.Mode == ModeXTS {
			p.KeyBytes = 64
		}
	}
	if p.Hash == "" {
		p.Hash = "sha256"
	}
	if p.IterTime == 0 {
		p.IterTime = 2 * time.Second
	}
	return p
}

// prepare is p with qemu's defaults, checked for the header of name: the
// hash function of its key slots and digest.
func (p CreateParams) prepare(name string) (CreateParams, func() hash.Hash, error) {
	p = p.withDefaults()
	if err := p.Spec.check(p.KeyBytes); err != nil {
		return p, nil, invalid(name, err)
	}
	hf, err := hashFunc(p.Hash)
	if err != nil {
		return p, nil, invalid(name, err)
	}
	if len(p.Passphrase) == 0 {
		return p, nil, fmt.Errorf("%s: %w: an empty passphrase", name, formats.ErrKeyRequired)
	}
	return p, hf, nil
}

// invalid is err as an ErrInvalidOption of the header of name.
func invalid(name string, err error) error {
	return fmt.Errorf("%s: %w: %v", name, formats.ErrInvalidOption, err)
}

// iterationsFor measures how many PBKDF2 iterations of hash fit in d
// (qemu's qcrypto_pbkdf2_count_iters scaled by iter-time).
func iterationsFor(hash string, keyLen int, d time.Duration) (uint32, error) {
	k := KDF{Type: KDFPBKDF2, Hash: hash, Salt: make([]byte, saltSize)}
	pass := make([]byte, 16)
	for n := uint32(1 << 12); ; n *= 2 {
		k.Iterations = n
		start := time.Now()
		clear(k.derive(pass, keyLen))
		elapsed := time.Since(start)
		if elapsed >= 20*time.Millisecond || n >= 1<<26 {
			iters := float64(n) * float64(d) / float64(elapsed)
			if iters > float64(^uint32(0)) {
				return 0, fmt.Errorf("%w: PBKDF iterations %.0f larger than %d", formats.ErrInvalidOption, iters, ^uint32(0))
			}
			return uint32(iters), nil
		}
	}
}

func randomUUID() (string, error) {
	u, err := guid.New()
	return u.String(), err
}

// Create1 makes a LUKS1 header with a new random master key in slot 0, laid
// out as qemu and cryptsetup do (key material 4 KiB aligned, 8 slots
// reserved). It returns the whole header area (PayloadOffset bytes: the
// header and the key material), the volume and the payload cipher.
func Create1(name string, p CreateParams) ([]byte, *Volume, *SectorCipher, error) {
	p, hf, err := p.prepare(name)
	if err != nil {
		return nil, nil, nil, err
	}
	slotIters, digestIters := p.SlotIterations, p.DigestIterations
	if slotIters == 0 || digestIters == 0 {
		perTime, err := iterationsFor(p.Hash, p.KeyBytes, p.IterTime)
		if err != nil {
			return nil, nil, nil, err
		}
		if slotIters == 0 {
			slotIters = max(perTime, minIterations)
		}
		if digestIters == 0 {
			digestIters = max(perTime/8, minIterations)
		}
	}
	h := header1{CipherName: p.Spec.Cipher, CipherMode: p.Spec.ModeString(), HashSpec: p.Hash,
		KeyBytes: uint32(p.KeyBytes), MKDigestIter: digestIters}
	if h.UUID, err = randomUUID(); err != nil {
		return nil, nil, nil, err
	}
	splitLen := p.KeyBytes * defaultStripes
	slotSectors := uint32(roundUp(int64(splitLen), keySlotAlign) / sectorSize)
	for i := range h.Slots {
		h.Slots[i] = slot1{Active: slotInactive1, Stripes: defaultStripes, KeyOffset: keySlotAlign/sectorSize + uint32(i)*slotSectors}
	}
	h.PayloadOffset = keySlotAlign/sectorSize + numSlots1*slotSectors
	h.Slots[0].Active, h.Slots[0].Iterations = slotActive1, slotIters
	mk := make([]byte, p.KeyBytes)
	defer clear(mk)
	if _, err := rand.Read(mk); err != nil {
		return nil, nil, nil, err
	}
	if _, err := rand.Read(h.MKDigestSalt[:]); err != nil {
		return nil, nil, nil, err
	}
	if _, err := rand.Read(h.Slots[0].Salt[:]); err != nil {
		return nil, nil, nil, err
	}
	digest := KDF{Type: KDFPBKDF2, Hash: p.Hash, Iterations: digestIters, Salt: h.MKDigestSalt[:]}.derive(mk, digestSize1)
	copy(h.MKDigest[:], digest)
	area := make([]byte, int64(h.PayloadOffset)*sectorSize)
	slotKDF := KDF{Type: KDFPBKDF2, Hash: p.Hash, Iterations: h.Slots[0].Iterations, Salt: h.Slots[0].Salt[:]}
	if err := writeSlotKDF(area, h.Slots[0], p, slotKDF, hf, mk); err != nil {
		return nil, nil, nil, err
	}
	hdr, err := h.encode()
	if err != nil {
		return nil, nil, nil, invalid(name, err)
	}
	copy(area, hdr)
	v, err := volume1(name, area)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := NewSectorCipher(p.Spec, mk, sectorSize)
	if err != nil {
		return nil, nil, nil, err
	}
	return area, v, c, nil
}

// HeaderSize1 is the bytes before the payload of a LUKS1 volume made with p.
func HeaderSize1(p CreateParams) int64 {
	p = p.withDefaults()
	slot := roundUp(int64(p.KeyBytes)*defaultStripes, keySlotAlign)
	return keySlotAlign + numSlots1*slot
}
