package qcow2

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
	lukshdr "github.com/vdiskio/vdisk/internal/luks"
)

// AmendSecrets is what amend's encrypt.* options need besides the option
// text: the secrets their values name by id (qemu's --object secret) and
// the passphrase the image was opened with (qemu's encrypt.key-secret;
// it unlocks the master key for a new key slot).
type AmendSecrets struct {
	Secrets map[string][]byte
	Key     []byte
	// Force is qemu-img amend --force: an active key slot may be
	// overwritten and the last one erased.
	Force bool
}

// cryptAmend is a parsed encrypt.* amend: the key slot change.
type cryptAmend struct {
	change lukshdr.SlotChange
}

// parseCryptAmend reads the encrypt.* options (nil when there are none),
// checked as qemu checks them before it touches the header.
func (img *Image) parseCryptAmend(opts map[string]string) (*cryptAmend, error) {
	var keys []string
	for k := range opts {
		if strings.HasPrefix(k, "encrypt.") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	ca := &cryptAmend{}
	ch := &ca.change
	for _, k := range []string{"encrypt.keyslot", "encrypt.iter-time"} {
		v, ok := opts[k]
		if !ok {
			continue
		}
		n, err := parseQemuNumber(v)
		if err != nil {
			return nil, amendRefusal(formats.ErrInvalidOption, "", "Parameter '%s' expects a number", k)
		}
		if k == "encrypt.keyslot" {
			slot := int(int32(n))
			ch.Keyslot = &slot
		} else {
			d := time.Duration(n) * time.Millisecond
			ch.IterTime = &d
		}
	}
	if img.crypt == nil {
		return nil, amendRefusal(formats.ErrInvalidOption, "", "Can't amend encryption options - encryption not present")
	}
	if img.crypt.method != cryptLUKS {
		return nil, amendRefusal(formats.ErrUnsupported, "", "Only LUKS encryption options can be amended")
	}
	state, ok := opts["encrypt.state"]
	switch {
	case !ok:
		return nil, amendRefusal(formats.ErrInvalidOption, "", "Parameter 'state' is missing")
	case state == "active":
		ch.Activate = true
	case state == "inactive":
	default:
		return nil, amendRefusal(formats.ErrInvalidOption, "", "Parameter 'state' does not accept value '%s'", state)
	}
	if v, ok := opts["encrypt.new-secret"]; ok {
		ch.NewSecret = &v
	}
	if v, ok := opts["encrypt.old-secret"]; ok {
		ch.OldSecret = &v
	}
	return ca, nil
}

// parseQemuNumber parses a QemuOpts number (decimal, 0x hex or 0 octal;
// a leading minus wraps, as qemu_strtou64 does).
func parseQemuNumber(v string) (uint64, error) {
	neg := strings.HasPrefix(v, "-")
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "-"), 0, 64)
	if err != nil {
		return 0, err
	}
	if neg {
		n = -n
	}
	return n, nil
}

// amendCrypto applies a key slot change to the LUKS header: the writes
// the header plans, in its order, with barriers between, then the header
// is parsed again (caller holds img.mu; the image is flushed).
func (img *Image) amendCrypto(ca *cryptAmend, s AmendSecrets) error {
	c := img.crypt
	ch := ca.change
	ch.Force, ch.OpenKey = s.Force, s.Key
	ch.Lookup = func(id string) ([]byte, error) {
		sec, ok := s.Secrets[id]
		if !ok {
			return nil, amendRefusal(formats.ErrKeyRequired, "", "No secret with id '%s'", id)
		}
		return sec, nil
	}
	writes, err := c.vol.AmendSlots1(c.header, ch, lukshdr.LimitsFrom(img.limits))
	if err != nil {
		if re, ok := err.(*lukshdr.RefusalError); ok {
			return amendRefusal(re.Kind, "", "%s", re.Msg)
		}
		return err
	}
	base, length := int64(img.ext.Crypto.Offset), int64(img.ext.Crypto.Length)
	for _, w := range writes {
		if w.Off < 0 || w.Off+int64(len(w.Data)) > length {
			return formats.Corruptf(img.name, "LUKS header", base+w.Off, "a key slot write of %d bytes is outside the %d-byte header area", len(w.Data), length)
		}
		if _, err := img.f.WriteAt(w.Data, base+w.Off); err != nil {
			return fmt.Errorf("%s: writing the LUKS header at %#x: %w", img.name, base+w.Off, err)
		}
		if err := img.barrier(); err != nil {
			return err
		}
	}
	fresh := &crypt{method: c.method}
	if err := img.openLUKS(fresh); err != nil {
		return err
	}
	c.vol, c.header = fresh.vol, fresh.header
	return nil
}
