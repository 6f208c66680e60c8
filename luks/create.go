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
	area, vol, c, err := lukshdr.Create1(req.Name, p)
	if err != nil {
		return nil, err
	}
	if _, err := req.File.WriteAt(area, 0); err != nil {
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
	size := (req.Size + 511) / 512 * 512
	return formats.Measurement{Required: header + size, FullyAllocated: header + size, Bitmaps: -1}, nil
}
