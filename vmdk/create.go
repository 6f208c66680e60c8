package vmdk

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/deflate"
)

// Writer layout constants (qemu's and VMware's choices).
const (
	embeddedDescSectors = 20                        // embedded descriptor area (10 KiB)
	splitExtentBytes    = 4192256 * sectorSize      // 2047 MiB: VMware's twoGbMaxExtent split size
	defaultHWVersion    = "4"                       // qemu's default ddb.virtualHWVersion
	compat6HWVersion    = "6"                       // with compat6=on
	defaultToolsVersion = "2147483647"              // qemu's ddb.toolsVersion
	streamOverheadBytes = defaultGrain * sectorSize // first grain of a stream at 64 KiB
)

// createConfig is everything Create decides before writing.
type createConfig struct {
	req       formats.CreateRequest
	sub       string
	size      int64
	adapter   string
	hwVersion string
	tools     string
	zeroed    bool
	level     int // streamOptimized zlib level
	backing   string
	parent    *Image
	cid       uint32
	uuid      [16]byte
	contentID [16]byte
	prefix    string // extent file name prefix (base name without extension)
	suffix    string // extension of the image name (".vmdk")
}

// Create makes a new VMDK image of the requested subformat.
func Create(ctx context.Context, req formats.CreateRequest) (formats.Writable, error) {
	return create(ctx, req, rand.Reader)
}

// create is Create with the randomness (CID, uuid) injectable for tests.
func create(ctx context.Context, req formats.CreateRequest, rnd io.Reader) (formats.Writable, error) {
	cfg, err := newConfig(ctx, req, rnd)
	if err != nil {
		return nil, err
	}
	var w formats.Writable
	switch cfg.sub {
	case subStreamOptimized:
		w, err = createStream(cfg)
	case subMonolithicFlat, subTwoGbFlat:
		w, err = createFlat(cfg)
	default:
		w, err = createSparse(cfg)
	}
	if err != nil && cfg.parent != nil {
		cfg.parent.Close()
	}
	return w, err
}

func newConfig(ctx context.Context, req formats.CreateRequest, rnd io.Reader) (*createConfig, error) {
	var o CreateOptions
	if err := req.Options.Decode(&o); err != nil {
		return nil, err
	}
	cfg := &createConfig{req: req, sub: o.Subformat, size: req.Size,
		adapter: o.AdapterType, tools: o.ToolsVersion, zeroed: o.ZeroedGrain, backing: o.BackingFile}
	if cfg.tools == "" {
		cfg.tools = defaultToolsVersion
	}
	hw := o.HWVersion
	switch {
	case o.Compat6 && hw != "" && hw != "undefined":
		return nil, fmt.Errorf("%w: compat6 cannot be enabled with hwversion set", formats.ErrInvalidOption)
	case o.Compat6:
		cfg.hwVersion = compat6HWVersion
	case hw == "" || hw == "undefined":
		cfg.hwVersion = defaultHWVersion
	default:
		cfg.hwVersion = hw
	}
	if strings.ContainsAny(cfg.hwVersion+cfg.tools, "\"\n\r") {
		return nil, fmt.Errorf("%w: quotes or newlines in hwversion/toolsversion", formats.ErrInvalidOption)
	}
	cfg.level = deflate.DefaultLevel
	if o.CompressionLevel != 0 { // an explicit 0 is refused by the option table
		cfg.level = o.CompressionLevel
		if cfg.level < deflate.MinLevel || cfg.level > deflate.MaxLevel {
			return nil, fmt.Errorf("%w: compression_level must be between %d and %d", formats.ErrInvalidOption, deflate.MinLevel, deflate.MaxLevel)
		}
	}
	if bf := o.BackingFmt; bf != "" && bf != Name {
		return nil, fmt.Errorf("%w: backing_fmt must be 'vmdk'", formats.ErrInvalidOption)
	}
	var seed [36]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return nil, err
	}
	cfg.cid = binary.LittleEndian.Uint32(seed[:4])
	copy(cfg.uuid[:], seed[4:20])
	copy(cfg.contentID[:], seed[20:36])
	base := filepath.Base(req.Name)
	if base == "-" || base == "." || base == "/" {
		base = "disk.vmdk" // writing to stdout: any name will do for the extent line
	}
	cfg.suffix = filepath.Ext(base)
	cfg.prefix = strings.TrimSuffix(base, cfg.suffix)
	if cfg.backing != "" {
		if err := cfg.openParent(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.size < 0 || cfg.size%sectorSize != 0 {
		cfg.size = (cfg.size + sectorSize - 1) / sectorSize * sectorSize
	}
	if err := req.Open.Limits.CheckVirtualSize(req.Name, cfg.size); err != nil {
		return nil, err
	}
	return cfg, nil
}

// openParent opens the backing_file of a delta disk.
func (cfg *createConfig) openParent(ctx context.Context) error {
	switch cfg.sub {
	case subMonolithicSparse, subTwoGbSparse:
	default:
		return formats.Unsupportedf(cfg.req.Name, "a backing file with subformat %s (only sparse VMDKs can be delta disks)", cfg.sub)
	}
	if strings.ContainsAny(cfg.backing, "\"\n\r") {
		return fmt.Errorf("%w: backing file name %q", formats.ErrInvalidOption, cfg.backing)
	}
	img, err := formats.OpenReference(ctx, cfg.req.Name, cfg.backing, Name, cfg.req.Open)
	if err != nil {
		return err
	}
	p, ok := img.(*Image)
	if !ok || p.desc == nil {
		img.Close()
		return formats.Unsupportedf(cfg.req.Name, "backing file %q is not a VMDK with a descriptor", cfg.backing)
	}
	cfg.parent = p
	if cfg.size == 0 {
		cfg.size = p.Size()
	}
	return nil
}

// descriptor builds the image's descriptor with the given create type and
// extents.
func (cfg *createConfig) descriptor(createType string, exts []extentLine) *descriptor {
	d := &descriptor{Version: 1, CID: cfg.cid, ParentCID: noParentCID, CreateType: createType, Extents: exts}
	if cfg.parent != nil {
		d.ParentCID = cfg.parent.desc.CID
		d.ParentFileNameHint = cfg.backing
	}
	heads, cyls := cfg.geometry()
	d.DDB = []ddbEntry{
		{"ddb.virtualHWVersion", cfg.hwVersion},
		{"ddb.geometry.cylinders", strconv.FormatInt(cyls, 10)},
		{"ddb.geometry.heads", strconv.Itoa(heads)},
		{"ddb.geometry.sectors", "63"},
		{"ddb.adapterType", cfg.adapter},
		{"ddb.toolsVersion", cfg.tools},
	}
	if createType == subStreamOptimized {
		d.DDB = append(d.DDB,
			ddbEntry{"ddb.longContentID", hex.EncodeToString(cfg.contentID[:])},
			ddbEntry{"ddb.uuid", formatUUID(cfg.uuid)})
	}
	return d
}

// monolithicDescriptor returns the embedded descriptor of a one-extent
// disk (monolithicSparse, streamOptimized) for a capacity: FinishSize
// rewrites it for the final one. A copy of cfg is kept (the geometry and
// extent line follow the size).
func (cfg *createConfig) monolithicDescriptor(createType string) func(size int64) []byte {
	c := *cfg
	return func(size int64) []byte {
		c.size = size
		d := c.descriptor(createType, []extentLine{{Access: "RW", Sectors: uint64(size / sectorSize), Type: "SPARSE", File: c.prefix + c.suffix}})
		return []byte(d.format())
	}
}

// geometry is VMware's: 16 heads for IDE, 255 for SCSI adapters, 63
// sectors per track, cylinders = capacity / (heads*63), capped at 16383 for
// IDE (the ATA limit).
func (cfg *createConfig) geometry() (heads int, cyls int64) {
	heads = 255
	if cfg.adapter == "ide" {
		heads = 16
	}
	cyls = cfg.size / sectorSize / int64(heads*63)
	if cfg.adapter == "ide" {
		cyls = min(cyls, 16383)
	}
	return heads, cyls
}

// formatUUID renders a ddb.uuid as VMware does: 16 hex bytes separated by
// spaces with a dash in the middle.
func formatUUID(u [16]byte) string {
	var b strings.Builder
	for i, c := range u {
		switch {
		case i == 8:
			b.WriteByte('-')
		case i > 0:
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	return b.String()
}

// extentName is VMware's name for extent n (1-based) of kind "s", "f" or
// "flat" (n ignored).
func (cfg *createConfig) extentName(kind string, n int) string {
	suffix := cfg.suffix
	if suffix == "" {
		suffix = ".vmdk"
	}
	if kind == "flat" {
		return cfg.prefix + "-flat" + suffix
	}
	return fmt.Sprintf("%s-%s%03d%s", cfg.prefix, kind, n, suffix)
}

// splitSizes cuts size into extents of at most splitExtentBytes.
func splitSizes(size int64) []int64 {
	var out []int64
	for size > splitExtentBytes {
		out = append(out, splitExtentBytes)
		size -= splitExtentBytes
	}
	return append(out, size)
}

// writeDescriptorFile writes a standalone descriptor to the main file.
func writeDescriptorFile(f formats.File, d *descriptor) error {
	_, err := f.WriteAt([]byte(d.format()), 0)
	return err
}
