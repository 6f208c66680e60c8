package qcow2

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/deflate"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// CreateOptions are qemu's qcow2 create options, typed: the zero value is
// qemu-img's defaults (compat 1.1, 64 KiB clusters, zlib, 16-bit refcounts,
// no preallocation, no encryption). They are the one source of the -o
// names, defaults and help (createOptions); library callers pass them
// through formats.OptionsOf(driver.CreateOptions, qcow2.CreateOptions{...}).
type CreateOptions struct {
	BackingFile     string `opt:"backing_file" help:"File name of a base image"`
	BackingFmt      string `opt:"backing_fmt" help:"Image format of the base image"`
	ClusterSize     int64  `opt:"cluster_size,size" default:"65536" help:"qcow2 cluster size"`
	Compat          string `opt:"compat" default:"1.1" values:"0.10,1.1,v2,v3" help:"Compatibility level (v2 [0.10] or v3 [1.1])"`
	CompressionType string `opt:"compression_type" default:"zlib" values:"zlib,zstd" help:"Compression method used for image cluster compression"`
	// CompressionLevel is vdisk's own (qemu has none): the effort of
	// compressed writes (convert -c), 1 fastest to 9 smallest; 0 means
	// the method's default (zlib 6, which matches qemu's size; zstd 3).
	// It is not stored in the image.
	CompressionLevel int    `opt:"compression_level" min:"1" max:"9" help:"Compression level, 1 (fastest) to 9 (smallest); default 6 for zlib, 3 for zstd (vdisk only)"`
	ExtendedL2       bool   `opt:"extended_l2" default:"off" help:"Extended L2 tables"`
	LazyRefcounts    bool   `opt:"lazy_refcounts" default:"off" help:"Postpone refcount updates"`
	Preallocation    string `opt:"preallocation" default:"off" values:"off,metadata,falloc,full" help:"Preallocation mode (allowed values: off, metadata, falloc, full)"`
	RefcountBits     int64  `opt:"refcount_bits" default:"16" help:"Width of a reference count entry in bits"`
	// Encrypt are the encrypt.* options: Format "luks" encrypts the image.
	Encrypt EncryptOptions `opt:"encrypt."`
	// Encryption is qemu's deprecated spelling of Encrypt.Format "aes".
	Encryption bool `opt:"encryption" help:"Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)"`
}

// EncryptOptions are qemu's encrypt.* create options of qcow2. With
// Format "luks" the data clusters are encrypted under a LUKS1 header kept
// in the image, whose passphrase is the secret KeySecret names
// (formats.OpenOptions.Secrets); the zero value of the other fields is
// qemu's defaults (aes-256-xts-plain64, sha256, 2 s of PBKDF2). IterTime
// is in milliseconds, 0 for the default. Format "aes" (qemu's legacy
// scheme) is read but not written.
type EncryptOptions struct {
	Format       string `opt:"format" values:"aes,luks" help:"Encrypt the image, format choices: 'aes', 'luks'"`
	CipherAlg    string `opt:"cipher-alg" help:"Name of encryption cipher algorithm"`
	CipherMode   string `opt:"cipher-mode" help:"Name of encryption cipher mode"`
	HashAlg      string `opt:"hash-alg" help:"Name of encryption hash algorithm"`
	IterTime     int64  `opt:"iter-time" min:"1" max:"2147483648" help:"Time to spend in PBKDF in milliseconds"`
	IVGenAlg     string `opt:"ivgen-alg" help:"Name of IV generator algorithm"`
	IVGenHashAlg string `opt:"ivgen-hash-alg" help:"Name of IV generator hash algorithm"`
	KeySecret    string `opt:"key-secret" help:"ID of secret providing qcow AES key or LUKS passphrase"`
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

// params are validated create options.
type params struct {
	version       uint32
	clusterBits   uint
	compression   uint8
	level         int // compression_level, 0 for the default
	extL2         bool
	lazy          bool
	prealloc      string
	refcountOrder uint32
	backingFile   string
	backingFmt    string
}

func parseParams(name string, o CreateOptions) (params, error) {
	var p params
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, formats.ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	switch o.Compat {
	case "0.10", "v2":
		p.version = 2
	default:
		p.version = 3
	}
	cs := o.ClusterSize
	if cs < 1<<minClusterBits || cs > 1<<maxClusterBits || cs&(cs-1) != 0 {
		return p, bad("cluster size must be a power of two between 512 and 2M")
	}
	p.clusterBits = uint(bits.TrailingZeros64(uint64(cs)))
	if o.CompressionType == "zstd" {
		if p.version < 3 {
			return p, bad("compression_type=zstd requires compat=1.1 or above")
		}
		p.compression = compressionZstd
	}
	if o.CompressionLevel != 0 { // an explicit 0 is refused by the option table
		p.level = o.CompressionLevel
		if p.level < deflate.MinLevel || p.level > deflate.MaxLevel {
			return p, bad("compression_level must be between %d and %d", deflate.MinLevel, deflate.MaxLevel)
		}
	}
	p.extL2 = o.ExtendedL2
	if p.extL2 {
		if p.version < 3 {
			return p, bad("extended L2 entries are only supported with compatibility level 1.1 and above")
		}
		if p.clusterBits < minExtL2Bits {
			return p, bad("extended L2 entries are only supported with cluster sizes of at least 16384 bytes")
		}
	}
	p.lazy = o.LazyRefcounts
	if p.lazy && p.version < 3 {
		return p, bad("lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)")
	}
	rb := o.RefcountBits
	if rb < 1 || rb > 64 || rb&(rb-1) != 0 {
		return p, bad("refcount width must be a power of two and may not exceed 64 bits")
	}
	if p.version < 3 && rb != 16 {
		return p, bad("different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)")
	}
	p.refcountOrder = uint32(bits.TrailingZeros64(uint64(rb)))
	p.prealloc = o.Preallocation
	p.backingFile, p.backingFmt = o.BackingFile, o.BackingFmt
	if p.backingFile != "" && p.prealloc != "off" && !p.extL2 {
		return p, bad("backing file and preallocation can only be used at the same time if extended_l2 is on")
	}
	return p, nil
}

// Create makes a new qcow2 image in req.File.
func Create(ctx context.Context, req formats.CreateRequest) (*Image, error) {
	o, err := decodeOptions(req.Options)
	if err != nil {
		return nil, err
	}
	p, err := parseParams(req.Name, o)
	if err != nil {
		return nil, err
	}
	size := req.Size
	var backing formats.Image
	if p.backingFile != "" {
		backing, err = formats.OpenReference(ctx, req.Name, p.backingFile, p.backingFmt, req.Open)
		if err != nil {
			return nil, err
		}
		if p.backingFmt == "" {
			p.backingFmt = backing.Format()
		}
		if size == 0 && !req.Options.IsSet("size") {
			size = backing.Size()
		}
	}
	size = roundUp(size, sectorSize) // qemu sizes disks in whole sectors
	img, err := newImage(req.File, req.Name, size, p, req.Open.Limits)
	if err != nil {
		if backing != nil {
			backing.Close()
		}
		return nil, err
	}
	img.backing, img.backingName, img.backingFmt = backing, p.backingFile, p.backingFmt
	if backing != nil {
		img.backingPath, _ = req.Open.References().Resolve(req.Name, p.backingFile)
	}
	if err := img.setUpEncryption(req, o, p); err != nil {
		img.closeRefs()
		return nil, err
	}
	if err := img.preallocate(ctx, p.prealloc); err != nil {
		img.closeRefs()
		return nil, err
	}
	if err := img.Flush(); err != nil {
		img.closeRefs()
		return nil, err
	}
	return img, nil
}

// newImage lays out an empty image: header in cluster 0, then the refcount
// table, the first refcount block and the L1 table (qemu's layout).
func newImage(f formats.File, name string, size int64, p params, lim formats.Limits) (*Image, error) {
	if err := lim.CheckVirtualSize(name, size); err != nil {
		return nil, err
	}
	cs := int64(1) << p.clusterBits
	h := header{Version: p.version, ClusterBits: uint32(p.clusterBits), Size: uint64(size),
		RefcountOrder: p.refcountOrder, HeaderLength: v2HeaderLength}
	if p.version >= 3 {
		h.HeaderLength = v3HeaderLength
		if p.compression != compressionZlib {
			h.IncompatibleFeatures |= incompatCompression
			h.CompressionType = p.compression
		}
		if p.extL2 {
			h.IncompatibleFeatures |= incompatExtL2
		}
		if p.lazy {
			h.CompatibleFeatures |= compatLazyRefcounts
		}
	}
	img := &Image{f: f, name: name, hdr: h, clusterBits: p.clusterBits, clusterSize: cs, extL2: p.extL2,
		size: size, limits: lim.WithDefaults(), data: f, snapshotIndex: -1, codec: &codec{typ: p.compression, level: p.level}}
	img.ext.BackingFormat = p.backingFmt
	img.geometry()
	img.budget = formats.NewBudget(lim.MaxMetadataBytes)
	img.cache = newL2Cache(img.limits.CacheBytes/cs, cs, img.budget)
	if err := img.writeCluster0(p.backingFile); err != nil {
		return nil, err
	}
	img.w = newWriter(img, p.refcountOrder)
	img.w.hdrDirty = true
	img.cache.OnEvict(img.evictL2)
	img.mu.Lock()
	defer img.mu.Unlock()
	if _, err := img.allocClusters(1); err != nil { // header; brings the refcount table and block
		return nil, err
	}
	l1Entries := img.l1Entries(size)
	if l1Entries*8 > maxL1Bytes {
		return nil, formats.Limitf(name, "L1 table", -1, "a %d-byte disk needs %d L1 entries, more than qemu's limit", size, l1Entries)
	}
	img.l1 = make([]uint64, l1Entries)
	img.hdr.L1Size = uint32(l1Entries)
	if l1Entries > 0 {
		off, err := img.allocClusters((int64(l1Entries)*8 + cs - 1) / cs)
		if err != nil {
			return nil, err
		}
		img.hdr.L1TableOffset = uint64(off)
		img.w.l1Dirty = true
	}
	return img, nil
}

// writeCluster0 writes the header, the extensions and the backing name.
func (img *Image) writeCluster0(backingFile string) error {
	hdr := img.hdr.encode()
	exts := img.ext.encode(img.hdr.Version >= 3)
	if int64(len(hdr)+len(exts)+len(backingFile)) > img.clusterSize && img.hdr.Version >= 3 {
		// Small clusters: leave out the optional feature name table.
		img.ext.Features = nil
		exts = (&extensions{BackingFormat: img.ext.BackingFormat}).encode(false)
	}
	if len(backingFile) > maxBackingName || int64(len(hdr)+len(exts)+len(backingFile)) > img.clusterSize {
		return fmt.Errorf("%s: %w: backing file name too long", img.name, formats.ErrInvalidOption)
	}
	if backingFile != "" {
		img.hdr.BackingFileOffset = uint64(len(hdr) + len(exts))
		img.hdr.BackingFileSize = uint32(len(backingFile))
		hdr = img.hdr.encode()
	}
	buf := append(append(hdr, exts...), backingFile...)
	_, err := img.f.WriteAt(buf, 0)
	return err
}

// preallocate allocates every L2 table (metadata) and data cluster (falloc,
// full) as qemu's preallocation modes do.
func (img *Image) preallocate(ctx context.Context, mode string) error {
	if mode == "off" || mode == "" || img.size == 0 {
		return nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	cs := img.clusterSize
	clusters := (img.size + cs - 1) / cs
	perL2 := int64(1) << img.l2Bits
	for vc := int64(0); vc < clusters; vc += perL2 {
		if _, _, err := img.l2For(vc); err != nil {
			return err
		}
	}
	dataOff, err := img.allocClusters(clusters)
	if err != nil {
		return err
	}
	bitmap := uint64(subAllocMask)
	if img.hasBacking() {
		bitmap = 0 // extended L2: subclusters stay unallocated, the backing file shows
	}
	for vc := range clusters {
		if err := img.setEntry(vc, uint64(dataOff+vc*cs)|oflagCopied, bitmap); err != nil {
			return err
		}
	}
	dataLen := clusters * cs
	if err := img.f.Truncate(dataOff + dataLen); err != nil {
		return err
	}
	switch mode {
	case "falloc":
		return fileio.Preallocate(ctx, img.f, dataOff, dataLen)
	case "full":
		return fileio.ZeroFill(ctx, img.f, dataOff, dataLen)
	}
	return nil
}

// Resize changes the virtual size. Growing may move the L1 table; shrinking
// (shrink=true) frees the clusters past the new end. As qemu's
// qcow2_co_truncate: internal snapshots keep their own tables and size
// (refused for version 2, which need not record a snapshot's size), and
// persistent bitmaps are resized with the image (new bits clear; refused
// while one is inconsistent).
func (img *Image) Resize(ctx context.Context, newSize int64, shrink bool) error {
	if err := img.dataWritable(); err != nil {
		return err
	}
	if err := img.limits.CheckVirtualSize(img.name, newSize); err != nil {
		return err
	}
	if newSize < img.size && !shrink {
		return fmt.Errorf("%s: use the --shrink option to perform a shrink operation", img.name)
	}
	img.mu.Lock()
	oldSize := img.size
	err := img.resizeLocked(newSize)
	img.mu.Unlock()
	if err != nil || newSize <= oldSize || !img.hasBacking() || img.backing != nil && img.backing.Size() <= oldSize {
		return err
	}
	// As qemu's bdrv_co_truncate: a backing file that reaches past the
	// old end would show through the new range, which must read as
	// zeros: it becomes zero clusters (not marked in the bitmaps). Not
	// opened (NoBacking), the backing file is taken to reach that far.
	return img.zeroRange(oldSize, newSize-oldSize)
}

// resizeLocked is Resize with img.mu held.
func (img *Image) resizeLocked(newSize int64) error {
	if len(img.snapshots) > 0 && img.hdr.Version < 3 {
		return &RefusalError{Msg: "Can't resize a v2 image which has snapshots", Kind: formats.ErrUnsupported}
	}
	if err := img.bitmapsResizable(); err != nil {
		return err
	}
	if newSize == img.size {
		return nil
	}
	st := img.w.bms
	hasBitmaps := st != nil && len(st.list) > 0
	keepInUse := hasBitmaps && st.inUseDisk
	if hasBitmaps && !st.inUseDisk {
		// Until the tables for the new size are stored, the stored
		// bitmaps are marked in use: a crash leaves them inconsistent
		// (as qemu's), never sized for the wrong disk.
		if err := img.storeBitmaps(true); err != nil {
			return err
		}
	}
	if err := img.resizeBitmaps(newSize); err != nil {
		return err
	}
	if newSize < img.size {
		if err := img.discardTail(newSize); err != nil {
			return img.abort(err)
		}
	} else if err := img.growL1(img.l1Entries(newSize)); err != nil {
		return img.abort(err)
	}
	img.size = newSize
	img.hdr.Size = uint64(newSize)
	img.w.hdrDirty = true
	if err := img.flushLocked(); err != nil {
		return err
	}
	if hasBitmaps {
		return img.storeBitmaps(keepInUse)
	}
	return nil
}

// RefusalError is a refusal worded as qemu words it (the CLI prints Msg
// after its name, as qemu-img does).
type RefusalError struct {
	Msg  string
	Kind error
}

func (e *RefusalError) Error() string { return e.Msg }
func (e *RefusalError) Unwrap() error { return e.Kind }

// growL1 moves the L1 table to a place big enough for n entries.
func (img *Image) growL1(n uint64) error {
	if n <= uint64(len(img.l1)) {
		return nil
	}
	if n*8 > maxL1Bytes {
		return formats.Limitf(img.name, "L1 table", -1, "%d entries exceed qemu's limit", n)
	}
	cs := img.clusterSize
	oldOff, oldLen := int64(img.hdr.L1TableOffset), int64(len(img.l1))
	off, err := img.allocClusters((int64(n)*8 + cs - 1) / cs)
	if err != nil {
		return err
	}
	l1 := make([]uint64, n)
	copy(l1, img.l1)
	img.l1 = l1
	if err := img.freeRange(oldOff, oldLen*8); err != nil {
		return err
	}
	img.hdr.L1TableOffset, img.hdr.L1Size = uint64(off), uint32(n)
	img.w.l1Dirty, img.w.hdrDirty = true, true
	return nil
}

// discardTail frees every cluster that lies wholly past newSize: whole
// L2 tables past it are dropped from the L1 table (qemu's
// qcow2_shrink_l1_table), the rest entry by entry. Tables and clusters a
// snapshot shares only lose the active layer's reference.
func (img *Image) discardTail(newSize int64) error {
	cs := img.clusterSize
	first := (newSize + cs - 1) / cs
	last := (img.size + cs - 1) / cs
	perTable := int64(1) << img.l2Bits
	for vc := first; vc < last; {
		l1i := vc >> img.l2Bits
		if vc%perTable == 0 && l1i < int64(len(img.l1)) {
			if err := img.dropL2(l1i); err != nil {
				return err
			}
			vc += perTable
			continue
		}
		entry, bitmap, err := img.lookup(vc)
		if err != nil {
			return err
		}
		if entry != 0 || bitmap != 0 {
			if err := img.setEntry(vc, 0, 0); err != nil {
				return err
			}
		}
		vc++
	}
	return nil
}

// dropL2 removes L1 entry l1i: the table and every cluster it maps lose
// the active layer's reference (a table no snapshot shares is freed).
func (img *Image) dropL2(l1i int64) error {
	e := img.l1[l1i]
	off := int64(e & offsetMask)
	if off == 0 {
		return nil
	}
	t, err := img.l2(off)
	if err != nil {
		return err
	}
	if err := img.refTable(t, -1); err != nil {
		return err
	}
	if e&oflagCopied != 0 {
		delete(img.w.dirtyL2, off)
	}
	img.l1[l1i] = 0
	img.w.l1Dirty = true
	return img.addRef(off/img.clusterSize, -1)
}
