package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/fsnode"
)

// Inode fields (offsets in the on-disk inode).
const (
	inMode       = 0x00
	inUIDLo      = 0x02
	inSizeLo     = 0x04
	inMtime      = 0x10
	inGIDLo      = 0x18
	inLinks      = 0x1A
	inFlags      = 0x20
	inBlock      = 0x28 // 60 bytes
	inGeneration = 0x64
	inSizeHi     = 0x6C
	inUIDHi      = 0x78
	inGIDHi      = 0x7A
	inCsumLo     = 0x7C
	inExtraSize  = 0x80
	inCsumHi     = 0x82
	inMtimeExtra = 0x88
	iBlockBytes  = 60

	flagExtents    = 0x80000
	flagInlineData = 0x10000000
	flagEncrypt    = 0x800
	flagEAInode    = 0x200000

	extentMagic = 0xF30A
	xattrMagic  = 0xEA020000
)

// inode is a decoded inode: a directory entry's target.
type inode struct {
	f        *FS
	num      uint32
	name     string
	mode     uint16
	uid, gid uint32
	links    uint16
	size     int64
	flags    uint32
	block    [iBlockBytes]byte
	mtime    time.Time
	raw      []byte // the whole on-disk inode (for in-inode xattrs)
	seed     uint32 // checksum seed: crc32c(fs seed, number, generation)
}

// inode reads and verifies inode num.
func (f *FS) inode(num uint32, name string) (*inode, error) {
	if num == 0 || num > f.Inodes {
		return nil, corrupt("inode %d outside 1-%d", num, f.Inodes)
	}
	g, idx := (num-1)/f.inodesPerGroup, (num-1)%f.inodesPerGroup
	table := f.descBlock(g, 0x8, 0x28)
	off := int64(idx) * f.inodeBytes
	raw := make([]byte, f.inodeBytes)
	if err := f.readBlockPart(raw, table+uint64(off/f.BlockBytes), off%f.BlockBytes); err != nil {
		return nil, fmt.Errorf("ext4: inode %d: %w", num, err)
	}
	n := &inode{f: f, num: num, name: name, raw: raw,
		mode:  binary.LittleEndian.Uint16(raw[inMode:]),
		uid:   uint32(binary.LittleEndian.Uint16(raw[inUIDLo:])) | uint32(binary.LittleEndian.Uint16(raw[inUIDHi:]))<<16,
		gid:   uint32(binary.LittleEndian.Uint16(raw[inGIDLo:])) | uint32(binary.LittleEndian.Uint16(raw[inGIDHi:]))<<16,
		links: binary.LittleEndian.Uint16(raw[inLinks:]),
		size:  int64(binary.LittleEndian.Uint32(raw[inSizeLo:])) | int64(binary.LittleEndian.Uint32(raw[inSizeHi:]))<<32,
		flags: binary.LittleEndian.Uint32(raw[inFlags:]),
	}
	copy(n.block[:], raw[inBlock:])
	if n.size < 0 {
		return nil, corrupt("inode %d: size %d", num, n.size)
	}
	extra := n.extraSize()
	sec := int64(int32(binary.LittleEndian.Uint32(raw[inMtime:])))
	var nsec int64
	if extra >= inMtimeExtra+4-0x80 {
		x := binary.LittleEndian.Uint32(raw[inMtimeExtra:])
		sec += int64(x&3) << 32
		nsec = int64(x >> 2)
	}
	n.mtime = time.Unix(sec, nsec).UTC()
	if f.metadataCsum() {
		if err := n.verify(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// extraSize is i_extra_isize for large inodes (0 for 128-byte ones).
func (n *inode) extraSize() int64 {
	if n.f.inodeBytes <= 128 {
		return 0
	}
	e := int64(binary.LittleEndian.Uint16(n.raw[inExtraSize:]))
	if 128+e > n.f.inodeBytes {
		return 0
	}
	return e
}

// verify checks the inode checksum: crc32c over the inode number, the
// generation and the inode with its checksum fields zeroed.
func (n *inode) verify() error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], n.num)
	seed := crc32c(n.f.csumSeed, b[:])
	seed = crc32c(seed, n.raw[inGeneration:inGeneration+4])
	n.seed = seed
	c := bytes.Clone(n.raw)
	stored := uint32(binary.LittleEndian.Uint16(c[inCsumLo:]))
	c[inCsumLo], c[inCsumLo+1] = 0, 0
	hasHi := n.extraSize() >= inCsumHi+2-0x80
	if hasHi {
		stored |= uint32(binary.LittleEndian.Uint16(c[inCsumHi:])) << 16
		c[inCsumHi], c[inCsumHi+1] = 0, 0
	}
	got := crc32c(seed, c)
	if !hasHi {
		got &= 0xFFFF
	}
	if got != stored {
		return corrupt("inode %d: checksum %#x, stored %#x", n.num, got, stored)
	}
	return nil
}

func (n *inode) Name() string       { return n.name }
func (n *inode) Size() int64        { return n.size }
func (n *inode) ModTime() time.Time { return n.mtime }

// Sys is the inode's owner and number.
func (n *inode) Sys() any { return &Stat{Inode: n.num, UID: n.uid, GID: n.gid, Links: n.links} }

// Stat is what Sys returns for an ext4 file.
type Stat struct {
	Inode    uint32
	UID, GID uint32
	Links    uint16
}

// ID identifies the inode (for loop and hard-link detection).
func (n *inode) ID() uint64 { return uint64(n.num) }

// Mode maps i_mode to an fs.FileMode.
func (n *inode) Mode() fs.FileMode {
	m := fs.FileMode(n.mode & 0o777)
	if n.mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.mode & 0xF000 {
	case 0x4000:
		m |= fs.ModeDir
	case 0xA000:
		m |= fs.ModeSymlink
	case 0x2000:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case 0x6000:
		m |= fs.ModeDevice
	case 0x1000:
		m |= fs.ModeNamedPipe
	case 0xC000:
		m |= fs.ModeSocket
	}
	return m
}

// Readlink returns a symbolic link's target: in i_block when short (a fast
// link), else the link's data.
func (n *inode) Readlink() (string, error) {
	if n.Mode()&fs.ModeSymlink == 0 {
		return "", errors.New("not a symbolic link")
	}
	if n.size > 4096 {
		return "", corrupt("inode %d: symlink of %d bytes", n.num, n.size)
	}
	if n.flags&(flagExtents|flagInlineData) == 0 && n.size < iBlockBytes { // a fast link
		return string(n.block[:n.size]), nil
	}
	r, err := n.Open()
	if err != nil {
		return "", err
	}
	b := make([]byte, n.size)
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		return "", err
	}
	return string(b), nil
}

// Open returns the content reader of a regular file (or a directory or a
// long symlink's data).
func (n *inode) Open() (io.ReaderAt, error) {
	if n.flags&flagEncrypt != 0 {
		return nil, fmt.Errorf("%w: ext4: inode %d (%s) is encrypted", formats.ErrUnsupported, n.num, n.name)
	}
	if n.flags&flagInlineData != 0 {
		data, err := n.inlineData()
		if err != nil {
			return nil, err
		}
		if int64(len(data)) < n.size {
			return nil, corrupt("inode %d: %d bytes of inline data for size %d", n.num, len(data), n.size)
		}
		return bytes.NewReader(data[:n.size]), nil
	}
	runs, err := n.blockMap()
	if err != nil {
		return nil, err
	}
	return &fileReader{f: n.f, runs: runs, size: n.size}, nil
}

// inlineData joins i_block and the system.data extended attribute.
func (n *inode) inlineData() ([]byte, error) {
	out := append([]byte(nil), n.block[:]...)
	val, err := n.ibodyXattr(7, "data")
	if err != nil {
		return nil, err
	}
	return append(out, val...), nil
}

// ibodyXattr finds an extended attribute stored inside the inode.
func (n *inode) ibodyXattr(index byte, name string) ([]byte, error) {
	start := 128 + n.extraSize()
	if n.extraSize() == 0 || start+4 > int64(len(n.raw)) || binary.LittleEndian.Uint32(n.raw[start:]) != xattrMagic {
		return nil, nil
	}
	area := n.raw[start+4:]
	for o := 0; o+16 <= len(area); {
		nameLen, idx := int(area[o]), area[o+1]
		if nameLen == 0 && idx == 0 && binary.LittleEndian.Uint32(area[o:]) == 0 {
			return nil, nil
		}
		voff := int(binary.LittleEndian.Uint16(area[o+2:]))
		vsize := int(binary.LittleEndian.Uint32(area[o+8:]))
		if o+16+nameLen > len(area) {
			return nil, corrupt("inode %d: xattr entry at %d runs past the inode", n.num, o)
		}
		if idx == index && string(area[o+16:o+16+nameLen]) == name {
			if voff+vsize > len(area) || vsize < 0 {
				return nil, corrupt("inode %d: xattr %q value %d+%d outside the inode", n.num, name, voff, vsize)
			}
			return area[voff : voff+vsize], nil
		}
		o += (16 + nameLen + 3) &^ 3
	}
	return nil, nil
}

// run maps logical blocks [logical, logical+count) to physical blocks
// (phys 0: a hole or an uninitialised extent, which reads as zeros).
type run struct {
	logical, count, phys uint64
}

// maxRuns bounds a file's block map.
const maxRuns = 1 << 20

// blockMap lists the file's runs from its extent tree or block pointers.
func (n *inode) blockMap() ([]run, error) {
	var runs []run
	if n.flags&flagExtents != 0 {
		if err := n.extentNode(n.block[:], maxDepth, &runs, true); err != nil {
			return nil, err
		}
		return runs, nil
	}
	// ext2/3: 12 direct pointers, then single, double and triple indirect.
	ptrs := make([]uint32, 15)
	for i := range ptrs {
		ptrs[i] = binary.LittleEndian.Uint32(n.block[4*i:])
	}
	fileBlocks := uint64((n.size + n.f.BlockBytes - 1) / n.f.BlockBytes)
	logical := uint64(0)
	for i := 0; i < 12 && logical < fileBlocks; i++ {
		runs = appendRun(runs, logical, uint64(ptrs[i]))
		logical++
	}
	for level, p := range ptrs[12:] {
		if logical >= fileBlocks {
			break
		}
		var err error
		if runs, logical, err = n.indirect(uint64(p), level+1, runs, logical, fileBlocks); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

func appendRun(runs []run, logical, phys uint64) []run {
	if k := len(runs) - 1; k >= 0 {
		last := &runs[k]
		if last.logical+last.count == logical && ((phys == 0 && last.phys == 0) || (phys != 0 && last.phys != 0 && last.phys+last.count == phys)) {
			last.count++
			return runs
		}
	}
	return append(runs, run{logical: logical, count: 1, phys: phys})
}

// indirect walks an indirect block of the given level.
func (n *inode) indirect(block uint64, level int, runs []run, logical, fileBlocks uint64) ([]run, uint64, error) {
	per := uint64(n.f.BlockBytes / 4)
	span := uint64(1)
	for i := 1; i < level; i++ {
		span *= per
	}
	if block == 0 { // a hole covering this whole subtree
		cnt := min(span*per, fileBlocks-logical)
		runs = append(runs, run{logical: logical, count: cnt})
		return runs, logical + cnt, nil
	}
	b, err := n.f.readBlock(block)
	if err != nil {
		return nil, 0, fmt.Errorf("inode %d: indirect block: %w", n.num, err)
	}
	for i := uint64(0); i < per && logical < fileBlocks; i++ {
		p := uint64(binary.LittleEndian.Uint32(b[4*i:]))
		if level == 1 {
			runs = appendRun(runs, logical, p)
			logical++
		} else if runs, logical, err = n.indirect(p, level-1, runs, logical, fileBlocks); err != nil {
			return nil, 0, err
		}
		if len(runs) > maxRuns {
			return nil, 0, corrupt("inode %d: more than %d block runs", n.num, maxRuns)
		}
	}
	return runs, logical, nil
}

// extentNode decodes one node of an extent tree (in i_block, or a block
// whose tail checksum is verified).
func (n *inode) extentNode(b []byte, depthLeft int, runs *[]run, inInode bool) error {
	if len(b) < 12 || binary.LittleEndian.Uint16(b) != extentMagic {
		return corrupt("inode %d: extent header magic %#x", n.num, binary.LittleEndian.Uint16(b))
	}
	entries := int(binary.LittleEndian.Uint16(b[2:]))
	maxEnt := int(binary.LittleEndian.Uint16(b[4:]))
	depth := int(binary.LittleEndian.Uint16(b[6:]))
	if entries > maxEnt || 12+12*maxEnt > len(b) || depth > depthLeft {
		return corrupt("inode %d: extent node with %d of %d entries at depth %d", n.num, entries, maxEnt, depth)
	}
	if !inInode && n.f.metadataCsum() && 12+12*maxEnt+4 <= len(b) {
		tail := 12 + 12*maxEnt
		if got, want := crc32c(n.seed, b[:tail]), binary.LittleEndian.Uint32(b[tail:]); got != want {
			return corrupt("inode %d: extent block checksum %#x, stored %#x", n.num, got, want)
		}
	}
	for i := 0; i < entries; i++ {
		e := b[12+12*i:]
		if depth == 0 {
			logical := uint64(binary.LittleEndian.Uint32(e))
			length := uint64(binary.LittleEndian.Uint16(e[4:]))
			phys := uint64(binary.LittleEndian.Uint16(e[6:]))<<32 | uint64(binary.LittleEndian.Uint32(e[8:]))
			if length > 32768 { // uninitialised: reads as zeros
				length -= 32768
				phys = 0
			}
			if phys != 0 && phys+length > n.f.Blocks {
				return corrupt("inode %d: extent %d+%d past the %d-block file system", n.num, phys, length, n.f.Blocks)
			}
			if k := len(*runs); k > 0 && (*runs)[k-1].logical+(*runs)[k-1].count > logical {
				return corrupt("inode %d: extents overlap or are out of order at logical block %d", n.num, logical)
			}
			*runs = append(*runs, run{logical: logical, count: length, phys: phys})
			if len(*runs) > maxRuns {
				return corrupt("inode %d: more than %d extents", n.num, maxRuns)
			}
			continue
		}
		child := uint64(binary.LittleEndian.Uint16(e[8:]))<<32 | uint64(binary.LittleEndian.Uint32(e[4:]))
		cb, err := n.f.readBlock(child)
		if err != nil {
			return fmt.Errorf("inode %d: extent index: %w", n.num, err)
		}
		if err := n.extentNode(cb, depth-1, runs, false); err != nil {
			return err
		}
	}
	return nil
}

// fileReader reads a file through its runs; blocks no run maps are zeros.
type fileReader struct {
	f    *FS
	runs []run
	size int64
}

func (r *fileReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > r.size-off {
		p = p[:r.size-off]
	}
	bs := r.f.BlockBytes
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		lb := uint64(pos / bs)
		i, found := r.find(lb)
		var n int64
		if !found || r.runs[i].phys == 0 {
			// a hole: up to the next run (or the end)
			end := int64(len(p) - done)
			if found {
				end = min(end, int64(r.runs[i].logical+r.runs[i].count)*bs-pos)
			} else if i < len(r.runs) {
				end = min(end, int64(r.runs[i].logical)*bs-pos)
			}
			clear(p[done : done+int(end)])
			n = end
		} else {
			rn := r.runs[i]
			runEnd := int64(rn.logical+rn.count) * bs
			n = min(int64(len(p)-done), runEnd-pos)
			phys := int64(rn.phys+(lb-rn.logical))*bs + pos%bs
			if _, err := r.f.r.ReadAt(p[done:done+int(n)], phys); err != nil {
				return done, err
			}
		}
		done += int(n)
	}
	if done < want {
		return done, io.EOF
	}
	return done, nil
}

// find returns the index of the run holding logical block lb (found), or
// of the first run after it (len(runs) when none).
func (r *fileReader) find(lb uint64) (int, bool) {
	lo, hi := 0, len(r.runs)
	for lo < hi {
		mid := (lo + hi) / 2
		if r.runs[mid].logical+r.runs[mid].count <= lb {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(r.runs) && r.runs[lo].logical <= lb
}

// Directory entry fields and limits.
const (
	direntHeader  = 8
	maxDirBytes   = 1 << 30
	maxDirEntries = 1 << 22
)

// ReadDir lists a directory: every block's entries (htree index blocks
// hold none), with checksums verified where a block carries its tail.
func (n *inode) ReadDir() ([]fsnode.Node, error) {
	if !n.Mode().IsDir() {
		return nil, errors.New("not a directory")
	}
	if n.size > maxDirBytes {
		return nil, corrupt("directory inode %d of %d bytes (limit %d)", n.num, n.size, maxDirBytes)
	}
	if n.flags&flagInlineData != 0 {
		inline, err := n.inlineData()
		if err != nil {
			return nil, err
		}
		// The first 4 bytes are the parent's inode number; entries follow
		// in i_block and continue in system.data.
		ents, err := n.parseEntries(inline[4:iBlockBytes], false)
		if err != nil {
			return nil, err
		}
		more, err := n.parseEntries(inline[iBlockBytes:], false)
		return append(ents, more...), err
	}
	r, err := n.Open()
	if err != nil {
		return nil, err
	}
	var out []fsnode.Node
	block := make([]byte, n.f.BlockBytes)
	for off := int64(0); off+n.f.BlockBytes <= n.size; off += n.f.BlockBytes {
		if _, err := r.ReadAt(block, off); err != nil && err != io.EOF {
			return nil, fmt.Errorf("ext4: directory inode %d at %d: %w", n.num, off, err)
		}
		ents, err := n.parseEntries(block, true)
		if err != nil {
			return nil, err
		}
		if out = append(out, ents...); len(out) > maxDirEntries {
			return nil, corrupt("directory inode %d holds more than %d entries", n.num, maxDirEntries)
		}
	}
	return out, nil
}

// parseEntries decodes the entries of one directory block (or inline area).
func (n *inode) parseEntries(b []byte, block bool) ([]fsnode.Node, error) {
	if block && n.f.metadataCsum() && len(b) >= 12 {
		tail := b[len(b)-12:]
		if binary.LittleEndian.Uint32(tail) == 0 && binary.LittleEndian.Uint16(tail[4:]) == 12 && tail[7] == 0xDE {
			if got, want := crc32c(n.seed, b[:len(b)-12]), binary.LittleEndian.Uint32(tail[8:]); got != want {
				return nil, corrupt("directory inode %d: block checksum %#x, stored %#x", n.num, got, want)
			}
			b = b[:len(b)-12]
		}
	}
	var out []fsnode.Node
	for o := 0; o+direntHeader <= len(b); {
		ino := binary.LittleEndian.Uint32(b[o:])
		recLen := int(binary.LittleEndian.Uint16(b[o+4:]))
		nameLen := int(b[o+6])
		if recLen < direntHeader || o+recLen > len(b) || direntHeader+nameLen > recLen {
			return nil, corrupt("directory inode %d: entry at %d with record length %d, name length %d", n.num, o, recLen, nameLen)
		}
		name := string(b[o+direntHeader : o+direntHeader+nameLen])
		o += recLen
		if ino == 0 || name == "." || name == ".." || nameLen == 0 {
			continue
		}
		child, err := n.f.inode(ino, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, child)
	}
	return out, nil
}

// ID is the inode number: the file's identity for loop and hard-link
// detection.
func (s *Stat) ID() uint64 { return uint64(s.Inode) }
