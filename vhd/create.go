package vhd

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/guid"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Limits of the images vdisk creates.
const (
	// maxDynamicSize is the largest dynamic disk: 2040 GiB, the
	// specification's limit (BAT entries are 32-bit sector numbers), which
	// qemu also enforces.
	maxDynamicSize = 0xFF000000 * sectorSize
	// maxFixedSize is the largest fixed disk vdisk writes (Azure accepts up
	// to 32 TiB; qemu reads at most 2040 GiB).
	maxFixedSize = 64 << 40
	mib          = 1 << 20
)

// CreateOptions are the vpc create options, typed: the zero value is
// qemu-img's defaults (a dynamic disk with 2 MiB blocks, sized by CHS
// geometry). They are the one source of the -o names, defaults and help
// (createOptions); library callers pass them through
// formats.OptionsOf(driver.CreateOptions, vhd.CreateOptions{...}).
//
// Subformat "" and a nil ForceSize are qemu's defaults (dynamic, CHS
// sizing) except with Azure, which makes them fixed and exact; Azure
// refuses an explicit subformat=dynamic or force_size=off.
type CreateOptions struct {
	Subformat    string `opt:"subformat" values:"dynamic,fixed" help:"Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} "`
	ForceSize    *bool  `opt:"force_size" help:"Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation"`
	BlockSize    int64  `opt:"block_size,size" default:"2M" help:"Block size of a dynamic or differencing disk (a power of two, 512 bytes to 256 MiB; vdisk)"`
	Azure        bool   `opt:"azure" default:"off" help:"Make an Azure-ready disk: fixed, exact size, refused unless the size is a whole MiB (vdisk)"`
	AzureRoundUp bool   `opt:"azure_round_up" default:"off" help:"With azure=on, round the size up to the next whole MiB instead of refusing it (vdisk)"`
	BackingFile  string `opt:"backing_file" help:"File name of the parent VHD: creates a differencing disk (vdisk)"`
	BackingFmt   string `opt:"backing_fmt" help:"Image format of the parent (vpc) (vdisk)"`
}

// createOptions are the -o table.
var createOptions = formats.OptionSpecsOf(CreateOptions{})

// decodeOptions reads the -o options (or a library caller's typed ones)
// into CreateOptions, defaults filled in.
func decodeOptions(o formats.Options) (CreateOptions, error) {
	var co CreateOptions
	err := o.Decode(&co)
	return co, err
}

// plan is the layout of a new image.
type plan struct {
	fixed     bool
	size      int64 // virtual size, bytes
	geo       geometry
	creator   string
	blockSize int64
}

// planCreate validates the options and sizes the image of size bytes.
func planCreate(o CreateOptions, size int64) (plan, error) {
	p := plan{fixed: o.Subformat == "fixed", blockSize: defaultBlockSize}
	forceSize := o.ForceSize != nil && *o.ForceSize
	if o.Azure {
		if o.Subformat != "" && !p.fixed {
			return p, fmt.Errorf("%w: azure=on needs subformat=fixed: Azure only accepts fixed VHDs", formats.ErrInvalidOption)
		}
		if o.ForceSize != nil && !forceSize {
			return p, fmt.Errorf("%w: azure=on needs force_size=on: Azure needs the exact size in the footer", formats.ErrInvalidOption)
		}
		p.fixed, forceSize = true, true
		if size%mib != 0 {
			up := roundUp(size, mib)
			if !o.AzureRoundUp {
				return p, fmt.Errorf("%w: size %d is not a whole number of MiB, which Azure refuses: "+
					"round the disk up to %d bytes (%d MiB) first, or add -o azure_round_up=on to pad it with zeros",
					formats.ErrInvalidOption, size, up, up/mib)
			}
			size = up
		}
	} else if o.AzureRoundUp {
		return p, fmt.Errorf("%w: azure_round_up=on only applies with azure=on", formats.ErrInvalidOption)
	}
	if size < 0 {
		return p, fmt.Errorf("%w: negative size %d", formats.ErrInvalidOption, size)
	}
	sectors := (size + sectorSize - 1) / sectorSize
	if forceSize {
		p.geo, p.creator = geometryFor(sectors), creatorQemu2
	} else {
		p.geo, sectors = roundUpToGeometry(sectors)
		p.creator = creatorQemu
	}
	p.size = sectors * sectorSize
	limit, kind := int64(maxDynamicSize), "dynamic"
	if p.fixed {
		limit, kind = maxFixedSize, "fixed"
	}
	if p.size > limit {
		return p, fmt.Errorf("%w: size %d exceeds the %s VHD maximum of %d bytes", formats.ErrInvalidOption, p.size, kind, limit)
	}
	if !p.fixed {
		if err := p.setBlockSize(o.BlockSize); err != nil {
			return p, err
		}
	}
	return p, nil
}

// setBlockSize checks and sets the block_size option (2 MiB by default).
func (p *plan) setBlockSize(bs int64) error {
	p.blockSize = bs
	if bs < sectorSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("%w: block_size %d must be a power of two from 512 to %d", formats.ErrInvalidOption, bs, maxBlockSize)
	}
	if err := (formats.Limits{}).CheckTable("", "BAT", -1, uint64(p.entries()), 4); err != nil {
		return fmt.Errorf("%w: block_size %d needs too large a BAT: %v", formats.ErrInvalidOption, bs, err)
	}
	return nil
}

func (p *plan) entries() int { return int((p.size + p.blockSize - 1) / p.blockSize) }

// newFooter builds the footer of a new disk.
func newFooter(p plan, t diskType, now time.Time) footer {
	ft := footer{
		Features:        featureBits,
		FileVersion:     fileVersion,
		DataOffset:      noDataOffset,
		Timestamp:       vhdTime(now),
		CreatorVersion:  creatorVer,
		OriginalSize:    uint64(p.size),
		CurrentSize:     uint64(p.size),
		Cylinders:       p.geo.Cylinders,
		Heads:           p.geo.Heads,
		SectorsPerTrack: p.geo.SectorsPerTrack,
		DiskType:        t,
		UniqueID:        newUUID(),
	}
	copy(ft.Cookie[:], footerCookie)
	copy(ft.CreatorApp[:], p.creator)
	copy(ft.CreatorOS[:], creatorOSWin)
	if t != typeFixed {
		ft.DataOffset = footerSize
	}
	return ft
}

// newUUID returns a random (version 4) UUID; crypto/rand does not fail
// (since Go 1.24 it ends the program instead), so there is no error.
func newUUID() [16]byte {
	u, _ := guid.New()
	return u
}

// isStream reports whether f can only be written sequentially (a pipe).
func isStream(f formats.File) bool { return formats.IsSequential(f) }

// Create makes a new VHD in req.File: dynamic (default), fixed, or
// differencing when the backing_file option names a parent VHD.
func Create(ctx context.Context, req formats.CreateRequest) (*Image, error) {
	o, err := decodeOptions(req.Options)
	if err != nil {
		return nil, err
	}
	if o.BackingFile != "" {
		return createDifferencing(ctx, req, o)
	}
	p, err := planCreate(o, req.Size)
	if err != nil {
		return nil, err
	}
	if p.fixed {
		return createFixed(req, p)
	}
	if isStream(req.File) {
		return nil, formats.Unsupportedf(req.Name, "a dynamic VHD cannot be written to a stream (its BAT comes first); use -o subformat=fixed")
	}
	ft := newFooter(p, typeDynamic, time.Now())
	return createDynamic(req, p, ft, nil)
}

// createFixed writes the footer of a fixed disk behind the data area now,
// or, on a stream, at Flush after the data.
func createFixed(req formats.CreateRequest, p plan) (*Image, error) {
	img := &Image{f: req.File, name: req.Name, ft: newFooter(p, typeFixed, time.Now()),
		footerOff: p.size, footerLen: footerSize, size: p.size, writable: true, stream: isStream(req.File)}
	if img.stream {
		return img, nil
	}
	if err := img.writeFooterAt(p.size); err != nil {
		return nil, err
	}
	img.fileSize = p.size + footerSize
	return img, nil
}

// parentInfo is what a new differencing disk records about its parent.
type parentInfo struct {
	img       *Image
	timestamp uint32 // the parent file's modification time, else its footer's
	name      string // the parent file's base name, for the header
	relative  string // W2ru locator: path relative to the child's directory
	absolute  string // W2ku locator: absolute path
}

// createDynamic lays out footer copy, header, BAT (and parent locators), and
// writes them with the trailing footer.
func createDynamic(req formats.CreateRequest, p plan, ft footer, par *parentInfo) (*Image, error) {
	entries := p.entries()
	img := &Image{f: req.File, name: req.Name, ft: ft, footerLen: footerSize, size: p.size,
		blockSize: p.blockSize, bitmapSize: bitmapBytes(p.blockSize), writable: true}
	h := &img.hdr
	copy(h.Cookie[:], headerCookie)
	h.DataOffset = noDataOffset
	h.TableOffset = footerSize + headerSize
	h.HeaderVersion = headerVersion
	h.MaxTableEntries = uint32(entries)
	h.BlockSize = uint32(p.blockSize)
	img.batEnd = roundUp(int64(h.TableOffset)+4*int64(entries), sectorSize)
	meta := make([]byte, img.batEnd)
	for i := int(h.TableOffset); i < len(meta); i++ {
		meta[i] = 0xFF // unused entries and the padding of the BAT's last sector
	}
	end := img.batEnd
	if par != nil {
		var locData [][]byte
		end, locData = img.setParent(par, end)
		for _, d := range locData {
			meta = append(meta, d...)
		}
	}
	copy(meta[0:], img.ft.encode())
	copy(meta[footerSize:], h.encode())
	if _, err := req.File.WriteAt(meta, 0); err != nil {
		return nil, fmt.Errorf("%s: writing headers: %w", req.Name, err)
	}
	img.bat = make([]uint32, entries)
	for i := range img.bat {
		img.bat[i] = batUnused
	}
	img.full = make([]uint64, (entries+63)/64)
	img.nextFree, img.dirtyLo = end, entries
	if par != nil {
		img.parent = par.img
		img.parentRef, img.parentTSMatch = par.relative, true
		img.bitmaps = newBitmapCache(req.Open.Limits.WithDefaults().CacheBytes, img.bitmapSize, nil)
	}
	if err := img.writeFooterAt(end); err != nil {
		return nil, err
	}
	img.fileSize = end + footerSize
	return img, nil
}

// setParent fills the header's parent fields and W2ru/W2ku locators whose
// data follows the BAT at dataOff; it returns the end of the locator data
// and the data, sector-padded.
func (img *Image) setParent(par *parentInfo, dataOff int64) (int64, [][]byte) {
	h := &img.hdr
	h.ParentUniqueID = par.img.ft.UniqueID
	h.ParentTimestamp = par.timestamp
	h.setParentName(par.name)
	var data [][]byte
	for i, loc := range []struct {
		code uint32
		path string
	}{{platW2ru, par.relative}, {platW2ku, par.absolute}} {
		b := encodeUTF16(loc.path, binary.LittleEndian)
		space := max(roundUp(int64(len(b)), sectorSize), sectorSize)
		h.Locators[i] = locator{PlatformCode: loc.code, DataSpace: uint32(space),
			DataLength: uint32(len(b)), DataOffset: uint64(dataOff)}
		padded := make([]byte, space)
		copy(padded, b)
		data = append(data, padded)
		dataOff += space
	}
	return dataOff, data
}

// createDifferencing opens the parent named by backing_file (through the
// resolver, relative to the new image's directory) and makes a differencing
// disk over it.
func createDifferencing(ctx context.Context, req formats.CreateRequest, o CreateOptions) (*Image, error) {
	if f := o.BackingFmt; f != "" && f != Name && f != "vhd" {
		return nil, formats.Unsupportedf(req.Name, "a differencing VHD needs a VHD parent, not backing_fmt=%s", f)
	}
	if o.Subformat == "fixed" || o.Azure {
		return nil, formats.Unsupportedf(req.Name, "a differencing VHD cannot be fixed")
	}
	if isStream(req.File) {
		return nil, formats.Unsupportedf(req.Name, "a differencing VHD cannot be written to a stream")
	}
	ref := o.BackingFile
	pimg, err := formats.OpenReference(ctx, req.Name, ref, Name, req.Open)
	if err != nil {
		return nil, err
	}
	parent, ok := pimg.(*Image)
	if !ok {
		pimg.Close()
		return nil, formats.Unsupportedf(req.Name, "parent %q is %s, not a VHD", ref, pimg.Format())
	}
	img, err := newDifferencing(req, o, parent, ref)
	if err != nil {
		parent.Close()
		return nil, err
	}
	return img, nil
}

func newDifferencing(req formats.CreateRequest, o CreateOptions, parent *Image, ref string) (*Image, error) {
	size := req.Size
	if size == 0 {
		size = parent.Size()
	}
	p := plan{size: roundUp(size, sectorSize)}
	if err := p.setBlockSize(o.BlockSize); err != nil {
		return nil, err
	}
	if p.size > maxDynamicSize {
		return nil, fmt.Errorf("%w: size %d exceeds the differencing VHD maximum of %d bytes", formats.ErrInvalidOption, p.size, int64(maxDynamicSize))
	}
	// Keep the exact size: CHS-sized when the geometry gives it exactly,
	// else current_size semantics.
	p.geo, p.creator = geometryFor(p.size/sectorSize), creatorQemu2
	if p.geo.sectors()*sectorSize == p.size {
		p.creator = creatorQemu
	}
	dir := filepath.Dir(req.Name)
	abs := filepath.Clean(filepath.Join(dir, filepath.FromSlash(ref)))
	if filepath.IsAbs(ref) {
		abs = filepath.Clean(ref)
	}
	if a, err := filepath.Abs(abs); err == nil {
		abs = a
	}
	rel := filepath.ToSlash(ref)
	if filepath.IsAbs(ref) {
		if r, err := relativeTo(dir, abs); err == nil {
			rel = r
		}
	}
	rel = strings.TrimPrefix(rel, "./")
	if !strings.HasPrefix(rel, "../") {
		rel = "./" + rel
	}
	par := &parentInfo{img: parent, name: filepath.Base(abs),
		relative: strings.ReplaceAll(rel, "/", `\`),
		absolute: strings.ReplaceAll(filepath.ToSlash(abs), "/", `\`)}
	par.timestamp = parent.ft.Timestamp
	if path, err := req.Open.References().Resolve(req.Name, ref); err == nil {
		if st, err := os.Stat(path); err == nil {
			par.timestamp = vhdTime(st.ModTime())
		}
	}
	ft := newFooter(p, typeDifferencing, time.Now())
	return createDynamic(req, p, ft, par)
}

func relativeTo(dir, path string) (string, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(absDir, path)
	return filepath.ToSlash(r), err
}

// writeFooterAt writes the footer at off (the end of the file).
func (img *Image) writeFooterAt(off int64) error {
	if _, err := img.f.WriteAt(img.ft.encode(), off); err != nil {
		return fmt.Errorf("%s: writing footer: %w", img.name, err)
	}
	return nil
}

// measure: a fixed disk needs its size plus the footer; a dynamic one its
// metadata plus every block holding data.
func measure(ctx context.Context, req formats.MeasureRequest) (formats.Measurement, error) {
	o, err := decodeOptions(req.Options)
	if err != nil {
		return formats.Measurement{}, err
	}
	p, err := planCreate(o, req.Size)
	if err != nil {
		return formats.Measurement{}, err
	}
	if p.fixed {
		n := p.size + footerSize
		return formats.Measurement{Required: n, FullyAllocated: n, Bitmaps: -1}, nil
	}
	meta := roundUp(footerSize+headerSize+4*int64(p.entries()), sectorSize) + footerSize
	perBlock := bitmapBytes(p.blockSize) + p.blockSize
	full := meta + int64(p.entries())*perBlock
	used := full
	if req.Source != nil {
		blocks, err := imageio.DataBlocks(ctx, req.Source, p.blockSize)
		if err != nil {
			return formats.Measurement{}, err
		}
		used = meta + blocks*perBlock
	}
	return formats.Measurement{Required: used, FullyAllocated: full, Bitmaps: -1}, nil
}
