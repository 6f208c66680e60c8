package luks

import (
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// Key slot management of a LUKS1 header, as qemu's amend does it
// (crypto/block-luks.c: qcrypto_block_luks_amend_add_keyslot and
// _erase_keyslots; what `qemu-img amend -o encrypt.state=...` runs):
//
//   - activate (state=active): the master key, unlocked with the
//     passphrase the image was opened with, is stored under new-secret in
//     the keyslot given, else the first inactive one. An active slot is
//     not overwritten unless forced. The new slot gets a new salt and
//     iter-time's PBKDF2 iterations (default 2 s); its key material is
//     written before the header marks it active.
//   - erase (state=inactive): the keyslot given (which old-secret, when
//     given too, must open), else every slot old-secret opens, is marked
//     inactive (salt and iterations zeroed) in the header, then its key
//     material is overwritten with random bytes (one pass; qemu makes 16).
//     Erasing the last active slot, which loses the data for good, is
//     refused unless forced.
//
// Refusals are qemu's messages word for word (clients and people compare
// them), as a *RefusalError.

// SlotChange is one amend of the key slots. The secrets are looked up by
// id only when qemu looks them up, so the first error is qemu's.
type SlotChange struct {
	Activate  bool
	Keyslot   *int // nil: not given
	NewSecret *string
	OldSecret *string
	IterTime  *time.Duration
	Force     bool
	// OpenKey is the passphrase the volume was opened with (activate
	// unlocks the master key with it).
	OpenKey []byte
	// Lookup returns the secret with an id (qemu's --object secret).
	Lookup func(id string) ([]byte, error)
}

// Write is bytes to write at Off in the header area, in the order given.
type Write struct {
	Off  int64
	Data []byte
}

// RefusalError is an amend refused, in qemu's words.
type RefusalError struct {
	Msg  string
	Kind error
}

func (e *RefusalError) Error() string { return e.Msg }
func (e *RefusalError) Unwrap() error { return e.Kind }

func refuse(kind error, format string, args ...any) error {
	return &RefusalError{Msg: fmt.Sprintf(format, args...), Kind: kind}
}

// defaultIterTime is qemu's QCRYPTO_BLOCK_LUKS_DEFAULT_ITER_TIME_MS.
const defaultIterTime = 2 * time.Second

// AmendSlots1 plans change on the LUKS1 header read from r (the header
// area): it returns the writes that make it, in a crash-safe order; the
// caller writes them and parses the header again. Nothing is written here.
func (v *Volume) AmendSlots1(r io.ReaderAt, c SlotChange, lim Limits) ([]Write, error) {
	if v.Version != 1 || v.hdr1 == nil {
		return nil, unsupportedf(v.Name, "amending the key slots of a LUKS%d header (qemu amends LUKS1)", v.Version)
	}
	if c.Activate {
		return v.addKeyslot1(r, c, lim)
	}
	return v.eraseKeyslots1(r, c, lim)
}

func (v *Volume) addKeyslot1(r io.ReaderAt, c SlotChange, lim Limits) ([]Write, error) {
	h := *v.hdr1
	if c.NewSecret == nil {
		return nil, refuse(formats.ErrInvalidOption, "'new-secret' is required to activate a keyslot")
	}
	if c.OldSecret != nil {
		return nil, refuse(formats.ErrInvalidOption, "'old-secret' must not be given when activating keyslots")
	}
	slot := -1
	if c.Keyslot != nil {
		slot = *c.Keyslot
		if slot >= numSlots1 || slot < 0 {
			// qemu prints this one's number unsigned (%u).
			return nil, refuse(formats.ErrInvalidOption, "Invalid keyslot %d specified, must be between 0 and %d", uint32(slot), numSlots1-1)
		}
	} else {
		for i, s := range h.Slots {
			if s.Active != slotActive1 {
				slot = i
				break
			}
		}
		if slot < 0 {
			return nil, refuse(formats.ErrLimit, "Can't add a keyslot - all keyslots are in use")
		}
	}
	if !c.Force && h.Slots[slot].Active == slotActive1 {
		return nil, refuse(formats.ErrInvalidOption, "Refusing to overwrite active keyslot %d - please erase it first", slot)
	}
	mk, err := v.masterKey(r, c.OpenKey, lim)
	if err != nil {
		return nil, err
	}
	defer clear(mk)
	newPass, err := c.Lookup(*c.NewSecret)
	if err != nil {
		return nil, err
	}
	iterTime := defaultIterTime
	if c.IterTime != nil {
		iterTime = *c.IterTime
	}
	s := h.Slots[slot]
	area, err := v.slotArea1(slot, s)
	if err != nil {
		return nil, err
	}
	perTime, err := iterationsFor(h.HashSpec, v.KeyBytes, iterTime)
	if err != nil {
		return nil, err
	}
	s.Iterations = max(perTime, minIterations)
	if _, err := rand.Read(s.Salt[:]); err != nil {
		return nil, err
	}
	hf, err := hashFunc(h.HashSpec)
	if err != nil {
		return nil, unsupportedf(v.Name, "LUKS1 hash %v", err)
	}
	material := make([]byte, area)
	p := CreateParams{Spec: v.Spec, KeyBytes: v.KeyBytes, Passphrase: newPass}
	at := s
	at.KeyOffset = 0
	kdf := KDF{Type: KDFPBKDF2, Hash: h.HashSpec, Iterations: s.Iterations, Salt: s.Salt[:]}
	if err := writeSlotKDF(material, at, p, kdf, hf, mk); err != nil {
		return nil, err
	}
	s.Active = slotActive1
	h.Slots[slot] = s
	hdr, err := h.encode()
	if err != nil {
		return nil, corruptf(v.Name, "LUKS1 header", 0, "%v", err)
	}
	return []Write{{Off: int64(s.KeyOffset) * sectorSize, Data: material}, {Off: 0, Data: hdr}}, nil
}

func (v *Volume) eraseKeyslots1(r io.ReaderAt, c SlotChange, lim Limits) ([]Write, error) {
	h := *v.hdr1
	if c.NewSecret != nil {
		return nil, refuse(formats.ErrInvalidOption, "'new-secret' must not be given when erasing keyslots")
	}
	if c.IterTime != nil {
		return nil, refuse(formats.ErrInvalidOption, "'iter-time' must not be given when erasing keyslots")
	}
	var oldPass []byte
	if c.OldSecret != nil {
		var err error
		if oldPass, err = c.Lookup(*c.OldSecret); err != nil {
			return nil, err
		}
	}
	active := v.ActiveSlots()
	var erase []int
	switch {
	case c.Keyslot != nil:
		slot := *c.Keyslot
		if slot >= numSlots1 || slot < 0 {
			return nil, refuse(formats.ErrInvalidOption, "Invalid keyslot %d specified, must be between 0 and %d", slot, numSlots1-1)
		}
		if oldPass != nil {
			ok, err := v.opens(r, slot, oldPass, lim)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, refuse(formats.ErrBadKey, "Given keyslot %d doesn't contain the given old password for erase operation", slot)
			}
		}
		if !c.Force && h.Slots[slot].Active != slotActive1 {
			return nil, refuse(formats.ErrInvalidOption, "Given keyslot %d is already erased (inactive) ", slot)
		}
		if !c.Force && active == 1 {
			return nil, refuse(formats.ErrInvalidOption, "Attempt to erase the only active keyslot %d which will erase all the data in the image irreversibly - refusing operation", slot)
		}
		erase = []int{slot}
	case oldPass != nil:
		for i := range h.Slots {
			ok, err := v.opens(r, i, oldPass, lim)
			if err != nil {
				return nil, err
			}
			if ok {
				erase = append(erase, i)
			}
		}
		if len(erase) == 0 {
			return nil, refuse(formats.ErrBadKey, "No keyslots match given (old) password for erase operation")
		}
		if !c.Force && len(erase) == active {
			return nil, refuse(formats.ErrInvalidOption, "All the active keyslots match the (old) password that was given and erasing them will erase all the data in the image irreversibly - refusing operation")
		}
	default:
		return nil, refuse(formats.ErrInvalidOption, "To erase keyslot(s), either explicit keyslot index or the password currently contained in them must be given")
	}
	var garbage []Write
	for _, i := range erase {
		s := h.Slots[i]
		area, err := v.slotArea1(i, s)
		if err != nil {
			return nil, err
		}
		junk := make([]byte, area)
		if _, err := rand.Read(junk); err != nil {
			return nil, err
		}
		garbage = append(garbage, Write{Off: int64(s.KeyOffset) * sectorSize, Data: junk})
		h.Slots[i] = slot1{Active: slotInactive1, KeyOffset: s.KeyOffset, Stripes: s.Stripes}
	}
	hdr, err := h.encode()
	if err != nil {
		return nil, corruptf(v.Name, "LUKS1 header", 0, "%v", err)
	}
	return append([]Write{{Off: 0, Data: hdr}}, garbage...), nil
}

// slotArea1 is the byte length of slot i's key material, checked to lie
// inside the header area (an inactive slot's fields were not checked on
// open).
func (v *Volume) slotArea1(i int, s slot1) (int64, error) {
	if s.Stripes == 0 || s.Stripes > maxStripes || uint64(s.Stripes)*uint64(v.KeyBytes) > maxSplitBytes {
		return 0, corruptf(v.Name, "LUKS1 header", int64(208+48*i+44), "key slot %d: %d stripes of %d bytes (at most %d bytes)", i, s.Stripes, v.KeyBytes, maxSplitBytes)
	}
	n := int64(s.Stripes) * int64(v.KeyBytes)
	off := int64(s.KeyOffset) * sectorSize
	if off < header1Size || off+roundUp(n, sectorSize) > v.PayloadOffset {
		return 0, corruptf(v.Name, "LUKS1 header", int64(208+48*i+40), "key slot %d material at %d (%d bytes) is outside the header area before the payload at %d", i, off, n, v.PayloadOffset)
	}
	return n, nil
}

// opens reports whether passphrase opens slot i (false for an inactive
// slot), as qemu's qcrypto_block_luks_load_key.
func (v *Volume) opens(r io.ReaderAt, i int, passphrase []byte, lim Limits) (bool, error) {
	if !v.Slots[i].Active {
		return false, nil
	}
	lim = lim.WithDefaults()
	mk, _, err := v.tryKeyslot(r, v.Slots[i], passphrase, lim, lim.MaxTotalIterations, 0)
	ok := mk != nil
	clear(mk)
	return ok, err
}
