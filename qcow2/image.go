package qcow2

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/cache"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Name is the driver name.
const Name = "qcow2"

// L1/L2 entry bits (qcow2.txt "Cluster mapping").
const (
	offsetMask       = 0x00fffffffffffe00 // bits 9-55: host offset
	oflagCopied      = 1 << 63            // refcount is exactly 1
	oflagCompressed  = 1 << 62            // L2: compressed cluster
	oflagZero        = 1 << 0             // L2 (v3): reads as zeros
	l1ReservedMask   = 0x7f000000000001ff // must be zero in L1 entries
	l2ReservedMask   = 0x3f000000000001fe // must be zero in standard L2 entries
	subclusters      = 32                 // per cluster with extended L2
	subAllocMask     = 0xffffffff         // low half of the bitmap: allocated
	sectorSize       = 512
	compressedSector = 512
)

func init() {
	formats.Register(&formats.Driver{
		Name:          Name,
		Probe:         probe,
		Open:          imageio.OpenWith(Open),
		Create:        imageio.CreateWith(Create),
		CreateOptions: createOptions,
		Measure:       measure,
	})
}

func probe(in formats.ProbeInput) int {
	if len(in.Header) >= 8 && binary.BigEndian.Uint32(in.Header) == magic {
		v := binary.BigEndian.Uint32(in.Header[4:])
		if v == 2 || v == 3 {
			return formats.ProbeCertain
		}
		return formats.ProbeWeak
	}
	return formats.ProbeNone
}

// Image is an open qcow2 image (read-only, or writable when created or
// opened with Writable).
type Image struct {
	f           formats.File
	name        string
	hdr         header
	ext         extensions
	clusterBits uint
	clusterSize int64
	l2Bits      uint // log2 of L2 entries per table
	extL2       bool
	size        int64
	codec       *codec
	limits      formats.Limits
	budget      *formats.Budget // metadata memory of the image and its chain
	crypt       *crypt          // nil: not encrypted

	data     formats.File // external data file, or f
	dataName string       // "" when the data lives in f
	rawData  bool         // data file is a valid raw image

	backing                  formats.Image
	backingName, backingPath string
	backingFmt               string
	snapshots                []snapshot
	snapshotIndex            int // -1: the active layer
	readOnly                 bool
	corruptBit               bool
	fileEnd                  int64 // file size at open, cluster rounded (read-only images)
	sectorsShift             uint

	mu    sync.Mutex // guards l1, cache and the writer state
	l1    []uint64
	cache *cache.Cache[int64, []uint64] // L2 tables by host offset
	w     *writer                       // nil for read-only images
}

// Open opens f as a qcow2 image.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (*Image, error) {
	name := f.Name()
	budget := opts.EnsureBudget()
	fileSize, err := f.Size()
	if err != nil {
		return nil, err
	}
	first := make([]byte, min(fileSize, 1<<maxClusterBits))
	if _, err := f.ReadAt(first, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	h, err := parseHeader(first)
	if err != nil {
		return nil, formats.Corruptf(name, "qcow2 header", 0, "%v", err)
	}
	if h.Version != 2 && h.Version != 3 {
		return nil, formats.Unsupportedf(name, "qcow2 version %d", h.Version)
	}
	if h.ClusterBits < minClusterBits || h.ClusterBits > maxClusterBits {
		return nil, formats.Corruptf(name, "qcow2 header", 20, "cluster_bits %d outside %d..%d", h.ClusterBits, minClusterBits, maxClusterBits)
	}
	cs := int64(1) << h.ClusterBits
	cluster0 := first[:min(int64(len(first)), cs)]
	if h.Version == 3 && (h.HeaderLength < v3MinHeaderLen || int64(h.HeaderLength) > cs) {
		return nil, formats.Corruptf(name, "qcow2 header", 100, "header_length %d outside %d..%d", h.HeaderLength, v3MinHeaderLen, cs)
	}
	ext, err := parseExtensions(name, cluster0, int(h.HeaderLength), h.Version == 3)
	if err != nil {
		return nil, err
	}
	if unknown := h.IncompatibleFeatures &^ incompatKnown; unknown != 0 {
		return nil, formats.Unsupportedf(name, "qcow2 incompatible features %s", incompatNames(unknown, ext.Features))
	}
	if ext.Crypto != nil && h.CryptMethod != cryptLUKS {
		return nil, formats.Corruptf(name, "crypto header extension", -1, "only expected with LUKS encryption (crypt_method is %d)", h.CryptMethod)
	}
	if err := h.validate(name, fileSize, opts.Limits); err != nil {
		return nil, err
	}
	img := &Image{f: f, name: name, hdr: h, ext: ext, clusterBits: uint(h.ClusterBits), clusterSize: cs,
		extL2: h.IncompatibleFeatures&incompatExtL2 != 0, size: int64(h.Size), limits: opts.Limits.WithDefaults(),
		data: f, snapshotIndex: -1, corruptBit: h.IncompatibleFeatures&incompatCorrupt != 0,
		codec: &codec{typ: h.CompressionType}, budget: budget}
	img.geometry()
	img.fileEnd = roundUp(fileSize, cs)
	if err := img.openCrypto(opts); err != nil {
		return nil, err
	}
	if err := img.load(ctx, opts, cluster0); err != nil {
		img.closeRefs()
		return nil, err
	}
	return img, nil
}

// geometry derives the L2 and compressed-descriptor shapes from clusterBits.
func (img *Image) geometry() {
	img.l2Bits = img.clusterBits - 3 // 8-byte entries
	if img.extL2 {
		img.l2Bits-- // 16-byte entries
	}
	img.sectorsShift = 62 - (img.clusterBits - 8)
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// load reads the L1 table, snapshots, backing file and data file.
func (img *Image) load(ctx context.Context, opts formats.OpenOptions, cluster0 []byte) error {
	h := &img.hdr
	if need := img.l1Entries(img.size); uint64(h.L1Size) < need {
		return formats.Corruptf(img.name, "L1 table", int64(h.L1TableOffset), "%d entries cannot map %d bytes (need %d)", h.L1Size, img.size, need)
	}
	if err := img.readSnapshots(); err != nil {
		return err
	}
	l1Off, l1Size := h.L1TableOffset, h.L1Size
	if opts.Snapshot != "" {
		i, ok := findSnapshot(img.snapshots, opts.Snapshot)
		if !ok {
			return fmt.Errorf("%s: no snapshot %q: %w", img.name, opts.Snapshot, formats.ErrInvalidOption)
		}
		s := img.snapshots[i]
		if uint64(s.L1Size)*8 > maxL1Bytes {
			return formats.Limitf(img.name, "snapshot L1 table", int64(s.L1TableOffset), "%d entries exceed %d bytes", s.L1Size, maxL1Bytes)
		}
		if err := checkTableOffset(img.name, "snapshot L1 table", s.L1TableOffset, uint64(s.L1Size)*8, uint64(img.clusterSize)); err != nil {
			return err
		}
		img.snapshotIndex = i
		if s.DiskSize != 0 {
			if err := img.limits.CheckVirtualSize(img.name, int64(s.DiskSize&(1<<63-1))); err != nil {
				return err
			}
			img.size = int64(s.DiskSize)
		}
		if need := img.l1Entries(img.size); uint64(s.L1Size) < need {
			return formats.Corruptf(img.name, "snapshot L1 table", int64(s.L1TableOffset), "%d entries cannot map %d bytes", s.L1Size, img.size)
		}
		l1Off, l1Size = s.L1TableOffset, s.L1Size
	}
	l1, err := img.readTable("L1 table", l1Off, uint64(l1Size))
	if err != nil {
		return err
	}
	img.l1 = l1
	img.cache = newL2Cache(img.limits.CacheBytes/img.clusterSize, img.clusterSize, img.budget)
	// A corrupt image opened writable only accepts repairs (check -r).
	img.readOnly = !opts.Writable || img.snapshotIndex >= 0 || img.corruptBit
	if err := img.openDataFile(opts); err != nil {
		return err
	}
	if err := img.readBackingName(cluster0); err != nil {
		return err
	}
	if img.backingName != "" {
		// info without --backing-chain shows the resolved path too.
		img.backingPath, _ = opts.References().Resolve(img.name, img.backingName)
	}
	if img.backingName != "" && !opts.NoBacking {
		b, err := formats.OpenReference(ctx, img.name, img.backingName, img.ext.BackingFormat, opts)
		if err != nil {
			return err
		}
		img.backing = b
		if img.backingFmt == "" {
			img.backingFmt = b.Format()
		}
	}
	if opts.Writable && img.snapshotIndex < 0 {
		return img.startWriter()
	}
	return nil
}

// l1Entries is how many L1 entries a virtual size needs.
func (img *Image) l1Entries(size int64) uint64 {
	span := uint64(1) << (img.clusterBits + img.l2Bits)
	return (uint64(size) + span - 1) / span
}

// readTable reads n big-endian u64 entries at off, bounded by the limits.
func (img *Image) readTable(structure string, off, n uint64) ([]uint64, error) {
	if err := img.limits.CheckTable(img.name, structure, int64(off), n, 8); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	if err := img.budget.Charge(img.name, structure, int64(off), int64(n*8)); err != nil {
		return nil, err
	}
	t := make([]uint64, n)
	err := fileio.ReadChunks(img.f, int64(off), int64(n*8), 8, func(chunk []byte, rel int64) {
		for k := range len(chunk) / 8 {
			t[rel/8+int64(k)] = binary.BigEndian.Uint64(chunk[8*k:])
		}
	})
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, formats.Corruptf(img.name, structure, int64(off), "truncated: the %d-byte table ends past the end of the file", n*8)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s at offset %d: %w", img.name, structure, off, err)
	}
	return t, nil
}

func (img *Image) readSnapshots() error {
	h := &img.hdr
	if h.NbSnapshots == 0 {
		return nil
	}
	fileSize := img.fileEnd
	if int64(h.SnapshotsOffset) >= fileSize {
		return formats.Corruptf(img.name, "snapshot table", int64(h.SnapshotsOffset), "past the end of the file")
	}
	n := min(fileSize-int64(h.SnapshotsOffset), maxSnapTable)
	buf := make([]byte, n)
	got, err := img.f.ReadAt(buf, int64(h.SnapshotsOffset))
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: reading snapshot table: %w", img.name, err)
	}
	snaps, err := parseSnapshots(img.name, buf[:got], int64(h.SnapshotsOffset), int(h.NbSnapshots))
	if err != nil {
		return err
	}
	img.snapshots = snaps
	return nil
}

func (img *Image) readBackingName(cluster0 []byte) error {
	h := &img.hdr
	if h.BackingFileOffset == 0 || h.BackingFileSize == 0 {
		return nil
	}
	end := h.BackingFileOffset + uint64(h.BackingFileSize)
	if end > uint64(len(cluster0)) {
		return formats.Corruptf(img.name, "backing file name", int64(h.BackingFileOffset), "runs past the first cluster")
	}
	if h.AutoclearFeatures&autoclearRawData != 0 && img.dataName != "" {
		return formats.Corruptf(img.name, "qcow2 header", 8, "a backing file and a raw external data file are exclusive")
	}
	img.backingName = string(cluster0[h.BackingFileOffset:end])
	img.backingFmt = img.ext.BackingFormat
	return nil
}

func (img *Image) openDataFile(opts formats.OpenOptions) error {
	if img.hdr.IncompatibleFeatures&incompatDataFile == 0 {
		if img.ext.DataFile != "" {
			return formats.Corruptf(img.name, "data file extension", -1, "present without the external data file feature")
		}
		return nil
	}
	if img.ext.DataFile == "" {
		return formats.Unsupportedf(img.name, "qcow2 external data file without a name (the data-file option is needed)")
	}
	img.rawData = img.hdr.AutoclearFeatures&autoclearRawData != 0
	f, err := opts.References().Open(img.name, img.ext.DataFile, opts.Writable)
	if err != nil {
		return err
	}
	img.data, img.dataName = f, img.ext.DataFile
	return nil
}

func (img *Image) closeRefs() {
	if img.backing != nil {
		img.backing.Close()
		img.backing = nil
	}
	if img.data != img.f && img.data != nil {
		img.data.Close()
		img.data = img.f
	}
}

// Size is the virtual size.
func (img *Image) Size() int64 { return img.size }

// Format is "qcow2".
func (img *Image) Format() string { return Name }

// ClusterSize is the cluster size in bytes.
func (img *Image) ClusterSize() int64 { return img.clusterSize }

// Backing returns the open backing image or nil.
func (img *Image) Backing() formats.Image { return img.backing }

// BackingName is the backing file name as stored.
func (img *Image) BackingName() string { return img.backingName }

// BackingPath is the resolved backing path.
func (img *Image) BackingPath() string { return img.backingPath }

// BackingFormat is the backing format (stored, else probed).
func (img *Image) BackingFormat() string { return img.backingFmt }

// Close closes the image, its backing chain and data file. A writable image
// is flushed first.
func (img *Image) Close() error {
	var err error
	if img.w != nil {
		err = img.closeWriter()
	}
	img.closeRefs()
	if cerr := img.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Info is the format-specific part of `info`, in qemu's key order.
func (img *Image) Info() formats.Info {
	h := &img.hdr
	comp := "zlib"
	if h.CompressionType == compressionZstd {
		comp = "zstd"
	}
	info := formats.Info{ClusterSize: img.clusterSize, DirtyFlag: h.IncompatibleFeatures&incompatDirty != 0,
		Encrypted: img.crypt != nil}
	d := &Details{Compat: "1.1", CompressionType: comp, RefcountBits: int64(1) << h.RefcountOrder,
		Encrypt: img.encryptInfo()}
	if h.Version == 2 {
		d.Compat = "0.10"
	} else {
		d.LazyRefcounts = ptr(h.CompatibleFeatures&compatLazyRefcounts != 0)
		d.Bitmaps = img.bitmapInfo()
		if h.IncompatibleFeatures&incompatDataFile != 0 {
			d.DataFile = ptr(img.ext.DataFile)
			d.DataFileRaw = ptr(h.AutoclearFeatures&autoclearRawData != 0)
		}
		d.Corrupt, d.ExtendedL2 = ptr(img.corruptBit), ptr(img.extL2)
	}
	info.Details = d
	for _, s := range img.snapshots {
		info.Snapshots = append(info.Snapshots, s.info())
	}
	return info
}

// Details are qemu's format-specific information of a qcow2 image
// (ImageInfoSpecificQCow2), in qemu's key order. A nil field is not
// reported: compat 0.10 images have only Compat, CompressionType,
// RefcountBits and Encrypt.
type Details struct {
	Compat          string          `json:"compat"`           // "0.10" (version 2) or "1.1" (version 3)
	CompressionType string          `json:"compression-type"` // "zlib" or "zstd"
	LazyRefcounts   *bool           `json:"lazy-refcounts"`
	Bitmaps         []BitmapDetails `json:"bitmaps"` // nil when the image has none
	RefcountBits    int64           `json:"refcount-bits"`
	DataFile        *string         `json:"data-file"` // the external data file's name
	// Encrypt is *AESDetails or *luks.Details (Format "luks"); nil for a
	// clear image.
	Encrypt     any   `json:"encrypt"`
	DataFileRaw *bool `json:"data-file-raw"`
	Corrupt     *bool `json:"corrupt"`
	ExtendedL2  *bool `json:"extended-l2"`
}

// BitmapDetails describe one persistent dirty bitmap.
type BitmapDetails struct {
	Flags       []string `json:"flags"` // "in-use", "auto"
	Name        string   `json:"name"`
	Granularity int64    `json:"granularity"` // bytes a bit covers
}

func ptr[T any](v T) *T { return &v }

// decodeTable decodes a table of big-endian 64-bit entries.
func decodeTable(buf []byte) []uint64 {
	t := make([]uint64, len(buf)/8)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(buf[8*i:])
	}
	return t
}
