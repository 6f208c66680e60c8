package luks

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	lukshdr "github.com/vdiskio/vdisk/internal/luks"
)

// Create writes a LUKS1 header as `qemu-img create -f luks` does and sizes
// the file to the header plus size bytes of (uninitialised) payload.
func Create(ctx context.Context, req formats.CreateRequest) (*Image, error) {
	var o CreateOptions
	if err := req.Options.Decode(&o); err != nil {
		return nil, err
	}
	p, err := lukshdr.ParamsFromOptions(req.Name, "", o.cipher(), req.Open.Secrets)
	if err != nil {
		return nil, err
	}
	size := (req.Size + 511) / 512 * 512
	if err := req.Open.Limits.CheckVirtualSize(req.Name, size); err != nil {
		return nil, err
	}
	create := lukshdr.Create1
	switch o.LUKSType {
	case "luks2":
		p2 := lukshdr.Params2{KDF: o.PBKDF, MemoryKiB: uint32(o.PBKDFMemory), Time: uint32(o.PBKDFTime)}
		create = func(name string, p lukshdr.CreateParams) ([]byte, *lukshdr.Volume, *lukshdr.SectorCipher, error) {
			return lukshdr.Create2(name, p, p2)
		}
	default:
		if o.PBKDF != "" || o.PBKDFMemory != 0 || o.PBKDFTime != 0 {
			return nil, fmt.Errorf("%s: %w: pbkdf, pbkdf-memory and pbkdf-time need luks-type=luks2", req.Name, formats.ErrInvalidOption)
		}
	}
	area, vol, c, err := create(req.Name, p)
	if err != nil {
		return nil, err
	}
	// Only the header and the active key material: the unused slot areas
	// stay holes, as qemu leaves them.
	used := int64(4096)
	if vol.Version == 2 {
		used = 2 * vol.HeaderSize
	}
	for _, s := range vol.Slots {
		if s.Active {
			used = max(used, s.Area+s.AreaSize)
		}
	}
	if _, err := req.File.WriteAt(area[:min(used, int64(len(area)))], 0); err != nil {
		return nil, fmt.Errorf("%s: writing the LUKS header: %w", req.Name, err)
	}
	if err := req.File.Truncate(vol.PayloadOffset + size); err != nil {
		return nil, err
	}
	return &Image{f: req.File, name: req.Name, vol: vol, cipher: c, size: size, sector: int64(vol.SectorSize)}, nil
}

// measure is qemu's: the header plus the whole payload, always allocated.
func measure(ctx context.Context, req formats.MeasureRequest) (formats.Measurement, error) {
	var o CreateOptions
	if err := req.Options.Decode(&o); err != nil {
		return formats.Measurement{}, err
	}
	p, err := lukshdr.CipherFromOptions("measure", "", o.cipher())
	if err != nil {
		return formats.Measurement{}, err
	}
	header := lukshdr.HeaderSize1(p)
	if o.LUKSType == "luks2" {
		header = lukshdr.HeaderSize2
	}
	size := (req.Size + 511) / 512 * 512
	return formats.Measurement{Required: header + size, FullyAllocated: header + size, Bitmaps: -1}, nil
}

// CreateOptions are the luks create options, typed: the zero value is
// qemu's defaults (a LUKS1 volume, aes-256-xts-plain64, sha256, 2 s of
// PBKDF2), and KeySecret names the secret (formats.OpenOptions.Secrets)
// holding the passphrase; IterTime is in milliseconds, 0 for the default.
// They are the one source of the -o names and help; the LUKS2 options are
// vdisk's own (qemu 7.2 writes LUKS1 only).
type CreateOptions struct {
	CipherAlg    string `opt:"cipher-alg" help:"Name of encryption cipher algorithm"`
	CipherMode   string `opt:"cipher-mode" help:"Name of encryption cipher mode"`
	HashAlg      string `opt:"hash-alg" help:"Name of encryption hash algorithm"`
	IterTime     int64  `opt:"iter-time" min:"1" max:"2147483648" help:"Time to spend in PBKDF in milliseconds"`
	IVGenAlg     string `opt:"ivgen-alg" help:"Name of IV generator algorithm"`
	IVGenHashAlg string `opt:"ivgen-hash-alg" help:"Name of IV generator hash algorithm"`
	KeySecret    string `opt:"key-secret" help:"ID of the secret that provides the keyslot passphrase"`
	LUKSType     string `opt:"luks-type" default:"luks1" values:"luks1,luks2" help:"LUKS version of the new volume (vdisk; qemu reads luks1 only)"`
	PBKDF        string `opt:"pbkdf" values:"pbkdf2,argon2i,argon2id" help:"LUKS2 key slot KDF, default argon2id (vdisk)"`
	PBKDFMemory  int64  `opt:"pbkdf-memory" help:"LUKS2 Argon2 memory in KiB, default 1048576 (vdisk)"`
	PBKDFTime    int64  `opt:"pbkdf-time" help:"LUKS2 Argon2 passes, default 4 (vdisk)"`
}

var createOptions = formats.OptionSpecsOf(CreateOptions{})

// cipher are the options the LUKS header code takes.
func (o CreateOptions) cipher() lukshdr.CipherOptions {
	return lukshdr.CipherOptions{KeySecret: o.KeySecret, CipherAlg: o.CipherAlg, CipherMode: o.CipherMode,
		IVGenAlg: o.IVGenAlg, IVGenHashAlg: o.IVGenHashAlg, HashAlg: o.HashAlg, IterTimeMs: o.IterTime}
}
