package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileid"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "vmdk"

// descriptorMagic starts every text descriptor.
const descriptorMagic = "# Disk DescriptorFile"

func init() {
	formats.Register(&formats.Driver{
		Name:          Name,
		Probe:         probe,
		Open:          Open,
		Create:        imageio.CreateWith(Create),
		CreateOptions: createOptions,
	})
}

func probe(in formats.ProbeInput) int {
	if len(in.Header) >= 4 {
		switch binary.LittleEndian.Uint32(in.Header) {
		case sparseMagic:
			return formats.ProbeCertain
		case cowdMagic:
			return formats.ProbeWeak
		}
	}
	if bytes.HasPrefix(in.Header, []byte(descriptorMagic)) {
		return formats.ProbeCertain
	}
	return formats.ProbeNone
}

// Extent kinds of an open image.
const (
	kindFlat = iota
	kindZero
	kindSparse
)

// extent is one extent of an open image, covering [start, start+length)
// of the virtual disk.
type extent struct {
	start, length int64
	kind          int
	typ           string       // descriptor type ("" for the monolithic case)
	file          formats.File // nil for ZERO
	path          string       // the extent file's path; "" when it is the image's own file
	flatOff       int64        // FLAT/VMFS: byte offset of the extent in file
	sp            *sparseExtent
}

// Image is an open VMDK image (read-only).
type Image struct {
	f           formats.File
	name        string
	desc        *descriptor
	exts        []*extent
	size        int64
	owned       []formats.File // extent files opened through the resolver
	ownedIDs    []fileid.ID
	byName      map[string]formats.File
	sparseBy    map[formats.File]*sparseExtent // each sparse extent file, opened once
	backing     formats.Image
	backingPath string
	cache       *gtCache

	rw   *inPlace   // set when opened writable (inplace.go)
	rwMu sync.Mutex // guards rw's descriptor changes
}

// Open opens f as a VMDK image.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
	lim := opts.Limits.WithDefaults()
	img := &Image{f: f, name: f.Name(), cache: newGTCache(lim.CacheBytes, opts.EnsureBudget())}
	err := img.open(ctx, opts)
	if err == nil && opts.Writable {
		err = img.openWritable()
	}
	if err != nil {
		img.closeOwned()
		return nil, err
	}
	return img, nil
}

func (img *Image) open(ctx context.Context, opts formats.OpenOptions) error {
	size, err := img.f.Size()
	if err != nil {
		return err
	}
	if size < 4 {
		return formats.Corruptf(img.name, "header", 0, "file of %d bytes is too short", size)
	}
	head := make([]byte, min(size, headerSize))
	if _, err := img.f.ReadAt(head, 0); err != nil && err != io.EOF {
		return fmt.Errorf("%s: reading header: %w", img.name, err)
	}
	switch binary.LittleEndian.Uint32(head) {
	case sparseMagic:
		if err := img.openMonolithic(head, opts); err != nil {
			return err
		}
	case cowdMagic:
		return formats.Unsupportedf(img.name, "ESX COWD (vmfsSparse) extents")
	default:
		if size > maxDescBytes {
			return formats.Limitf(img.name, "descriptor", 0, "descriptor file of %d bytes exceeds %d", size, maxDescBytes)
		}
		text := make([]byte, size)
		if _, err := img.f.ReadAt(text, 0); err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading descriptor: %w", img.name, err)
		}
		if i := bytes.IndexByte(text, 0); i >= 0 {
			text = text[:i] // qemu pads descriptor files with NULs
		}
		if !bytes.HasPrefix(text, []byte(descriptorMagic)) {
			return formats.Corruptf(img.name, "descriptor", 0, "neither a sparse header nor a text descriptor")
		}
		if img.desc, err = parseDescriptor(img.name, text); err != nil {
			return err
		}
		if err := img.openExtents(opts); err != nil {
			return err
		}
	}
	for _, e := range img.exts {
		img.size += e.length
	}
	if err := opts.Limits.CheckVirtualSize(img.name, img.size); err != nil {
		return err
	}
	return img.openParent(ctx, opts)
}

// openMonolithic opens a file starting with a sparse header: a
// monolithicSparse or streamOptimized disk, or a bare sparse extent.
func (img *Image) openMonolithic(head []byte, opts formats.OpenOptions) error {
	if len(head) < headerSize {
		return formats.Corruptf(img.name, "sparse header", 0, "file shorter than the header")
	}
	h := decodeHeader(head)
	desc, err := img.readEmbedded(h)
	if err != nil {
		return err
	}
	img.desc = desc
	if h.Capacity == 0 && desc != nil {
		// A descriptor container: the descriptor lists the extents.
		return img.openExtents(opts)
	}
	if desc != nil {
		if err := checkCreateType(img.name, desc.CreateType); err != nil {
			return err
		}
	}
	sp, err := openSparse(img.f, head, opts.Limits, img.cache)
	if err != nil {
		return err
	}
	img.exts = []*extent{{length: int64(sp.hdr.Capacity) * sectorSize, kind: kindSparse, file: img.f, sp: sp}}
	return nil
}

// readEmbedded reads and parses the descriptor embedded in a sparse extent
// (nil when there is none).
func (img *Image) readEmbedded(h sparseHeader) (*descriptor, error) {
	if h.DescriptorOffset == 0 && h.DescriptorSize == 0 {
		return nil, nil
	}
	if h.DescriptorOffset != 1 {
		return nil, formats.Corruptf(img.name, "sparse header", 28, "descriptor at sector %d, expected 1", h.DescriptorOffset)
	}
	if h.DescriptorSize == 0 || h.DescriptorSize > maxDescBytes/sectorSize {
		return nil, formats.Limitf(img.name, "sparse header", 36, "descriptor of %d sectors outside 1..%d", h.DescriptorSize, maxDescBytes/sectorSize)
	}
	buf := make([]byte, h.DescriptorSize*sectorSize)
	n, err := img.f.ReadAt(buf, sectorSize)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: reading descriptor: %w", img.name, err)
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		return nil, nil // a bare extent file (qemu's -s001 files reserve an empty area)
	}
	return parseDescriptor(img.name, buf)
}

// Create types read by this driver; refused ones are named.
var (
	readableTypes = []string{"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
		"twoGbMaxExtentFlat", "streamOptimized", "vmfs", "vmfsThin", "vmfsPreallocated",
		"vmfsEagerZeroedThick", "vmfsSparse", "custom"}
	refusedTypes = []string{"seSparse", "vmfsRaw", "vmfsRawDeviceMap", "vmfsPassthroughRawDeviceMap",
		"fullDevice", "partitionedDevice", "vmfsThinAny"}
)

func checkCreateType(file, ct string) error {
	for _, t := range readableTypes {
		if strings.EqualFold(t, ct) {
			return nil
		}
	}
	if ct == "" {
		return formats.Corruptf(file, "descriptor", -1, "no createType")
	}
	for _, t := range refusedTypes {
		if strings.EqualFold(t, ct) {
			return formats.Unsupportedf(file, "VMDK createType %q (ESXi space-efficient sparse and raw device mappings are not supported)", ct)
		}
	}
	return formats.Unsupportedf(file, "unknown VMDK createType %q", ct)
}

// openExtents opens the extents a standalone descriptor lists.
func (img *Image) openExtents(opts formats.OpenOptions) error {
	if err := checkCreateType(img.name, img.desc.CreateType); err != nil {
		return err
	}
	var start int64
	for i, line := range img.desc.Extents {
		e, err := img.openExtent(line, opts)
		if err != nil {
			return err
		}
		if line.Sectors > uint64(formats.DefaultMaxVirtualSize-start)/sectorSize {
			return formats.Limitf(img.name, "descriptor", -1, "extent %d makes the disk too large", i+1)
		}
		e.start, e.length = start, int64(line.Sectors)*sectorSize
		start += e.length
		img.exts = append(img.exts, e)
	}
	return nil
}

func (img *Image) openExtent(line extentLine, opts formats.OpenOptions) (*extent, error) {
	e := &extent{typ: line.Type}
	switch line.Type {
	case "ZERO":
		e.kind = kindZero
		return e, nil
	case "FLAT", "VMFS":
		e.kind = kindFlat
		if line.Offset > uint64(formats.DefaultMaxVirtualSize)/sectorSize {
			return nil, formats.Corruptf(img.name, "descriptor", -1, "extent offset %d too large", line.Offset)
		}
		e.flatOff = int64(line.Offset) * sectorSize
	case "SPARSE", "VMFSSPARSE":
		e.kind = kindSparse
	default:
		return nil, formats.Unsupportedf(img.name, "VMDK %s extents", line.Type)
	}
	if line.Access == "NOACCESS" {
		return nil, formats.Unsupportedf(img.name, "VMDK NOACCESS extent %q", line.File)
	}
	f, err := img.openFile(line.File, opts)
	if err != nil {
		return nil, err
	}
	e.file, e.path = f, filepath.Join(filepath.Dir(img.name), line.File)
	if p, err := opts.References().Resolve(img.name, line.File); err == nil {
		e.path = p
	}
	if e.kind == kindSparse {
		// A descriptor may name one sparse file many times (qemu reads each
		// line as a view of it): its header and tables load once, so 200
		// lines naming one file cost what one does.
		if sp, ok := img.sparseBy[f]; ok {
			e.sp = sp
			return e, nil
		}
		head := make([]byte, headerSize)
		if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s: reading extent header: %w", f.Name(), err)
		}
		switch binary.LittleEndian.Uint32(head) {
		case sparseMagic:
		case cowdMagic:
			return nil, formats.Unsupportedf(f.Name(), "ESX COWD (vmfsSparse) extents")
		default:
			return nil, formats.Corruptf(f.Name(), "sparse header", 0, "extent %q is not a hosted sparse extent", line.File)
		}
		if e.sp, err = openSparse(f, head, opts.Limits, img.cache); err != nil {
			return nil, err
		}
		if img.sparseBy == nil {
			img.sparseBy = map[formats.File]*sparseExtent{}
		}
		img.sparseBy[f] = e.sp
	}
	return e, nil
}

// openFile opens an extent file through the resolver, once per distinct
// file: a descriptor may list one file many times, by one name or by
// several (./x, a symlink, a hard link), and it is opened once.
func (img *Image) openFile(name string, opts formats.OpenOptions) (formats.File, error) {
	if f, ok := img.byName[name]; ok {
		return f, nil
	}
	f, err := opts.References().Open(img.name, name, opts.Writable)
	if err != nil {
		return nil, err
	}
	if img.byName == nil {
		img.byName = map[string]formats.File{}
	}
	id := fileid.Of(f)
	for i, o := range img.ownedIDs {
		if o.Same(id) {
			f.Close()
			img.byName[name] = img.owned[i]
			return img.owned[i], nil
		}
	}
	img.byName[name] = f
	img.owned, img.ownedIDs = append(img.owned, f), append(img.ownedIDs, id)
	return f, nil
}

// openParent opens the parent of a delta disk and checks its CID.
func (img *Image) openParent(ctx context.Context, opts formats.OpenOptions) error {
	if img.desc == nil || img.desc.ParentCID == noParentCID || img.desc.ParentFileNameHint == "" {
		return nil
	}
	hint := img.desc.ParentFileNameHint
	img.backingPath, _ = opts.References().Resolve(img.name, hint)
	if opts.NoBacking {
		return nil
	}
	parent, err := formats.OpenReference(ctx, img.name, hint, Name, opts)
	if err != nil {
		return err
	}
	img.backing = parent
	p, ok := parent.(*Image)
	if !ok || p.desc == nil {
		return formats.Corruptf(img.name, "descriptor", -1, "parent %q has no descriptor CID", hint)
	}
	if p.desc.CID != img.desc.ParentCID {
		return formats.Corruptf(img.name, "descriptor", -1,
			"parentCID %08x does not match the CID %08x of parent %q (the parent was modified after this delta disk was made)",
			img.desc.ParentCID, p.desc.CID, hint)
	}
	return nil
}

func (img *Image) closeOwned() error {
	var first error
	if img.backing != nil {
		first = img.backing.Close()
	}
	for _, f := range img.owned {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close flushes what was written, and closes the image, its extent files
// and its parent.
func (img *Image) Close() error {
	err := img.Flush()
	if cerr := img.closeOwned(); err == nil {
		err = cerr
	}
	if cerr := img.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (img *Image) Size() int64    { return img.size }
func (img *Image) Format() string { return Name }

// Backer.
func (img *Image) Backing() formats.Image { return img.backing }
func (img *Image) BackingName() string {
	if img.desc == nil || img.desc.ParentCID == noParentCID {
		return ""
	}
	return img.desc.ParentFileNameHint
}
func (img *Image) BackingPath() string { return img.backingPath }
func (img *Image) BackingFormat() string {
	if img.BackingName() == "" {
		return ""
	}
	return Name
}

// ClusterSize is the grain size of the first sparse extent (0 for flat disks).
func (img *Image) ClusterSize() int64 {
	if len(img.exts) > 0 && img.exts[0].sp != nil {
		return img.exts[0].sp.grainBytes
	}
	return 0
}

// findExtent returns the index of the extent holding virtual offset off.
func (img *Image) findExtent(off int64) int {
	lo, hi := 0, len(img.exts)
	for lo < hi {
		m := (lo + hi) / 2
		if img.exts[m].start+img.exts[m].length <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// ReadAt reads virtual disk bytes; safe for concurrent use.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if img.rw != nil {
		return img.rw.w.ReadAt(p, off)
	}
	n, eof := imageio.ClipRead(p, off, img.size)
	if n == 0 {
		return 0, eof
	}
	done := 0
	for done < n {
		i := img.findExtent(off + int64(done))
		e := img.exts[i]
		rel := off + int64(done) - e.start
		chunk := int(min(int64(n-done), e.length-rel))
		if err := img.readExtent(e, p[done:done+chunk], rel); err != nil {
			return done, err
		}
		done += chunk
	}
	return n, eof
}

func (img *Image) readExtent(e *extent, p []byte, rel int64) error {
	switch e.kind {
	case kindZero:
		clear(p)
		return nil
	case kindFlat:
		n, err := e.file.ReadAt(p, e.flatOff+rel)
		if err != nil && err != io.EOF {
			return err
		}
		clear(p[n:]) // a short flat file reads as zeros past its end, as in qemu
		return nil
	}
	sp := e.sp
	for len(p) > 0 {
		chunk := min(int64(len(p)), sp.grainBytes-rel%sp.grainBytes)
		state, host, err := sp.lookup(rel)
		if err != nil {
			return err
		}
		switch state {
		case grainUnallocated:
			err = imageio.ReadBacking(img.backing, p[:chunk], e.start+rel)
		case grainZero:
			clear(p[:chunk])
		default:
			if !sp.compressed {
				chunk, err = sp.contiguous(rel, chunk, host, int64(len(p)))
				if err == nil {
					err = sp.readGrain(p[:chunk], rel, host)
				}
			} else {
				err = sp.readGrain(p[:chunk], rel, host)
			}
		}
		if err != nil {
			return err
		}
		p, rel = p[chunk:], rel+chunk
	}
	return nil
}

// Extents reports this layer's allocation, grain by grain for sparse
// extents, with the host file of every data range; neighbours of equal
// status are merged as they are appended.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	if img.rw != nil {
		return img.rw.w.Extents(off, length)
	}
	length = min(length, img.size-off)
	var out []formats.Extent
	for length > 0 {
		e := img.exts[img.findExtent(off)]
		rel := off - e.start
		chunk := min(length, e.length-rel)
		var err error
		out, err = img.extentMap(out, e, rel, chunk)
		if err != nil {
			return nil, err
		}
		off, length = off+chunk, length-chunk
	}
	return out, nil
}

func (img *Image) extentMap(out []formats.Extent, e *extent, rel, length int64) ([]formats.Extent, error) {
	switch e.kind {
	case kindZero:
		return imageio.AppendExtent(out, formats.Extent{Offset: e.start + rel, Length: length, Kind: formats.Zero, HostOffset: -1}), nil
	case kindFlat:
		return img.flatMap(out, e, rel, length)
	}
	sp := e.sp
	for length > 0 {
		chunk := min(length, sp.grainBytes-rel%sp.grainBytes)
		// Skip runs of unallocated grain tables in one step.
		g := rel / sp.grainBytes
		if gdi := g / sp.gtEntries; gdi >= int64(len(sp.gd)) || sp.gd[gdi] == 0 {
			// Only as far as the range asked for: an extent line may be a
			// small view of a huge directory.
			span := sp.gtEntries * sp.grainBytes
			last := min(int64(len(sp.gd)), (rel+length+span-1)/span)
			for gdi < last && sp.gd[gdi] == 0 {
				gdi++
			}
			if gdi >= last {
				chunk = length
			} else {
				chunk = min(length, gdi*sp.gtEntries*sp.grainBytes-rel)
			}
		}
		state, host, err := sp.lookup(rel)
		if err != nil {
			return nil, err
		}
		x := formats.Extent{Offset: e.start + rel, Length: chunk, HostOffset: -1, HostFile: e.path}
		switch state {
		case grainUnallocated:
			x.Kind, x.HostFile = formats.Unallocated, ""
		case grainZero:
			x.Kind, x.HostFile = formats.Zero, ""
		default:
			x.Kind = formats.Data
			if sp.compressed {
				x.Compressed = true
			} else {
				x.HostOffset = host + rel%sp.grainBytes
			}
		}
		out = imageio.AppendExtent(out, x)
		rel, length = rel+chunk, length-chunk
	}
	return out, nil
}

// Info reports qemu's format-specific data: cid, parent-cid, create-type and
// the extents.
func (img *Image) Info() formats.Info {
	info := formats.Info{ClusterSize: img.ClusterSize()}
	var cid, parentCID uint32 = 0, noParentCID
	createType := ""
	if img.desc != nil {
		cid, parentCID, createType = img.desc.CID, img.desc.ParentCID, img.desc.CreateType
	}
	if len(img.exts) == 1 && img.exts[0].sp != nil && img.exts[0].sp.compressed {
		createType = "streamOptimized"
	}
	d := &Details{CID: int64(cid), ParentCID: int64(parentCID), CreateType: createType,
		Extents: make([]ExtentDetails, 0, len(img.exts))}
	for _, e := range img.exts {
		x := ExtentDetails{VirtualSize: e.length, Filename: e.path, Format: e.typ}
		if x.Filename == "" {
			x.Filename = img.name
		}
		if e.sp != nil {
			x.Compressed, x.ClusterSize = e.sp.compressed, e.sp.grainBytes
		}
		d.Extents = append(d.Extents, x)
	}
	info.ActualSize = img.actualSize()
	info.Details = d
	return info
}

// Details are qemu's format-specific information of a VMDK image
// (ImageInfoSpecificVmdk), in qemu's key order.
type Details struct {
	CID        int64           `json:"cid"`        // content ID of the descriptor
	ParentCID  int64           `json:"parent-cid"` // 0xffffffff: no parent
	CreateType string          `json:"create-type"`
	Extents    []ExtentDetails `json:"extents"`
}

// ExtentDetails describe one extent (qemu's ImageInfo of the extent file).
type ExtentDetails struct {
	Compressed  bool   `json:"compressed,omitempty"` // streamOptimized grains
	VirtualSize int64  `json:"virtual-size"`         // bytes of the disk it holds
	Filename    string `json:"filename"`
	ClusterSize int64  `json:"cluster-size,omitempty"` // grain bytes (sparse extents)
	Format      string `json:"format"`                 // "SPARSE", "FLAT", "VMFS", ...
}

// flatMap reports a flat extent as data, or, on an OS file, its holes as
// zeros (so converting a sparse flat disk never reads its holes).
func (img *Image) flatMap(out []formats.Extent, e *extent, rel, length int64) ([]formats.Extent, error) {
	exts, err := imageio.FileExtents(e.file, e.start+rel, e.flatOff+rel, length)
	if err != nil {
		return imageio.AppendExtent(out, formats.Extent{Offset: e.start + rel, Length: length, Kind: formats.Data,
			HostOffset: e.flatOff + rel, HostFile: e.path}), nil
	}
	for _, x := range exts {
		if x.Kind == formats.Data {
			x.HostFile = e.path
		} else {
			x.HostOffset = -1
		}
		out = imageio.AppendExtent(out, x)
	}
	return out, nil
}

// actualSize is the host allocation of the descriptor and every extent file
// (0, meaning the main file's, for single-file images).
func (img *Image) actualSize() int64 {
	if len(img.owned) == 0 {
		return 0
	}
	seen := map[string]bool{}
	var total int64
	for _, f := range append([]formats.File{img.f}, img.owned...) {
		as, ok := f.(formats.AllocationSizer)
		if !ok || seen[f.Name()] {
			continue
		}
		seen[f.Name()] = true
		if n, err := as.AllocatedBytes(); err == nil {
			total += n
		}
	}
	return total
}

// RawRange: a FLAT (or VMFS) extent stores its part of the disk verbatim
// in its file from flatOff; sparse and zero extents store nothing verbatim.
func (img *Image) RawRange(off int64) (formats.File, int64, int64) {
	if off < 0 || off >= img.size {
		return nil, 0, 0
	}
	e := img.exts[img.findExtent(off)]
	if e.kind != kindFlat {
		return nil, 0, 0
	}
	rel := off - e.start
	return e.file, e.flatOff + rel, e.length - rel
}
