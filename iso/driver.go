package iso

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "iso"

func init() {
	formats.Register(&formats.Driver{
		Name:  Name,
		Probe: probe,
		Open:  OpenImage,
		Create: func(ctx context.Context, req formats.CreateRequest) (formats.Writable, error) {
			return imageio.Created(createCopy(req))
		},
		RawCompatible: true,
	})
}

// probe finds "CD001" in the first volume descriptor (block 16), whatever
// the system area holds (an isohybrid MBR, a GPT).
func probe(in formats.ProbeInput) int {
	const at = firstVDOffset
	if len(in.Header) < at+blockBytes || string(in.Header[at+1:at+6]) != standardID {
		return formats.ProbeNone
	}
	switch in.Header[at] {
	case vdBoot, vdPrimary, vdSupplementary, vdPartition, vdTerminator:
		return formats.ProbeCertain
	}
	return formats.ProbeWeak
}

// Image is an ISO 9660 image opened as a read-only disk of its file bytes.
type Image struct {
	f    formats.File
	size int64
	info formats.Info
	fs   *FS // nil when the directory tree is unreadable
}

// OpenImage opens f as an ISO image (the Driver's Open).
func OpenImage(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
	if opts.Writable {
		return nil, fmt.Errorf("%s: ISO images are read-only: %w", f.Name(), formats.ErrReadOnly)
	}
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if err := opts.Limits.CheckVirtualSize(f.Name(), size); err != nil {
		return nil, err
	}
	vs, err := readVolumeSet(f, f.Name(), size)
	if err != nil {
		return nil, err
	}
	if err := vs.checkSize(f.Name(), size); err != nil {
		return nil, err
	}
	img := &Image{f: f, size: size}
	img.fs, _ = openSet(f, size, f.Name(), vs)
	info, err := describe(f, f.Name(), size, vs, img.fs)
	if err != nil {
		return nil, err
	}
	img.info = info
	return img, nil
}

func (img *Image) Size() int64    { return img.size }
func (img *Image) Format() string { return Name }
func (img *Image) Close() error   { return img.f.Close() }

// FS returns the file system of the image (nil if its tree is unreadable).
func (img *Image) FS() *FS { return img.fs }

// ReadAt reads the file's bytes.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	return imageio.ReadClipped(p, off, img.size, func(p []byte, off int64) error {
		if err := fileio.ReadFull(img.f, p, off); err != nil {
			return fmt.Errorf("%s: reading at %d: %w", img.f.Name(), off, err)
		}
		return nil
	})
}

// Extents: everything is data, except holes of a sparse file.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	return imageio.FileExtents(img.f, off, off, min(length, img.size-off))
}

// ClusterSize is the logical block size.
func (img *Image) ClusterSize() int64 { return blockBytes }

// Info is the format-specific part of `info`.
func (img *Image) Info() formats.Info { return img.info }

// Description is what an ISO image says about itself (the library form of
// `info`).
type Description struct {
	VolumeID      string
	SystemID      string
	PublisherID   string
	PreparerID    string
	ApplicationID string
	Created       time.Time // zero when unset
	Modified      time.Time
	VolumeBytes   int64
	Joliet        bool
	RockRidge     bool
	UDF           bool
	Boot          []BootEntry
	HybridMBR     bool
	HybridGPT     bool
}

// Describe reads the description of the ISO image in r.
func Describe(r io.ReaderAt, size int64, name string) (Description, error) {
	vs, err := readVolumeSet(r, name, size)
	if err != nil {
		return Description{}, err
	}
	fsys, _ := openSet(r, size, name, vs)
	return describeSet(r, name, size, vs, fsys)
}

func describeSet(r io.ReaderAt, name string, size int64, vs *volumeSet, fsys *FS) (Description, error) {
	p := vs.primary
	d := Description{
		VolumeID: p.VolumeID, SystemID: p.SystemID, PublisherID: p.PublisherID,
		PreparerID: p.PreparerID, ApplicationID: p.ApplicationID,
		VolumeBytes: vs.volumeBytes(), Joliet: vs.joliet != nil,
		RockRidge: fsys != nil && fsys.rockRidge,
	}
	d.Created, _ = parseVDDate(p.Created)
	d.Modified, _ = parseVDDate(p.Modified)
	if vs.bootCatalog >= 0 {
		boot, err := readBootCatalog(r, name, size, vs.bootCatalog)
		if err != nil {
			return d, err
		}
		d.Boot = boot
	}
	sys := make([]byte, systemAreaBytes)
	if err := fileio.ReadFull(r, sys, 0); err == nil {
		h := detectHybrid(sys)
		d.HybridMBR, d.HybridGPT = h.mbr, h.gpt
	}
	d.UDF = hasUDF(r, vs.terminatorAt, size)
	return d, nil
}

// hasUDF looks for a UDF volume recognition sequence after the terminator.
func hasUDF(r io.ReaderAt, after, size int64) bool {
	buf := make([]byte, 6)
	for i := int64(1); i <= 8; i++ {
		off := after + i*blockBytes
		if off+6 > size || fileio.ReadFull(r, buf, off) != nil {
			return false
		}
		if id := string(buf[1:6]); id == "NSR02" || id == "NSR03" {
			return true
		}
	}
	return false
}

func describe(r io.ReaderAt, name string, size int64, vs *volumeSet, fsys *FS) (formats.Info, error) {
	d, err := describeSet(r, name, size, vs, fsys)
	if err != nil {
		return formats.Info{}, err
	}
	return formats.Info{ClusterSize: blockBytes, Details: d.Details()}, nil
}

// Details are what `info` reports of an ISO 9660 image under
// format-specific (qemu sees a raw disk: these are vdisk's), in this order.
type Details struct {
	VolumeID         string      `json:"volume-id"`
	SystemID         string      `json:"system-id"`
	PublisherID      string      `json:"publisher-id"`
	PreparerID       string      `json:"data-preparer-id"`
	ApplicationID    string      `json:"application-id"`
	CreationDate     string      `json:"creation-date"` // RFC 3339; "" when unset
	ModificationDate string      `json:"modification-date"`
	VolumeSize       int64       `json:"volume-size"` // bytes
	Joliet           bool        `json:"joliet"`
	RockRidge        bool        `json:"rock-ridge"`
	UDF              bool        `json:"udf"`
	ElTorito         []BootEntry `json:"el-torito"` // boot catalog entries; empty when none
	HybridMBR        bool        `json:"hybrid-mbr"`
	HybridGPT        bool        `json:"hybrid-gpt"`
}

// Details is the description as `info`'s format-specific details.
func (d Description) Details() *Details {
	date := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339)
	}
	return &Details{
		VolumeID: d.VolumeID, SystemID: d.SystemID, PublisherID: d.PublisherID,
		PreparerID: d.PreparerID, ApplicationID: d.ApplicationID,
		CreationDate: date(d.Created), ModificationDate: date(d.Modified),
		VolumeSize: d.VolumeBytes, Joliet: d.Joliet, RockRidge: d.RockRidge, UDF: d.UDF,
		ElTorito:  append([]BootEntry{}, d.Boot...),
		HybridMBR: d.HybridMBR, HybridGPT: d.HybridGPT,
	}
}

// copyImage is an "iso" conversion target: the bytes of the source, which
// must itself be an ISO 9660 image (checked when the image is flushed).
type copyImage struct {
	f    formats.File
	name string
	size int64
}

func createCopy(req formats.CreateRequest) (*copyImage, error) {
	if req.Size < firstVDOffset+2*blockBytes {
		return nil, fmt.Errorf("%s: %w: a %d-byte source cannot be an ISO 9660 image (-O iso copies ISO images only; build one with `vdisk iso create`)",
			req.Name, formats.ErrUnsupported, req.Size)
	}
	if err := req.File.Truncate(req.Size); err != nil {
		return nil, err
	}
	return &copyImage{f: req.File, name: req.Name, size: req.Size}, nil
}

func (c *copyImage) Size() int64    { return c.size }
func (c *copyImage) Format() string { return Name }
func (c *copyImage) ReadAt(p []byte, off int64) (int, error) {
	return imageio.ReadClipped(p, off, c.size, func(p []byte, off int64) error { return fileio.ReadFull(c.f, p, off) })
}
func (c *copyImage) Extents(off, length int64) ([]formats.Extent, error) {
	return imageio.AllData(off, min(length, c.size-off)), nil
}
func (c *copyImage) WriteAt(p []byte, off int64) (int, error) {
	if err := imageio.CheckWrite(c.name, len(p), off, c.size); err != nil {
		return 0, err
	}
	return c.f.WriteAt(p, off)
}

// Flush refuses a result that is not an ISO 9660 image.
func (c *copyImage) Flush() error {
	if _, err := readVolumeSet(c.f, c.name, c.size); err != nil {
		return fmt.Errorf("%s: %w: the source is not an ISO 9660 image (no volume descriptor set at byte 32768); -O iso copies ISO images only, build one with `vdisk iso create`",
			c.name, formats.ErrUnsupported)
	}
	return nil
}
func (c *copyImage) Close() error { return c.f.Close() }
