package qcow2

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Bitmap directory flags and limits (qcow2.txt "Bitmap directory").
const (
	bitmapInUse       = 1 << 0 // the bitmap on disk may be stale (an open writer)
	bitmapAuto        = 1 << 1 // enabled: every write marks it
	bitmapExtraCompat = 1 << 2 // unknown extra data may be ignored
	bitmapFlagsKnown  = bitmapInUse | bitmapAuto | bitmapExtraCompat
	bitmapTypeDirty   = 1
	minBitmapGran     = 9
	maxBitmapGran     = 31
	maxBitmapName     = 1023
	// bitmapTableReserved are the bits of a bitmap table entry that must be 0.
	bitmapTableReserved = 0xff000000000001fe
)

// Bitmap is a persistent dirty bitmap held in memory: bit i (least
// significant first in each byte, as qemu serialises them) covers virtual
// bytes [i*Granularity, (i+1)*Granularity).
type Bitmap struct {
	Name        string
	Granularity int64
	Enabled     bool // "auto": writes mark it
	InUse       bool // found in use: inconsistent, only removable
	Bits        []byte
}

// bitmapState is the loaded bitmaps of a writable image and the clusters
// their on-disk copy uses (freed when a new copy is stored).
type bitmapState struct {
	list      []*Bitmap
	clusters  []int64 // host clusters of the stored directory, tables and data
	inUseDisk bool    // the stored copy marks the enabled bitmaps in use
	changed   bool
}

// bitmapBits is how many bits a bitmap of granularity gran needs.
func bitmapBits(size, gran int64) int64 { return (size + gran - 1) / gran }

// parseBitmapDirectory decodes n directory entries strictly, as qemu does
// before it uses them (type, granularity, name, flags, extra data).
func parseBitmapDirectory(name string, dir []byte, dirOff int64, n uint32) ([]bitmapEntry, error) {
	be := binary.BigEndian
	var out []bitmapEntry
	seen := map[string]bool{}
	off := 0
	for i := uint32(0); i < n; i++ {
		at := dirOff + int64(off)
		if off+bitmapEntryFixed > len(dir) {
			return nil, formats.Corruptf(name, "bitmap directory", at, "entry %d runs past the directory", i)
		}
		e := dir[off:]
		nameLen, extraLen := int(be.Uint16(e[18:])), int64(be.Uint32(e[20:]))
		ent := bitmapEntry{tableOff: int64(be.Uint64(e[0:])), tableSize: int64(be.Uint32(e[8:])),
			flags: be.Uint32(e[12:]), granBits: e[17]}
		total := int64(bitmapEntryFixed) + extraLen + int64(nameLen)
		switch {
		case total > int64(len(e)):
			return nil, formats.Corruptf(name, "bitmap directory", at, "entry %d runs past the directory", i)
		case e[16] != bitmapTypeDirty:
			return nil, formats.Unsupportedf(name, "bitmap type %d (entry %d)", e[16], i)
		case ent.granBits < minBitmapGran || ent.granBits > maxBitmapGran:
			return nil, formats.Corruptf(name, "bitmap directory", at+17, "granularity bits %d outside %d..%d", ent.granBits, minBitmapGran, maxBitmapGran)
		case nameLen == 0 || nameLen > maxBitmapName:
			return nil, formats.Corruptf(name, "bitmap directory", at+18, "name of %d bytes (want 1..%d)", nameLen, maxBitmapName)
		case ent.flags&^bitmapFlagsKnown != 0:
			return nil, formats.Unsupportedf(name, "bitmap flags %#x (entry %d)", ent.flags, i)
		case extraLen != 0 && ent.flags&bitmapExtraCompat == 0:
			return nil, formats.Unsupportedf(name, "bitmap with %d bytes of extra data (entry %d)", extraLen, i)
		case ent.tableOff%512 != 0 || ent.tableOff < 0:
			return nil, formats.Corruptf(name, "bitmap directory", at, "bitmap table offset %#x is not aligned", ent.tableOff)
		}
		ent.name = string(e[int64(bitmapEntryFixed)+extraLen : total])
		ent.whole = true
		if seen[ent.name] {
			return nil, formats.Corruptf(name, "bitmap directory", at, "bitmap %q appears twice", ent.name)
		}
		seen[ent.name] = true
		out = append(out, ent)
		off += int((total + 7) &^ 7)
	}
	return out, nil
}

// encodeBitmapEntry renders a directory entry.
func encodeBitmapEntry(out []byte, tableOff int64, tableSize int64, flags uint32, granBits uint8, name string) []byte {
	var fixed [bitmapEntryFixed]byte
	be := binary.BigEndian
	be.PutUint64(fixed[0:], uint64(tableOff))
	be.PutUint32(fixed[8:], uint32(tableSize))
	be.PutUint32(fixed[12:], flags)
	fixed[16], fixed[17] = bitmapTypeDirty, granBits
	be.PutUint16(fixed[18:], uint16(len(name)))
	out = append(append(out, fixed[:]...), name...)
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	return out
}

// loadBitmaps reads every bitmap of the image into memory (caller holds
// img.mu; the image is writable). Their size is charged to the budget.
func (img *Image) loadBitmaps() (*bitmapState, error) {
	st := &bitmapState{}
	b := img.ext.Bitmaps
	if b == nil || img.hdr.AutoclearFeatures&autoclearBitmaps == 0 || b.NbBitmaps == 0 {
		return st, nil
	}
	cs := img.clusterSize
	if int64(b.DirectoryOff)%cs != 0 || b.DirectorySize == 0 || int64(b.DirectoryOff)+int64(b.DirectorySize) > img.fileEnd {
		return nil, formats.Corruptf(img.name, "bitmaps extension", -1, "directory at %#x (%d bytes) is not inside the file", b.DirectoryOff, b.DirectorySize)
	}
	dir := make([]byte, b.DirectorySize)
	if _, err := img.f.ReadAt(dir, int64(b.DirectoryOff)); err != nil {
		return nil, fmt.Errorf("%s: reading the bitmap directory: %w", img.name, err)
	}
	ents, err := parseBitmapDirectory(img.name, dir, int64(b.DirectoryOff), b.NbBitmaps)
	if err != nil {
		return nil, err
	}
	st.clusters = clusterSpan(int64(b.DirectoryOff), int64(b.DirectorySize), cs)
	for _, e := range ents {
		bm, used, err := img.loadBitmap(e)
		if err != nil {
			return nil, err
		}
		st.list = append(st.list, bm)
		st.clusters = append(st.clusters, used...)
	}
	return st, nil
}

// loadBitmap reads one bitmap's table and data.
func (img *Image) loadBitmap(e bitmapEntry) (*Bitmap, []int64, error) {
	cs := img.clusterSize
	gran := int64(1) << e.granBits
	nbits := bitmapBits(img.size, gran)
	want := (nbits + cs*8 - 1) / (cs * 8)
	if e.tableSize != want {
		return nil, nil, formats.Corruptf(img.name, "bitmap directory", -1, "bitmap %q has %d table entries, a %d-byte disk needs %d", e.name, e.tableSize, img.size, want)
	}
	if err := img.budget.Charge(img.name, "bitmap "+e.name, e.tableOff, (nbits+7)/8); err != nil {
		return nil, nil, err
	}
	bm := &Bitmap{Name: e.name, Granularity: gran, Enabled: e.flags&bitmapAuto != 0, InUse: e.flags&bitmapInUse != 0,
		Bits: make([]byte, (nbits+7)/8)}
	t, err := img.readTable("bitmap table", uint64(e.tableOff), uint64(e.tableSize))
	if err != nil {
		return nil, nil, err
	}
	used := clusterSpan(e.tableOff, e.tableSize*8, cs)
	chunk := make([]byte, cs)
	for i, te := range t {
		if te&bitmapTableReserved != 0 {
			return nil, nil, formats.Corruptf(img.name, "bitmap table", e.tableOff+int64(i)*8, "entry %#x has reserved bits set", te)
		}
		lo := int64(i) * cs
		hi := min(lo+cs, int64(len(bm.Bits)))
		host := int64(te & offsetMask)
		switch {
		case host == 0 && te&1 != 0:
			for k := lo; k < hi; k++ {
				bm.Bits[k] = 0xff
			}
		case host == 0:
		default:
			if host%cs != 0 || host+cs > img.fileEnd {
				return nil, nil, formats.Corruptf(img.name, "bitmap table", e.tableOff+int64(i)*8, "data cluster %#x is not inside the file", host)
			}
			if _, err := img.f.ReadAt(chunk, host); err != nil {
				return nil, nil, fmt.Errorf("%s: reading bitmap %q at %d: %w", img.name, e.name, host, err)
			}
			copy(bm.Bits[lo:hi], chunk)
			used = append(used, host/cs)
		}
	}
	return bm, used, nil
}

// clusterSpan lists the clusters [off, off+n) touches.
func clusterSpan(off, n, cs int64) []int64 {
	var out []int64
	if n <= 0 {
		return nil
	}
	for cl := off / cs; cl <= (off+n-1)/cs; cl++ {
		out = append(out, cl)
	}
	return out
}

// storeBitmaps writes the bitmaps as a new directory, tables and data,
// points the header at them, then frees the old copy (caller holds
// img.mu). inUse marks the enabled bitmaps in use, as qemu does while an
// image is open for writing.
func (img *Image) storeBitmaps(inUse bool) error {
	st := img.w.bms
	cs := img.clusterSize
	var dir []byte
	var used []int64
	for _, bm := range st.list {
		tableOff, tableSize, clusters, err := img.writeBitmapData(bm)
		if err != nil {
			return img.abort(err)
		}
		used = append(used, clusters...)
		flags := uint32(0)
		if bm.Enabled {
			flags |= bitmapAuto
		}
		if bm.InUse || inUse && bm.Enabled {
			flags |= bitmapInUse
		}
		dir = encodeBitmapEntry(dir, tableOff, tableSize, flags, uint8(bits.TrailingZeros64(uint64(bm.Granularity))), bm.Name)
	}
	var ext *bitmapsExt
	if len(dir) > 0 {
		off, err := img.allocClusters((int64(len(dir)) + cs - 1) / cs)
		if err != nil {
			return img.abort(err)
		}
		if _, err := img.f.WriteAt(dir, off); err != nil {
			return img.abort(err)
		}
		used = append(used, clusterSpan(off, int64(len(dir)), cs)...)
		ext = &bitmapsExt{NbBitmaps: uint32(len(st.list)), DirectorySize: uint64(len(dir)), DirectoryOff: uint64(off)}
	}
	err := img.rewriteHeader(func(h *header, e *extensions) {
		e.Bitmaps = ext
		h.AutoclearFeatures &^= autoclearBitmaps
		if ext != nil {
			h.AutoclearFeatures |= autoclearBitmaps
		}
	})
	if err != nil {
		return img.abort(err)
	}
	for _, cl := range st.clusters {
		if err := img.addRef(cl, -1); err != nil {
			return img.abort(err)
		}
	}
	st.clusters, st.inUseDisk, st.changed = used, inUse, false
	return img.flushLocked()
}

// writeBitmapData writes a bitmap's non-zero clusters and its table.
func (img *Image) writeBitmapData(bm *Bitmap) (int64, int64, []int64, error) {
	cs := img.clusterSize
	n := (int64(len(bm.Bits)) + cs - 1) / cs
	table := make([]uint64, n)
	var used []int64
	chunk := make([]byte, cs)
	for i := range n {
		lo, hi := i*cs, min((i+1)*cs, int64(len(bm.Bits)))
		if zero.Is(bm.Bits[lo:hi]) {
			continue
		}
		host, err := img.allocClusters(1)
		if err != nil {
			return 0, 0, nil, err
		}
		clear(chunk)
		copy(chunk, bm.Bits[lo:hi])
		if _, err := img.f.WriteAt(chunk, host); err != nil {
			return 0, 0, nil, err
		}
		table[i] = uint64(host)
		used = append(used, host/cs)
	}
	off, err := img.allocClusters((n*8 + cs - 1) / cs)
	if err != nil {
		return 0, 0, nil, err
	}
	if err := img.writeTable(table, off, nil); err != nil {
		return 0, 0, nil, err
	}
	return off, n, append(used, clusterSpan(off, n*8, cs)...), nil
}

// markDirty sets the bits of [off, off+n) in every enabled bitmap; the
// first time, the bitmaps are stored as in use before the data is written
// (caller holds img.mu).
func (img *Image) markDirty(off, n int64) error {
	st := img.w.bms
	if st == nil || n <= 0 {
		return nil
	}
	marked := false
	for _, bm := range st.list {
		if !bm.Enabled || bm.InUse {
			continue
		}
		marked = true
		for i := off / bm.Granularity; i <= (off+n-1)/bm.Granularity; i++ {
			bm.Bits[i/8] |= 1 << (i % 8)
		}
	}
	if !marked {
		return nil
	}
	st.changed = true
	if !st.inUseDisk {
		return img.storeBitmaps(true)
	}
	return nil
}

// closeBitmaps stores changed (or in-use marked) bitmaps as consistent
// (caller holds img.mu).
func (img *Image) closeBitmaps() error {
	if img.w == nil || img.w.bms == nil || img.w.err != nil || !img.w.bms.changed && !img.w.bms.inUseDisk {
		return nil
	}
	return img.storeBitmaps(false)
}

// bitmapsResizable refuses a resize while a bitmap is inconsistent, as
// qemu's qcow2_truncate_bitmaps_check does (caller holds img.mu).
func (img *Image) bitmapsResizable() error {
	if img.w.bms == nil {
		return nil
	}
	for _, bm := range img.w.bms.list {
		if bm.InUse {
			return inconsistent(bm.Name)
		}
	}
	return nil
}

// resizeBitmaps sizes every bitmap for a disk of newSize bytes as qemu's
// hbitmap_truncate does: bits past the new end are dropped, new bits are
// clear; growth is charged to the budget (caller holds img.mu).
func (img *Image) resizeBitmaps(newSize int64) error {
	if img.w.bms == nil {
		return nil
	}
	for _, bm := range img.w.bms.list {
		nbits := bitmapBits(newSize, bm.Granularity)
		n := (nbits + 7) / 8
		if grow := n - int64(len(bm.Bits)); grow > 0 {
			if err := img.budget.Charge(img.name, "bitmap "+bm.Name, -1, grow); err != nil {
				return err
			}
		}
		bits := make([]byte, n)
		copy(bits, bm.Bits)
		if r := nbits % 8; r != 0 {
			bits[n-1] &= 1<<r - 1
		}
		bm.Bits = bits
		img.w.bms.changed = true
	}
	return nil
}
