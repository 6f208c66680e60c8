package vdi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "vdi"

// ParentFlag is the CLI flag that supplies a differencing image's parent.
const ParentFlag = "--parent PATH"

func init() {
	formats.Register(&formats.Driver{
		Name:          Name,
		Probe:         probe,
		Open:          Open,
		Create:        imageio.CreateWith(Create),
		CreateOptions: formats.OptionSpecsOf(CreateOptions{}),
	})
}

// CreateOptions are qemu's vdi create options, typed: the zero value is
// qemu-img's default (a dynamic image). They are the one source of the -o
// names, defaults and help; library callers pass them through
// formats.OptionsOf(driver.CreateOptions, vdi.CreateOptions{...}).
type CreateOptions struct {
	Static      bool   `opt:"static" default:"off" help:"VDI static (pre-allocated) image"`
	BackingFile string `opt:"backing_file" help:"Parent VDI image: creates a differencing image linked to it by UUID (vdisk)"`
	BackingFmt  string `opt:"backing_fmt" values:"vdi" help:"Image format of the parent (vdi) (vdisk)"`
}

// probe recognises the signature at offset 64 with a known version.
func probe(in formats.ProbeInput) int {
	if len(in.Header) < preHeaderBytes {
		return formats.ProbeNone
	}
	if binary.LittleEndian.Uint32(in.Header[64:]) != signature {
		return formats.ProbeNone
	}
	h := decodeHeader(in.Header)
	if h.major() <= 1 {
		return formats.ProbeCertain
	}
	return formats.ProbeWeak
}

// Image is an open VDI image.
type Image struct {
	f          formats.File
	name       string
	hdr        header
	size       int64 // virtual size in bytes
	blockBytes int64
	stride     int64 // bytes per data-area block: extra + block
	writable   bool

	parent     formats.Image // differencing: the parent image, else nil
	parentPath string

	mu        sync.RWMutex
	bmap      []uint32
	allocated uint32                   // next data-area index (cBlocksAllocated)
	pending   map[uint32]chan struct{} // blocks being allocated
	dirtyLo   int                      // changed map entries [dirtyLo, dirtyHi)
	dirtyHi   int
	hdrDirty  bool
	fresh     []uint64  // static images made by Create: blocks never written
	failed    error     // a failed allocation: the image must not be flushed as valid
	bufs      sync.Pool // block-sized buffers for partial-block writes
	// virginFrom is the file offset from which the file held nothing when
	// it was opened or created: new blocks there need no zero-filling.
	virginFrom int64
}

// Open opens f as a VDI image.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
	img, err := open(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func open(ctx context.Context, f formats.File, opts formats.OpenOptions) (*Image, error) {
	name := f.Name()
	buf := make([]byte, needBytes)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: reading VDI header: %w", name, err)
	}
	if n < preHeaderBytes+header0Bytes {
		return nil, formats.Corruptf(name, "VDI header", 0, "file is only %d bytes", n)
	}
	h := decodeHeader(buf[:n])
	if h.major() == 1 && n < preHeaderBytes+header1Bytes {
		return nil, formats.Corruptf(name, "VDI header", 0, "file is only %d bytes", n)
	}
	if err := h.validate(name, opts.Limits); err != nil {
		return nil, err
	}
	img := &Image{
		f: f, name: name, hdr: h, size: int64(h.DiskBytes),
		blockBytes: int64(h.BlockBytes), stride: int64(h.BlockExtraBytes) + int64(h.BlockBytes),
		writable: opts.Writable, allocated: h.BlocksAllocated,
		pending: map[uint32]chan struct{}{},
	}
	if err := opts.EnsureBudget().Charge(name, "VDI block map", int64(h.BlocksOff), 4*int64(h.Blocks)); err != nil {
		return nil, err
	}
	if err := img.loadMap(); err != nil {
		return nil, err
	}
	if img.virginFrom, err = f.Size(); err != nil {
		return nil, err
	}
	img.virginFrom = max(img.virginFrom, int64(h.DataOff))
	if opts.Writable {
		if err := img.checkWritable(); err != nil {
			return nil, err
		}
	}
	if !h.UUIDLinkage.isNull() && !opts.NoBacking {
		if err := img.openParent(ctx, opts); err != nil {
			return nil, err
		}
	}
	return img, nil
}

func (img *Image) loadMap() error {
	bmap := make([]uint32, img.hdr.Blocks)
	err := fileio.ReadChunks(img.f, int64(img.hdr.BlocksOff), 4*int64(img.hdr.Blocks), 4, func(chunk []byte, rel int64) {
		for k := range len(chunk) / 4 {
			bmap[rel/4+int64(k)] = binary.LittleEndian.Uint32(chunk[4*k:])
		}
	})
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return formats.Corruptf(img.name, "VDI block map", int64(img.hdr.BlocksOff),
			"%d entries do not fit in the file", img.hdr.Blocks)
	}
	if err != nil {
		return fmt.Errorf("%s: reading VDI block map: %w", img.name, err)
	}
	img.bmap = bmap
	return nil
}

// checkWritable refuses to write to images vdisk could damage further.
func (img *Image) checkWritable() error {
	if img.hdr.Type == typeUndo || (img.hdr.Type != typeDiff && !img.hdr.UUIDLinkage.isNull()) {
		return formats.Unsupportedf(img.name, "writing to a VDI %s image", typeName(img.hdr.Type))
	}
	if img.hdr.major() != 1 {
		return formats.Unsupportedf(img.name, "writing to a VDI version %s image", img.hdr.versionString())
	}
	if r := img.check(); r.Corruptions > 0 {
		return formats.Corruptf(img.name, "VDI block map", int64(img.hdr.BlocksOff),
			"%s; refusing to write (run check)", r.Messages[0])
	}
	for b, e := range img.bmap {
		if isAllocated(e) && e >= img.allocated {
			return formats.Corruptf(img.name, "VDI block map", int64(img.hdr.BlocksOff)+4*int64(b),
				"block %d points to data block %d, beyond the %d allocated; refusing to write", b, e, img.allocated)
		}
	}
	return nil
}

// hdrOffParentModify is the file offset of uuidParentModify (version 1.1).
const hdrOffParentModify = 440

// openParent finds, among the paths the caller supplied, the VDI image whose
// creation UUID is this image's linkage UUID; that image's modification
// UUID must be the one the link recorded (VirtualBox gives an image a new
// one when it writes to it; qemu and vdisk keep it).
func (img *Image) openParent(ctx context.Context, opts formats.OpenOptions) error {
	want := img.hdr.UUIDLinkage
	if len(opts.Parents) == 0 {
		return formats.Unsupportedf(img.name,
			"VDI %s image: its parent is named by UUID %s only; supply the parent image with %s (library: OpenOptions.Parents)",
			typeName(img.hdr.Type), want, ParentFlag)
	}
	var tried []string
	for i, path := range opts.Parents {
		child := opts
		// Each supplied path is used at most once down the chain, which
		// bounds the recursion even for images that link to themselves;
		// the chain's depth limit, loop detection and budget apply.
		child.Parents = append(append([]string(nil), opts.Parents[:i]...), opts.Parents[i+1:]...)
		child.Resolver = imageio.UserFiles(opts.References(), path)
		p, err := formats.OpenReference(ctx, img.name, path, "", child)
		if err != nil {
			if errors.Is(err, formats.ErrLimit) {
				return err // depth or metadata budget: no other candidate helps
			}
			var fe *formats.Error
			if errors.As(err, &fe) && fe.Kind == formats.ErrUnsupported && strings.Contains(fe.Msg, ParentFlag) {
				tried = append(tried, path+" (its own parent is missing)")
				continue
			}
			tried = append(tried, fmt.Sprintf("%s (%v)", path, err))
			continue
		}
		pv, ok := p.(*Image)
		if !ok || pv.hdr.UUIDCreate != want {
			got := p.Format()
			if ok {
				got = "UUID " + pv.hdr.UUIDCreate.String()
			}
			p.Close()
			tried = append(tried, fmt.Sprintf("%s (%s)", path, got))
			continue
		}
		if link := img.hdr.UUIDParentModify; !link.isNull() && !pv.hdr.UUIDModify.isNull() && pv.hdr.UUIDModify != link {
			p.Close()
			return formats.Corruptf(img.name, "VDI header", hdrOffParentModify,
				"parent %s (UUID %s) has modification UUID %s but this image links to %s (the parent changed since this image was made; rebase -u relinks it)",
				path, want, pv.hdr.UUIDModify, link)
		}
		img.parent, img.parentPath = p, path
		return nil
	}
	return formats.Unsupportedf(img.name, "VDI parent with UUID %s not among the supplied parents: %s",
		want, strings.Join(tried, "; "))
}

func (img *Image) Size() int64    { return img.size }
func (img *Image) Format() string { return Name }

// Close flushes a writable image and closes its files.
func (img *Image) Close() error {
	var err error
	if img.writable {
		err = img.Flush()
	}
	if img.parent != nil {
		if perr := img.parent.Close(); err == nil {
			err = perr
		}
	}
	if cerr := img.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// hostOff is the file offset of the start of data-area block idx.
func (img *Image) hostOff(idx uint32) int64 {
	return int64(img.hdr.DataOff) + int64(idx)*img.stride + int64(img.hdr.BlockExtraBytes)
}

// badEntry is the error for a map entry pointing outside the data area.
func (img *Image) badEntry(b int64, e uint32) error {
	return formats.Corruptf(img.name, "VDI block map", int64(img.hdr.BlocksOff)+4*b,
		"block %d points to data block %d, beyond the %d blocks of the image", b, e, img.hdr.Blocks)
}

// ReadAt reads virtual bytes; runs of blocks stored contiguously are read
// with one file read.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(p, off, img.size)
	if n == 0 {
		return 0, eof
	}
	done := 0
	for done < n {
		run, err := img.readRun(p[done:n], off+int64(done))
		if err != nil {
			return done, err
		}
		done += run
	}
	return n, eof
}

// readRun reads the longest prefix of p at off whose blocks share one
// status (and, for data, are contiguous in the file); it returns its length.
func (img *Image) readRun(p []byte, off int64) (int, error) {
	b := off / img.blockBytes
	runLen := min(int64(len(p)), (b+1)*img.blockBytes-off)
	img.mu.RLock()
	first := img.bmap[b]
	bad := isAllocated(first) && first >= img.hdr.Blocks
	for end := (b + 1) * img.blockBytes; !bad && runLen < int64(len(p)); end += img.blockBytes {
		nb := end / img.blockBytes
		e := img.bmap[nb]
		if !sameRun(first, e, nb-b) || (isAllocated(e) && e >= img.hdr.Blocks) {
			break
		}
		runLen = min(int64(len(p)), end+img.blockBytes-off)
	}
	img.mu.RUnlock()
	if bad {
		return 0, img.badEntry(b, first)
	}
	q := p[:runLen]
	switch {
	case isAllocated(first):
		fileOff := img.hostOff(first) + off%img.blockBytes
		if got, err := img.f.ReadAt(q, fileOff); got < len(q) {
			if err == nil || err == io.EOF {
				return 0, formats.Corruptf(img.name, "VDI data block", fileOff, "block %d lies past the end of the file", b)
			}
			return 0, fmt.Errorf("%s: reading at %d: %w", img.name, fileOff, err)
		}
	case first == blockFree && img.parent != nil:
		if err := imageio.ReadBacking(img.parent, q, off); err != nil {
			return 0, err
		}
	default:
		clear(q)
	}
	return int(runLen), nil
}

// sameRun reports whether block entry e, dist blocks after a block with
// entry first, continues its run.
func sameRun(first, e uint32, dist int64) bool {
	if isAllocated(first) {
		return isAllocated(e) && int64(e) == int64(first)+dist
	}
	return e == first
}

// Extents reports data blocks as Data, 0xFFFFFFFE blocks as Zero and
// 0xFFFFFFFF blocks as Unallocated in a differencing image (they show the
// parent) and as Zero otherwise (they read as zeros, as qemu's map says).
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	if off < 0 {
		return nil, fmt.Errorf("%s: negative offset %d", img.name, off)
	}
	length = min(length, img.size-off)
	if length <= 0 {
		return nil, nil
	}
	img.mu.RLock()
	defer img.mu.RUnlock()
	var out []formats.Extent
	end := off + length
	for cur := off; cur < end; {
		b := cur / img.blockBytes
		next := min(end, (b+1)*img.blockBytes)
		e := img.bmap[b]
		x := formats.Extent{Offset: cur, Length: next - cur, HostOffset: -1}
		switch {
		case e == blockFree && img.parent != nil:
			x.Kind = formats.Unallocated
		case e == blockFree:
			x.Kind = formats.Zero
		case e == blockZero:
			x.Kind = formats.Zero
		case e >= img.hdr.Blocks:
			return nil, img.badEntry(b, e)
		default:
			x.Kind = formats.Data
			x.HostOffset = img.hostOff(e) + cur%img.blockBytes
		}
		out = imageio.AppendExtent(out, x)
		cur = next
	}
	return out, nil
}

// ClusterSize is the block size.
func (img *Image) ClusterSize() int64 { return img.blockBytes }

// Info reports the block size as qemu's cluster-size and, in the
// format-specific object, the VDI type, version, UUIDs and block counts
// (qemu prints none).
func (img *Image) Info() formats.Info {
	img.mu.RLock()
	allocated := img.allocated
	img.mu.RUnlock()
	h := &img.hdr
	d := &Details{
		ImageType:        typeName(h.Type),
		Version:          h.versionString(),
		UUID:             h.UUIDCreate.String(),
		ModificationUUID: h.UUIDModify.String(),
		BlockSize:        int64(h.BlockBytes),
		Blocks:           int64(h.Blocks),
		AllocatedBlocks:  int64(allocated),
		Comment:          cString(h.Comment[:]),
	}
	if !h.UUIDLinkage.isNull() {
		d.ParentUUID, d.ParentModificationUUID = h.UUIDLinkage.String(), h.UUIDParentModify.String()
	}
	return formats.Info{ClusterSize: img.blockBytes, Details: d}
}

// Details are what `info` reports of a VDI image under format-specific
// (qemu reports none for VDI: these are vdisk's), in this order.
type Details struct {
	ImageType              string `json:"image-type"` // "dynamic" or "static"
	Version                string `json:"version"`    // header version, "1.1"
	UUID                   string `json:"uuid"`
	ModificationUUID       string `json:"modification-uuid"`
	ParentUUID             string `json:"parent-uuid,omitempty"` // differencing images only
	ParentModificationUUID string `json:"parent-modification-uuid,omitempty"`
	BlockSize              int64  `json:"block-size"` // bytes
	Blocks                 int64  `json:"blocks"`
	AllocatedBlocks        int64  `json:"allocated-blocks"`
	Comment                string `json:"comment,omitempty"`
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Backing is the parent of a differencing image (nil otherwise).
func (img *Image) Backing() formats.Image { return img.parent }

// BackingName is the parent's UUID: VDI stores no name.
func (img *Image) BackingName() string {
	if img.hdr.UUIDLinkage.isNull() {
		return ""
	}
	return "{" + img.hdr.UUIDLinkage.String() + "}"
}

// BackingPath is the supplied path the parent was found at.
func (img *Image) BackingPath() string { return img.parentPath }

// BackingFormat is "vdi" for differencing images.
func (img *Image) BackingFormat() string {
	if img.hdr.UUIDLinkage.isNull() {
		return ""
	}
	return Name
}
