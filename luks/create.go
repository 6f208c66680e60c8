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
	p, err := lukshdr.ParamsFromOptions(req.Name, "", req.Options, req.Open.Secrets)
	if err != nil {
		return nil, err
	}
	size := (req.Size + 511) / 512 * 512
	if err := req.Open.Limits.CheckVirtualSize(req.Name, size); err != nil {
		return nil, err
	}
	create := lukshdr.Create1
	switch o := req.Options; o.String("luks-type") {
	case "luks2":
		p2 := lukshdr.Params2{KDF: o.String("pbkdf"), MemoryKiB: uint32(o.Int("pbkdf-memory")), Time: uint32(o.Int("pbkdf-time"))}
		create = func(name string, p lukshdr.CreateParams) ([]byte, *lukshdr.Volume, *lukshdr.SectorCipher, error) {
			return lukshdr.Create2(name, p, p2)
		}
	default:
		if o.IsSet("pbkdf") || o.IsSet("pbkdf-memory") || o.IsSet("pbkdf-time") {
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
	p, err := lukshdr.CipherFromOptions("measure", "", req.Options)
	if err != nil {
		return formats.Measurement{}, err
	}
	header := lukshdr.HeaderSize1(p)
	if req.Options.String("luks-type") == "luks2" {
		header = lukshdr.HeaderSize2
	}
	size := (req.Size + 511) / 512 * 512
	return formats.Measurement{Required: header + size, FullyAllocated: header + size, Bitmaps: -1}, nil
}

// luks2Options are vdisk's own create options (qemu 7.2 writes LUKS1 only).
var luks2Options = []formats.OptionSpec{
	{Name: "luks-type", Type: formats.OptString, Default: "luks1", Values: []string{"luks1", "luks2"},
		Help: "LUKS version of the new volume (vdisk; qemu reads luks1 only)"},
	{Name: "pbkdf", Type: formats.OptString, Values: []string{"pbkdf2", "argon2i", "argon2id"},
		Help: "LUKS2 key slot KDF, default argon2id (vdisk)"},
	{Name: "pbkdf-memory", Type: formats.OptInt, Help: "LUKS2 Argon2 memory in KiB, default 1048576 (vdisk)"},
	{Name: "pbkdf-time", Type: formats.OptInt, Help: "LUKS2 Argon2 passes, default 4 (vdisk)"},
}
