// Package fat reads FAT12, FAT16 and FAT32 file systems (Microsoft's "FAT:
// General Overview of On-Disk Format", 1.03), with VFAT long names, as an
// io/fs file system.
//
// The volume starts with a boot sector holding the BIOS parameter block
// (BPB): bytes per sector (offset 11), sectors per cluster (13), reserved
// sectors (14), number of FATs (16), root directory entries (17, FAT12/16),
// total sectors (19 or 32), sectors per FAT (22, or 36 on FAT32) and the
// FAT32 root cluster (44). Then come the reserved sectors, the FATs (one
// entry of 12, 16 or 28 bits per cluster: the next cluster of a chain, 0 for
// free, >= 0xFF8/0xFFF8/0x0FFFFFF8 for the end), the fixed root directory
// (FAT12/16) and the data clusters, numbered from 2. The FAT type follows
// from the count of data clusters alone: under 4085 is FAT12, under 65525
// FAT16, else FAT32.
//
// A directory is an array of 32-byte entries: an 8.3 name, attributes,
// times, the first cluster (high half at 20, low at 26) and the size (28).
// Long names precede their short entry as attribute-0x0F entries of 13
// UTF-16 units each, last part first, each carrying the checksum of the
// short name. Every chain is bounded by the cluster count and loops are
// refused, so a damaged FAT cannot make a read run forever.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/fsnode"
)

// Type is the FAT width.
type Type int

const (
	FAT12 Type = 12
	FAT16 Type = 16
	FAT32 Type = 32
)

func (t Type) String() string { return fmt.Sprintf("FAT%d", int(t)) }

// Directory entry layout.
const (
	entryBytes   = 32
	attrReadOnly = 0x01
	attrHidden   = 0x02
	attrSystem   = 0x04
	attrVolume   = 0x08
	attrDir      = 0x10
	attrLongName = 0x0F
	deletedMark  = 0xE5
	maxDirBytes  = 65536 * entryBytes // the spec's limit on a directory
	maxFATBytes  = 128 << 20          // a FAT read into memory (FAT32 of 32M clusters)
)

// ErrNotFAT: the boot sector holds no FAT BPB.
var ErrNotFAT = errors.New("not a FAT file system")

// Volume is an open FAT file system.
type Volume struct {
	r            io.ReaderAt
	size         int64
	Type         Type
	Label        string // volume label (root directory entry, else the BPB's)
	SectorBytes  int64
	ClusterBytes int64
	fatOff       int64 // byte offset of the first FAT
	fatBytes     int64
	rootOff      int64 // FAT12/16 fixed root directory
	rootBytes    int64
	dataOff      int64  // byte offset of cluster 2
	Clusters     uint32 // data clusters (numbered 2..Clusters+1)
	rootCluster  uint32 // FAT32
	fat          []byte // the first FAT, read whole (bounded by the format)
	*fsnode.FS
}

// Open reads the FAT volume in r (size bytes).
func Open(r io.ReaderAt, size int64) (*Volume, error) {
	boot := make([]byte, 512)
	if _, err := r.ReadAt(boot, 0); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	v, err := parseBPB(boot, size)
	if err != nil {
		return nil, err
	}
	v.r = r
	v.fat = make([]byte, v.fatBytes+2) // +2: a FAT12 pair read at the last entry
	if _, err := r.ReadAt(v.fat[:v.fatBytes], v.fatOff); err != nil {
		return nil, fmt.Errorf("fat: reading the FAT at %d: %w", v.fatOff, err)
	}
	root := &node{v: v, name: ".", attr: attrDir, cluster: v.rootCluster, root: true}
	v.FS = fsnode.New(root)
	if label, err := v.rootLabel(root); err == nil && label != "" {
		v.Label = label
	}
	return v, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: fat: %s", formats.ErrCorrupt, fmt.Sprintf(format, args...))
}

// parseBPB validates the boot sector's parameters against the volume size.
func parseBPB(b []byte, size int64) (*Volume, error) {
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(b[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(b[o:])) }
	if b[510] != 0x55 || b[511] != 0xAA || (b[0] != 0xEB && b[0] != 0xE9) {
		return nil, ErrNotFAT
	}
	ss, spc, reserved, nfats := le16(11), int64(b[13]), le16(14), int64(b[16])
	if ss < 512 || ss > 4096 || ss&(ss-1) != 0 || spc == 0 || spc&(spc-1) != 0 || reserved == 0 || nfats == 0 {
		return nil, ErrNotFAT
	}
	rootEnts, total, fatSectors := le16(17), le16(19), le16(22)
	if total == 0 {
		total = le32(32)
	}
	fat32 := fatSectors == 0
	if fat32 {
		fatSectors = le32(36)
	}
	v := &Volume{size: size, SectorBytes: ss, ClusterBytes: ss * spc}
	v.fatOff = reserved * ss
	v.fatBytes = fatSectors * ss
	v.rootOff = v.fatOff + nfats*v.fatBytes
	v.rootBytes = (rootEnts*entryBytes + ss - 1) / ss * ss
	v.dataOff = v.rootOff + v.rootBytes
	if total*ss > size || v.dataOff >= total*ss || fatSectors == 0 {
		return nil, corrupt("BPB: %d sectors of %d bytes (data at %d, FAT of %d sectors) do not fit a %d-byte volume",
			total, ss, v.dataOff, fatSectors, size)
	}
	clusters := (total*ss - v.dataOff) / v.ClusterBytes
	switch {
	case clusters < 4085:
		v.Type = FAT12
	case clusters < 65525:
		v.Type = FAT16
	default:
		v.Type = FAT32
	}
	if fat32 != (v.Type == FAT32) {
		return nil, corrupt("BPB: %d clusters make %s, but the FAT size field says otherwise", clusters, v.Type)
	}
	if need := (clusters + 2) * int64(v.Type) / 8; v.fatBytes < need || v.fatBytes > maxFATBytes {
		return nil, corrupt("BPB: a FAT of %d bytes for %d clusters of %s", v.fatBytes, clusters, v.Type)
	}
	v.Clusters = uint32(clusters)
	labelOff := 43
	if v.Type == FAT32 {
		v.rootCluster = uint32(le32(44))
		labelOff = 71
		if !v.validCluster(v.rootCluster) {
			return nil, corrupt("BPB: root cluster %d outside 2-%d", v.rootCluster, clusters+1)
		}
	}
	if b[labelOff-5] == 0x29 { // the extended boot signature precedes serial and label
		v.Label = strings.TrimRight(string(b[labelOff:labelOff+11]), " ")
	}
	if v.Label == "NO NAME" {
		v.Label = ""
	}
	return v, nil
}

func (v *Volume) validCluster(c uint32) bool { return c >= 2 && c < v.Clusters+2 }

// next is the FAT entry of cluster c.
func (v *Volume) next(c uint32) uint32 {
	switch v.Type {
	case FAT12:
		o := c + c/2
		e := uint32(binary.LittleEndian.Uint16(v.fat[o:]))
		if c&1 == 1 {
			return e >> 4
		}
		return e & 0xFFF
	case FAT16:
		return uint32(binary.LittleEndian.Uint16(v.fat[2*c:]))
	}
	return binary.LittleEndian.Uint32(v.fat[4*c:]) & 0x0FFFFFFF
}

func (v *Volume) isEnd(e uint32) bool {
	switch v.Type {
	case FAT12:
		return e >= 0xFF8
	case FAT16:
		return e >= 0xFFF8
	}
	return e >= 0x0FFFFFF8
}

// Free reports whether cluster c is free in the FAT.
func (v *Volume) Free(c uint32) bool { return v.next(c) == 0 }

// ClusterOffset is the byte offset of data cluster c in the volume.
func (v *Volume) ClusterOffset(c uint32) int64 { return v.dataOff + int64(c-2)*v.ClusterBytes }

// DataOffset is where cluster 2 starts.
func (v *Volume) DataOffset() int64 { return v.dataOff }

// chain lists the clusters from first, at most limit of them; a loop, a free
// or out-of-range link is an error.
func (v *Volume) chain(first uint32, limit int64) ([]uint32, error) {
	var out []uint32
	seen := map[uint32]bool{}
	for c := first; ; {
		if !v.validCluster(c) {
			return nil, corrupt("cluster chain from %d reaches cluster %d outside 2-%d", first, c, v.Clusters+1)
		}
		if seen[c] {
			return nil, corrupt("cluster chain from %d loops at cluster %d", first, c)
		}
		seen[c] = true
		out = append(out, c)
		if int64(len(out)) > limit {
			return nil, corrupt("cluster chain from %d is longer than the %d clusters its owner can hold", first, limit)
		}
		e := v.next(c)
		if v.isEnd(e) {
			return out, nil
		}
		if e == 0 {
			return nil, corrupt("cluster chain from %d runs into free cluster %d", first, c)
		}
		c = e
	}
}

// rootLabel finds the volume-label entry of the root directory.
func (v *Volume) rootLabel(root *node) (string, error) {
	raw, err := root.dirBytes()
	if err != nil {
		return "", err
	}
	for o := 0; o+entryBytes <= len(raw); o += entryBytes {
		e := raw[o : o+entryBytes]
		if e[0] == 0 {
			break
		}
		if e[0] != deletedMark && e[11]&attrVolume != 0 && e[11] != attrLongName {
			return strings.TrimRight(string(e[:11]), " "), nil
		}
	}
	return "", nil
}

// node is a directory entry.
type node struct {
	v       *Volume
	name    string
	attr    byte
	cluster uint32
	size    int64
	mtime   time.Time
	root    bool
}

func (n *node) Name() string { return n.name }

// ID identifies a directory by its first cluster (the root is 0), so its
// listing is read once; files have no stable identity apart from it.
func (n *node) ID() uint64 {
	if n.root {
		return 0
	}
	return uint64(n.cluster)
}
func (n *node) Size() int64        { return n.size }
func (n *node) ModTime() time.Time { return n.mtime }

// Sys describes the entry's first cluster and DOS attributes.
func (n *node) Sys() any { return &Stat{FirstCluster: n.ID(), Attributes: n.attr} }

// Stat is what Sys returns for a FAT entry.
type Stat struct {
	FirstCluster uint64 // 0 for the root and for empty files
	Attributes   byte   // DOS attributes (read-only, hidden, system, directory, archive)
}

// ID is the first cluster: a directory's identity, for loop detection.
func (s *Stat) ID() uint64 { return s.FirstCluster }
func (n *node) Readlink() (string, error) {
	return "", errors.New("FAT has no symbolic links")
}

// Fold: FAT names compare without case.
func (n *node) Fold(name string) string { return strings.ToUpper(name) }

// Mode: directories 0755, files 0644 (0444 when read-only), as Linux's vfat
// driver shows them by default.
func (n *node) Mode() fs.FileMode {
	perm := fs.FileMode(0o644)
	if n.attr&attrReadOnly != 0 {
		perm = 0o444
	}
	if n.attr&attrDir != 0 {
		return fs.ModeDir | 0o755
	}
	return perm
}

// Open returns the file's bytes, read cluster by cluster through its chain.
func (n *node) Open() (io.ReaderAt, error) {
	if n.size == 0 {
		return strings.NewReader(""), nil
	}
	limit := (n.size + n.v.ClusterBytes - 1) / n.v.ClusterBytes
	clusters, err := n.v.chain(n.cluster, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	if int64(len(clusters)) < limit {
		return nil, corrupt("%s: %d bytes but a chain of %d clusters", n.name, n.size, len(clusters))
	}
	return &chainReader{v: n.v, clusters: clusters, size: n.size}, nil
}

// Clusters lists the data clusters of a file or directory (for the used-
// block map).
func (n *node) Clusters() ([]uint32, error) {
	if n.root && n.v.Type != FAT32 {
		return nil, nil
	}
	if n.cluster == 0 {
		return nil, nil
	}
	limit := int64(maxDirBytes) / n.v.ClusterBytes
	if n.attr&attrDir == 0 {
		limit = (n.size + n.v.ClusterBytes - 1) / n.v.ClusterBytes
	}
	return n.v.chain(n.cluster, max(limit, 1))
}

// chainReader reads a file through its cluster list.
type chainReader struct {
	v        *Volume
	clusters []uint32
	size     int64
}

func (c *chainReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.size {
		return 0, io.EOF
	}
	done := 0
	for done < len(p) && off < c.size {
		idx, within := off/c.v.ClusterBytes, off%c.v.ClusterBytes
		// Read a run of consecutive clusters at once.
		last := idx
		for last+1 < int64(len(c.clusters)) && c.clusters[last+1] == c.clusters[last]+1 &&
			(last+1-idx)*c.v.ClusterBytes < int64(len(p)-done)+within {
			last++
		}
		n := min(int64(len(p)-done), (last-idx+1)*c.v.ClusterBytes-within, c.size-off)
		if _, err := c.v.r.ReadAt(p[done:done+int(n)], c.v.ClusterOffset(c.clusters[idx])+within); err != nil {
			return done, err
		}
		done += int(n)
		off += n
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// dirBytes reads a directory's entries: the fixed root of FAT12/16, or its
// cluster chain (at most the spec's 65536 entries).
func (n *node) dirBytes() ([]byte, error) {
	if n.root && n.v.Type != FAT32 {
		raw := make([]byte, n.v.rootBytes)
		_, err := n.v.r.ReadAt(raw, n.v.rootOff)
		return raw, err
	}
	clusters, err := n.Clusters()
	if err != nil {
		return nil, err
	}
	raw := make([]byte, int64(len(clusters))*n.v.ClusterBytes)
	for i, c := range clusters {
		if _, err := n.v.r.ReadAt(raw[int64(i)*n.v.ClusterBytes:int64(i+1)*n.v.ClusterBytes], n.v.ClusterOffset(c)); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

// ReadDir decodes the directory's entries, joining long names.
func (n *node) ReadDir() ([]fsnode.Node, error) {
	if n.attr&attrDir == 0 {
		return nil, errors.New("not a directory")
	}
	raw, err := n.dirBytes()
	if err != nil {
		return nil, fmt.Errorf("fat: directory %s: %w", n.name, err)
	}
	var out []fsnode.Node
	var long []uint16
	var longSum byte
	for o := 0; o+entryBytes <= len(raw); o += entryBytes {
		e := raw[o : o+entryBytes]
		switch {
		case e[0] == 0:
			return out, nil
		case e[0] == deletedMark:
			long = nil
			continue
		case e[11] == attrLongName:
			long, longSum = addLongPart(long, longSum, e)
			continue
		case e[11]&attrVolume != 0:
			long = nil
			continue
		}
		short := shortName(e)
		if short == "." || short == ".." {
			long = nil
			continue
		}
		name := short
		if long != nil && longSum == shortChecksum(e[:11]) {
			name = string(utf16.Decode(trimLong(long)))
		}
		long = nil
		child := &node{v: n.v, name: name, attr: e[11], size: int64(binary.LittleEndian.Uint32(e[28:])),
			cluster: uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:])),
			mtime:   dosTime(binary.LittleEndian.Uint16(e[24:]), binary.LittleEndian.Uint16(e[22:]))}
		if n.v.Type != FAT32 {
			child.cluster &= 0xFFFF
		}
		if child.attr&attrDir != 0 {
			child.size = 0
		}
		if child.cluster != 0 && !n.v.validCluster(child.cluster) {
			return nil, corrupt("directory %s: entry %q (offset %d) starts at cluster %d outside 2-%d",
				n.name, name, o, child.cluster, n.v.Clusters+1)
		}
		if child.attr&attrDir != 0 && child.cluster == 0 {
			return nil, corrupt("directory %s: subdirectory %q has no cluster", n.name, name)
		}
		out = append(out, child)
	}
	return out, nil
}

// addLongPart places one long-name entry's 13 units; the entry with bit
// 0x40 starts a new name.
func addLongPart(long []uint16, sum byte, e []byte) ([]uint16, byte) {
	seq := int(e[0] & 0x1F)
	if seq == 0 {
		return nil, 0
	}
	if e[0]&0x40 != 0 {
		long = make([]uint16, seq*13)
		sum = e[13]
	}
	if long == nil || seq*13 > len(long) || e[13] != sum {
		return nil, 0
	}
	part := long[(seq-1)*13:]
	for i, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
		part[i] = binary.LittleEndian.Uint16(e[o:])
	}
	return long, sum
}

// trimLong cuts a long name at its NUL (the padding after it is 0xFFFF).
func trimLong(u []uint16) []uint16 {
	for i, c := range u {
		if c == 0 {
			return u[:i]
		}
	}
	return u
}

// shortName renders an 8.3 name, with the lower-case flags Windows NT sets
// (byte 12: 0x08 base, 0x10 extension) applied.
func shortName(e []byte) string {
	base := strings.TrimRight(string(e[:8]), " ")
	ext := strings.TrimRight(string(e[8:11]), " ")
	if len(base) > 0 && base[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	if e[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if e[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// shortChecksum is the checksum long-name entries carry of their short name.
func shortChecksum(name []byte) byte {
	var sum byte
	for _, c := range name {
		sum = (sum>>1 | sum<<7) + c
	}
	return sum
}

// dosTime decodes a FAT date and time (local time, 2-second resolution).
func dosTime(date, tm uint16) time.Time {
	if date == 0 {
		return time.Time{}
	}
	return time.Date(1980+int(date>>9), time.Month(date>>5&0xF), int(date&0x1F),
		int(tm>>11), int(tm>>5&0x3F), int(tm&0x1F)*2, 0, time.UTC)
}

// FreeSpans lists the byte ranges of free data clusters, in order.
func (v *Volume) FreeSpans() ([]fsnode.Span, error) {
	var spans []fsnode.Span
	for c := uint32(2); c < v.Clusters+2; c++ {
		if v.Free(c) {
			off := v.ClusterOffset(c)
			spans = fsnode.AddSpan(spans, off, off+v.ClusterBytes)
		}
	}
	return spans, nil
}
