// Package ext4 reads ext2, ext3 and ext4 file systems (the kernel's
// Documentation/filesystems/ext4 layout) as an io/fs file system.
//
// The superblock sits at byte 1024: counts, the block size (1024 <<
// s_log_block_size), blocks and inodes per group, and three feature masks.
// The disk is cut into block groups; a table of group descriptors (32 bytes,
// or s_desc_size with the 64bit feature) follows the superblock's block and
// gives each group's block bitmap, inode bitmap and inode table. Inode N
// lives in group (N-1)/s_inodes_per_group at index (N-1)%s_inodes_per_group.
// An inode's 60-byte i_block holds either an extent tree (header magic
// F30A; index nodes point down, leaves map logical blocks to physical runs),
// the twelve direct and three indirect block pointers of ext2/3, a short
// symlink's target, or inline data (with the rest in the "system.data"
// extended attribute). A directory is a file of variable-length entries
// (inode, record length, name length, type, name); htree directories keep
// the same entries in their leaf blocks, so reading every block lists them.
//
// With metadata_csum, the superblock, group descriptors, inodes, extent
// blocks and directory blocks carry CRC32C checksums seeded from the file
// system UUID; every one read is verified. Every block number, count and
// length is checked against the file system before it is used; extent trees
// are depth-bounded.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/fsnode"
)

// Superblock fields (offsets in the 1024-byte superblock).
const (
	sbOffset          = 1024
	sbBytes           = 1024
	sbInodesCount     = 0x00
	sbBlocksLo        = 0x04
	sbFirstDataBlock  = 0x14
	sbLogBlockSize    = 0x18
	sbBlocksPerGroup  = 0x20
	sbInodesPerGroup  = 0x28
	sbMagic           = 0x38 // 0xEF53
	sbRevLevel        = 0x4C
	sbInodeSize       = 0x58
	sbFeatureCompat   = 0x5C
	sbFeatureIncompat = 0x60
	sbFeatureROCompat = 0x64
	sbUUID            = 0x68
	sbVolumeName      = 0x78
	sbDescSize        = 0xFE
	sbFirstMetaBG     = 0x104
	sbReservedGDT     = 0xCE
	sbBlocksHi        = 0x150
	sbChecksumType    = 0x175
	sbChecksumSeed    = 0x270
	sbChecksum        = 0x3FC
	ext4Magic         = 0xEF53
)

// Feature bits.
const (
	incompatFiletype   = 0x2
	incompatRecover    = 0x4
	incompatJournalDev = 0x8
	incompatMetaBG     = 0x10
	incompatExtents    = 0x40
	incompat64Bit      = 0x80
	incompatMMP        = 0x100
	incompatFlexBG     = 0x200
	incompatEAInode    = 0x400
	incompatDirData    = 0x1000
	incompatCsumSeed   = 0x2000
	incompatLargeDir   = 0x4000
	incompatInlineData = 0x8000
	incompatEncrypt    = 0x10000
	incompatCasefold   = 0x20000

	roCompatGDTCsum      = 0x10
	roCompatBigalloc     = 0x200
	roCompatMetadataCsum = 0x400
)

// knownIncompat is what this reader understands; others are refused.
const knownIncompat = incompatFiletype | incompatRecover | incompatMetaBG | incompatExtents |
	incompat64Bit | incompatMMP | incompatFlexBG | incompatCsumSeed | incompatLargeDir |
	incompatInlineData | incompatEncrypt | incompatCasefold | incompatEAInode

// Limits on what a superblock may declare.
const (
	maxBlockBytes = 64 << 10
	maxGroups     = 1 << 22
	maxDepth      = 5 // extent tree levels (the kernel allows 5)
)

// ErrNotExt: no ext2/3/4 superblock.
var ErrNotExt = errors.New("not an ext2/3/4 file system")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the kernel's raw crc32c (no inversion in or out), as ext4 uses.
func crc32c(seed uint32, b []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, b)
}

// FS is an open ext2/3/4 file system.
type FS struct {
	r    io.ReaderAt
	size int64

	BlockBytes     int64
	Blocks         uint64
	Inodes         uint32
	blocksPerGroup uint32
	inodesPerGroup uint32
	firstDataBlock uint32
	inodeBytes     int64
	descBytes      int64
	groups         uint32
	incompat       uint32
	roCompat       uint32
	firstMetaBG    uint32
	reservedGDT    uint32 // s_reserved_gdt_blocks: GDT growth room after each copy
	csumSeed       uint32 // crc32c seed of metadata_csum
	Label          string
	UUID           [16]byte
	groupDescs     []byte // all group descriptors
	*fsnode.FS
}

// Version names the flavour as blkid would: ext4 with extents or 64bit or
// flex_bg, ext3 with a journal, else ext2.
func (f *FS) Version(compat uint32) string {
	switch {
	case f.incompat&(incompatExtents|incompat64Bit|incompatFlexBG) != 0:
		return "ext4"
	case compat&0x4 != 0:
		return "ext3"
	}
	return "ext2"
}

func (f *FS) metadataCsum() bool { return f.roCompat&roCompatMetadataCsum != 0 }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: ext4: %s", formats.ErrCorrupt, fmt.Sprintf(format, args...))
}

// Open reads the file system in r (size bytes).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, sbBytes)
	if size < sbOffset+sbBytes {
		return nil, ErrNotExt
	}
	if _, err := r.ReadAt(sb, sbOffset); err != nil {
		return nil, fmt.Errorf("ext4: superblock: %w", err)
	}
	f, err := parseSuper(sb, size)
	if err != nil {
		return nil, err
	}
	f.r = r
	if err := f.readGroupDescs(); err != nil {
		return nil, err
	}
	root, err := f.inode(2, ".")
	if err != nil {
		return nil, err
	}
	if !root.Mode().IsDir() {
		return nil, corrupt("the root inode 2 is not a directory (mode %#o)", root.mode)
	}
	f.FS = fsnode.New(root)
	return f, nil
}

func parseSuper(sb []byte, size int64) (*FS, error) {
	le32 := func(o int) uint32 { return binary.LittleEndian.Uint32(sb[o:]) }
	le16 := func(o int) uint16 { return binary.LittleEndian.Uint16(sb[o:]) }
	if le16(sbMagic) != ext4Magic {
		return nil, ErrNotExt
	}
	f := &FS{size: size, incompat: le32(sbFeatureIncompat), roCompat: le32(sbFeatureROCompat)}
	if f.metadataCsum() {
		if sb[sbChecksumType] != 1 {
			return nil, corrupt("superblock: checksum type %d (want 1, crc32c)", sb[sbChecksumType])
		}
		if got, want := crc32c(^uint32(0), sb[:sbChecksum]), le32(sbChecksum); got != want {
			return nil, corrupt("superblock at byte %d: crc32c %#08x, stored %#08x", sbOffset, got, want)
		}
	}
	if unknown := f.incompat &^ knownIncompat; unknown != 0 {
		return nil, fmt.Errorf("%w: ext4: incompatible features %#x", formats.ErrUnsupported, unknown)
	}
	if f.incompat&incompatJournalDev != 0 {
		return nil, fmt.Errorf("%w: ext4: an external journal device holds no files", formats.ErrUnsupported)
	}
	if f.roCompat&roCompatBigalloc != 0 {
		return nil, fmt.Errorf("%w: ext4: bigalloc (clusters of several blocks)", formats.ErrUnsupported)
	}
	logBS := le32(sbLogBlockSize)
	if logBS > 6 {
		return nil, corrupt("superblock: block size 1024<<%d", logBS)
	}
	f.BlockBytes = 1024 << logBS
	f.Blocks = uint64(le32(sbBlocksLo))
	if f.incompat&incompat64Bit != 0 {
		f.Blocks |= uint64(le32(sbBlocksHi)) << 32
	}
	f.Inodes = le32(sbInodesCount)
	f.blocksPerGroup, f.inodesPerGroup = le32(sbBlocksPerGroup), le32(sbInodesPerGroup)
	f.firstDataBlock = le32(sbFirstDataBlock)
	f.inodeBytes = 128
	if le32(sbRevLevel) >= 1 {
		f.inodeBytes = int64(le16(sbInodeSize))
	}
	f.descBytes = 32
	if f.incompat&incompat64Bit != 0 {
		f.descBytes = int64(le16(sbDescSize))
	}
	f.firstMetaBG = le32(sbFirstMetaBG)
	f.reservedGDT = uint32(le16(sbReservedGDT))
	switch {
	case f.Blocks == 0 || f.Blocks > uint64(size/f.BlockBytes)+1:
		return nil, corrupt("superblock: %d blocks of %d bytes in a %d-byte volume", f.Blocks, f.BlockBytes, size)
	case f.blocksPerGroup == 0 || f.blocksPerGroup > uint32(f.BlockBytes*8):
		return nil, corrupt("superblock: %d blocks per group", f.blocksPerGroup)
	case f.inodesPerGroup == 0 || f.inodesPerGroup > uint32(f.BlockBytes*8):
		return nil, corrupt("superblock: %d inodes per group", f.inodesPerGroup)
	case f.inodeBytes < 128 || f.inodeBytes > f.BlockBytes || f.inodeBytes&(f.inodeBytes-1) != 0:
		return nil, corrupt("superblock: inode size %d", f.inodeBytes)
	case f.descBytes < 32 || f.descBytes > 1024 || f.descBytes&(f.descBytes-1) != 0:
		return nil, corrupt("superblock: group descriptor size %d", f.descBytes)
	case uint64(f.firstDataBlock) >= f.Blocks:
		return nil, corrupt("superblock: first data block %d", f.firstDataBlock)
	}
	groups := (f.Blocks - uint64(f.firstDataBlock) + uint64(f.blocksPerGroup) - 1) / uint64(f.blocksPerGroup)
	if groups > maxGroups || uint64(f.Inodes) > groups*uint64(f.inodesPerGroup) {
		return nil, corrupt("superblock: %d groups, %d inodes", groups, f.Inodes)
	}
	f.groups = uint32(groups)
	copy(f.UUID[:], sb[sbUUID:sbUUID+16])
	f.Label = cString(sb[sbVolumeName : sbVolumeName+16])
	f.csumSeed = crc32c(^uint32(0), f.UUID[:])
	if f.incompat&incompatCsumSeed != 0 {
		f.csumSeed = le32(sbChecksumSeed)
	}
	return f, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// readGroupDescs loads every group descriptor (with meta_bg, from the
// first block of each meta group) and verifies their checksums.
func (f *FS) readGroupDescs() error {
	f.groupDescs = make([]byte, int64(f.groups)*f.descBytes)
	perBlock := f.BlockBytes / f.descBytes
	gdtStart := int64(f.firstDataBlock) + 1
	for g := int64(0); g < int64(f.groups); g += perBlock {
		block := gdtStart + g/perBlock
		if f.incompat&incompatMetaBG != 0 && g/perBlock >= int64(f.firstMetaBG) {
			block = int64(f.firstDataBlock) + g*int64(f.blocksPerGroup)
			if f.hasSuperBackup(uint32(g)) {
				block++
			}
		}
		n := min(perBlock, int64(f.groups)-g) * f.descBytes
		if err := f.readBlockPart(f.groupDescs[g*f.descBytes:g*f.descBytes+n], uint64(block), 0); err != nil {
			return fmt.Errorf("ext4: group descriptors of groups %d+: %w", g, err)
		}
	}
	for g := uint32(0); g < f.groups; g++ {
		if err := f.checkDesc(g); err != nil {
			return err
		}
	}
	return nil
}

// hasSuperBackup: with sparse_super, groups 0, 1 and powers of 3, 5, 7.
func (f *FS) hasSuperBackup(g uint32) bool {
	if g <= 1 {
		return true
	}
	for _, p := range []uint32{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}

func (f *FS) desc(g uint32) []byte {
	return f.groupDescs[int64(g)*f.descBytes : int64(g+1)*f.descBytes]
}

// checkDesc verifies group g's descriptor checksum (metadata_csum: crc32c
// of the group number and the descriptor; gdt_csum: crc16, not checked).
func (f *FS) checkDesc(g uint32) error {
	if !f.metadataCsum() {
		return nil
	}
	d := append([]byte(nil), f.desc(g)...)
	stored := binary.LittleEndian.Uint16(d[0x1E:])
	d[0x1E], d[0x1F] = 0, 0
	var num [4]byte
	binary.LittleEndian.PutUint32(num[:], g)
	if got := uint16(crc32c(crc32c(f.csumSeed, num[:]), d)); got != stored {
		return corrupt("group descriptor %d: checksum %#04x, stored %#04x", g, got, stored)
	}
	return nil
}

// descBlock reads a 64-bit block number from a descriptor's lo/hi fields.
func (f *FS) descBlock(g uint32, lo, hi int) uint64 {
	d := f.desc(g)
	b := uint64(binary.LittleEndian.Uint32(d[lo:]))
	if f.descBytes >= 64 {
		b |= uint64(binary.LittleEndian.Uint32(d[hi:])) << 32
	}
	return b
}

// readBlockPart reads len(p) bytes of block n from byte off within it.
func (f *FS) readBlockPart(p []byte, n uint64, off int64) error {
	if n >= f.Blocks || off+int64(len(p)) > f.BlockBytes {
		return corrupt("block %d (+%d, %d bytes) outside the %d-block file system", n, off, len(p), f.Blocks)
	}
	_, err := f.r.ReadAt(p, int64(n)*f.BlockBytes+off)
	if err == io.EOF {
		err = corrupt("block %d past the end of the volume", n)
	}
	return err
}

func (f *FS) readBlock(n uint64) ([]byte, error) {
	b := make([]byte, f.BlockBytes)
	return b, f.readBlockPart(b, n, 0)
}

// FreeSpans lists the byte ranges of free blocks, from the block bitmaps
// (verified with metadata_csum). A group whose bitmap was never
// initialised (BLOCK_UNINIT) is free but for the metadata the kernel
// places there: the superblock and descriptor backups and any group's
// bitmaps and inode table inside it.
func (f *FS) FreeSpans() ([]fsnode.Span, error) {
	bm, err := f.BlockBitmaps()
	if err != nil {
		return nil, err
	}
	var meta map[uint64]bool // nil: uninitialised groups count as used
	if f.incompat&incompatMetaBG == 0 {
		meta = f.metadataBlocks()
	}
	var spans []fsnode.Span
	for n := uint64(f.firstDataBlock); n < f.Blocks; n++ {
		if !bm.used(n, meta) {
			off := int64(n) * f.BlockBytes
			spans = fsnode.AddSpan(spans, off, off+f.BlockBytes)
		}
	}
	return spans, nil
}

// metadataBlocks marks the blocks every group's descriptors place, plus
// the superblock and group-descriptor copies (for uninitialised groups).
func (f *FS) metadataBlocks() map[uint64]bool {
	meta := map[uint64]bool{}
	tableBlocks := (uint64(f.inodesPerGroup)*uint64(f.inodeBytes) + uint64(f.BlockBytes) - 1) / uint64(f.BlockBytes)
	gdtBlocks := (uint64(f.groups)*uint64(f.descBytes) + uint64(f.BlockBytes) - 1) / uint64(f.BlockBytes)
	for g := uint32(0); g < f.groups; g++ {
		meta[f.descBlock(g, 0x0, 0x20)] = true
		meta[f.descBlock(g, 0x4, 0x24)] = true
		for b, t := uint64(0), f.descBlock(g, 0x8, 0x28); b < tableBlocks && b < 1<<20; b++ {
			meta[t+b] = true
		}
		if f.hasSuperBackup(g) {
			start := uint64(f.firstDataBlock) + uint64(g)*uint64(f.blocksPerGroup)
			for b := uint64(0); b <= gdtBlocks+uint64(f.reservedGDT); b++ {
				meta[start+b] = true
			}
		}
	}
	return meta
}

// Bitmap is the block allocation of every group.
type Bitmap struct {
	f      *FS
	bits   [][]byte // per group; nil: BLOCK_UNINIT
	Groups uint32
}

// BlockBitmaps reads every group's block bitmap (verified with
// metadata_csum), for copying only used blocks.
func (f *FS) BlockBitmaps() (*Bitmap, error) {
	bm := &Bitmap{f: f, bits: make([][]byte, f.groups), Groups: f.groups}
	for g := uint32(0); g < f.groups; g++ {
		flags := binary.LittleEndian.Uint16(f.desc(g)[0x12:])
		if flags&0x2 != 0 && f.roCompat&(roCompatGDTCsum|roCompatMetadataCsum) != 0 {
			continue // BLOCK_UNINIT
		}
		b, err := f.readBlock(f.descBlock(g, 0x0, 0x20))
		if err != nil {
			return nil, fmt.Errorf("ext4: block bitmap of group %d: %w", g, err)
		}
		if f.metadataCsum() {
			d := f.desc(g)
			stored := uint32(binary.LittleEndian.Uint16(d[0x18:]))
			got := crc32c(f.csumSeed, b[:f.blocksPerGroup/8])
			if f.descBytes >= 64 {
				stored |= uint32(binary.LittleEndian.Uint16(d[0x38:])) << 16
			} else {
				got &= 0xFFFF
			}
			if got != stored {
				return nil, corrupt("block bitmap of group %d: checksum %#x, stored %#x", g, got, stored)
			}
		}
		bm.bits[g] = b
	}
	return bm, nil
}

// used reports whether block n is allocated; in an uninitialised group,
// whether it is one of the metadata blocks.
func (b *Bitmap) used(n uint64, meta map[uint64]bool) bool {
	if n < uint64(b.f.firstDataBlock) {
		return true
	}
	rel := n - uint64(b.f.firstDataBlock)
	g, i := rel/uint64(b.f.blocksPerGroup), rel%uint64(b.f.blocksPerGroup)
	if g >= uint64(len(b.bits)) {
		return true
	}
	bits := b.bits[g]
	if bits == nil {
		return meta == nil || meta[n]
	}
	return bits[i/8]&(1<<(i%8)) != 0
}
