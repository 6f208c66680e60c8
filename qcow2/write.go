package qcow2

import (
	"encoding/binary"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// hostWrite is a data write planned under the lock and done after it.
type hostWrite struct {
	host int64
	buf  []byte
}

// dataWritable is writable for what changes guest data or its mapping:
// an image with an external data file opens writable for its metadata
// only (amend, bitmaps, the backing link).
func (img *Image) dataWritable() error {
	if err := img.writable(); err != nil {
		return err
	}
	if img.dataName != "" {
		return formats.Unsupportedf(img.name, "writing to a qcow2 image with an external data file")
	}
	return nil
}

func (img *Image) writable() error {
	if img.corruptBit {
		return fmt.Errorf("%s: image is corrupt (corrupt bit set): only check -r may write to it: %w", img.name, formats.ErrReadOnly)
	}
	if img.w == nil || img.readOnly {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	return nil
}

// WriteAt writes virtual bytes. Concurrent calls on disjoint ranges are
// safe: clusters are allocated under the lock, and a partial write to a
// cluster that is not yet allocated (or is shared, compressed or zero) is
// completed with the cluster's old content under the lock too.
func (img *Image) WriteAt(p []byte, off int64) (int, error) {
	if err := img.dataWritable(); err != nil {
		return 0, err
	}
	if err := imageio.CheckWrite(img.name, len(p), off, img.size); err != nil {
		return 0, err
	}
	if img.crypt != nil {
		return img.writeEncrypted(p, off)
	}
	img.mu.Lock()
	err := img.markDirty(off, int64(len(p)))
	var writes []hostWrite
	var tables []int64
	if err == nil {
		writes, tables, err = img.planWrite(p, off)
	}
	img.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := img.writeData(writes, tables); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeData writes planned data, then lets the L2 tables that map it go.
func (img *Image) writeData(writes []hostWrite, tables []int64) error {
	var werr error
	for _, hw := range coalesce(writes) {
		if _, werr = img.f.WriteAt(hw.buf, hw.host); werr != nil {
			break
		}
	}
	img.landData(tables, werr)
	return werr
}

// coalesce merges writes contiguous both on the host and in memory.
func coalesce(ws []hostWrite) []hostWrite {
	var out []hostWrite
	for _, w := range ws {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.host+int64(len(last.buf)) == w.host && cap(last.buf) > len(last.buf) &&
				&last.buf[:len(last.buf)+1][len(last.buf)] == &w.buf[0] {
				last.buf = last.buf[:len(last.buf)+len(w.buf)]
				continue
			}
		}
		out = append(out, w)
	}
	return out
}

// planWrite maps p at off onto host clusters (caller holds img.mu). It
// returns the writes and, for each newly mapped cluster, its L2 table
// (in flight until the data is written: see landData).
func (img *Image) planWrite(p []byte, off int64) ([]hostWrite, []int64, error) {
	cs := img.clusterSize
	var writes []hostWrite
	var fresh []int64 // virtual clusters fully covered that need a new cluster
	end := off + int64(len(p))
	for pos := off; pos < end; {
		vc := pos / cs
		base := vc * cs
		cEnd := min(end, base+cs)
		chunk := p[pos-off : cEnd-off]
		entry, bitmap, err := img.lookup(vc)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case img.inPlace(entry, bitmap):
			if err := img.checkHost(vc, int64(entry&offsetMask)); err != nil {
				return nil, nil, err
			}
			writes = append(writes, hostWrite{host: int64(entry&offsetMask) + pos - base, buf: chunk})
		case pos == base && cEnd == min(base+cs, img.size) || img.crypt == nil && img.readsZero(entry, bitmap):
			// Fully written, or all zeros before: a new cluster needs no
			// filling, since allocation only appends and new host clusters
			// read as zeros until written.
			fresh = append(fresh, vc)
		default:
			if err := img.rewriteCluster(vc, entry, chunk, pos-base); err != nil {
				return nil, nil, err
			}
		}
		pos = cEnd
	}
	if len(fresh) == 0 {
		return writes, nil, nil
	}
	// Allocate the fully written clusters as one contiguous run (the
	// refcount blocks and L2 tables they need are appended after it).
	host, err := img.allocClusters(int64(len(fresh)))
	if err != nil {
		return nil, nil, err
	}
	tables := make([]int64, 0, len(fresh))
	for i, vc := range fresh {
		h := host + int64(i)*cs
		if err := img.setEntry(vc, uint64(h)|oflagCopied, subAllocMask); err != nil {
			img.dropInflight(tables)
			return nil, nil, err
		}
		tables = append(tables, img.startData(vc))
		from := max(vc*cs, off)
		to := min(vc*cs+cs, end)
		writes = append(writes, hostWrite{host: h + from - vc*cs, buf: p[from-off : to-off]})
	}
	sortWrites(writes)
	return writes, tables, nil
}

func sortWrites(ws []hostWrite) {
	// Insertion sort: the list is short and nearly sorted.
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && ws[j].host < ws[j-1].host; j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}

// readsZero reports whether a cluster's current content is all zeros
// without reading it.
func (img *Image) readsZero(entry, bitmap uint64) bool {
	if entry&oflagCompressed != 0 {
		return false
	}
	if img.extL2 {
		return bitmap&subAllocMask == 0 && (!img.hasBacking() || bitmap>>32 == subAllocMask)
	}
	if entry&oflagZero != 0 && img.hdr.Version >= 3 {
		return true
	}
	return entry&offsetMask == 0 && !img.hasBacking()
}

// inPlace reports whether a write may go straight to the cluster's host
// bytes: a normal cluster with refcount 1 and (extended L2) all subclusters
// allocated.
func (img *Image) inPlace(entry, bitmap uint64) bool {
	if entry&oflagCompressed != 0 || entry&oflagCopied == 0 || entry&offsetMask == 0 {
		return false
	}
	if img.extL2 {
		return bitmap&subAllocMask == subAllocMask
	}
	return entry&oflagZero == 0
}

// rewriteCluster writes part of cluster vc that cannot be written in place:
// it reads the current content, merges data at inOff, writes the whole
// cluster to a new host cluster and frees the old one (caller holds img.mu).
func (img *Image) rewriteCluster(vc int64, entry uint64, data []byte, inOff int64) error {
	cs := img.clusterSize
	buf := make([]byte, cs)
	n := min(cs, img.size-vc*cs)
	if err := img.readClusterLocked(buf[:n], vc); err != nil {
		return err
	}
	copy(buf[inOff:], data)
	host, err := img.allocClusters(1)
	if err != nil {
		return err
	}
	img.encryptHost(buf, host)
	if _, err := img.f.WriteAt(buf, host); err != nil {
		if img.w.err == nil {
			img.w.err = fmt.Errorf("%s: an earlier data write failed, qcow2 metadata is no longer written: %w", img.name, err)
		}
		return err
	}
	return img.setEntry(vc, uint64(host)|oflagCopied, subAllocMask)
}

// readClusterLocked reads the current content of virtual cluster vc with
// the lock held.
func (img *Image) readClusterLocked(dst []byte, vc int64) error {
	base := vc * img.clusterSize
	segs, err := img.mapRange(base, int64(len(dst)), nil)
	if err != nil {
		return err
	}
	return img.readSegments(dst, base, segs, img.hostEnd())
}

// l2For returns the L2 table of virtual cluster vc, allocating it when
// missing (caller holds img.mu).
func (img *Image) l2For(vc int64) ([]uint64, int64, error) {
	l1i := vc >> img.l2Bits
	if l1i >= int64(len(img.l1)) {
		return nil, 0, formats.Corruptf(img.name, "L1 table", -1, "cluster %d is outside the L1 table", vc)
	}
	l1e := img.l1[l1i]
	off := int64(l1e & offsetMask)
	if off != 0 && l1e&oflagCopied != 0 {
		t, err := img.l2(off)
		return t, off, err
	}
	var old []uint64
	if off != 0 {
		// Shared with a snapshot: copy the table.
		t, err := img.l2(off)
		if err != nil {
			return nil, 0, err
		}
		// The copy takes over the active layer's references to the
		// table's clusters: their refcounts do not change.
		old = t
		if err := img.addRef(off/img.clusterSize, -1); err != nil {
			return nil, 0, err
		}
	}
	nOff, err := img.allocClusters(1)
	if err != nil {
		return nil, 0, err
	}
	t := make([]uint64, img.clusterSize/8)
	copy(t, old)
	if old != nil {
		img.recomputeCopied(t)
	}
	img.cache.Put(nOff, t, true)
	img.w.dirtyL2[nOff] = true
	img.l1[l1i] = uint64(nOff) | oflagCopied
	img.w.l1Dirty = true
	return t, nOff, nil
}

// refEntry adds delta to the refcounts of the host clusters an L2 entry uses.
func (img *Image) refEntry(e uint64, delta int64) error {
	if e&oflagCompressed != 0 {
		coff, n := img.compressedRange(e)
		start := coff &^ (sectorSize - 1)
		last := (coff + n - 1) / img.clusterSize
		for cl := start / img.clusterSize; cl <= last; cl++ {
			if err := img.addRef(cl, delta); err != nil {
				return err
			}
		}
		return nil
	}
	if h := int64(e & offsetMask); h != 0 {
		return img.addRef(h/img.clusterSize, delta)
	}
	return nil
}

// recomputeCopied sets COPIED on the entries whose cluster has refcount 1.
func (img *Image) recomputeCopied(t []uint64) {
	step := 1
	if img.extL2 {
		step = 2
	}
	for i := 0; i < len(t); i += step {
		e := t[i]
		if e&oflagCompressed != 0 || e&offsetMask == 0 {
			continue
		}
		if img.w.refcount(int64(e&offsetMask)/img.clusterSize) == 1 {
			t[i] = e | oflagCopied
		} else {
			t[i] = e &^ oflagCopied
		}
	}
}

// setEntry replaces the L2 entry of vc, freeing what the old one used.
// allocBits is the extended-L2 bitmap for a normal entry (ignored otherwise).
func (img *Image) setEntry(vc int64, entry, bitmap uint64) error {
	t, off, err := img.l2For(vc)
	if err != nil {
		return err
	}
	i := vc & (1<<img.l2Bits - 1)
	if img.extL2 {
		i *= 2
	}
	old := t[i]
	if img.extL2 {
		if entry&offsetMask == 0 && entry&oflagCompressed == 0 {
			entry = 0 // bitmap only (zero or unallocated)
		} else if entry&oflagCompressed != 0 {
			bitmap = 0
		}
		t[i+1] = bitmap
	}
	t[i] = entry
	img.w.dirtyL2[off] = true
	return img.refEntry(old, -1)
}

// WriteZeroes records [off, off+length) as zeros: whole clusters become
// zero clusters (v3), are unallocated (v2 without backing) or written with
// zeros (v2 with a backing file); partial clusters are written as zeros.
func (img *Image) WriteZeroes(off, length int64) error {
	if err := img.dataWritable(); err != nil {
		return err
	}
	if err := imageio.CheckWrite(img.name, 0, off, img.size); err != nil || length < 0 || length > img.size-off {
		return fmt.Errorf("%s: zero range %d+%d outside the disk", img.name, off, length)
	}
	img.mu.Lock()
	err := img.markDirty(off, length)
	img.mu.Unlock()
	if err != nil {
		return err
	}
	return img.zeroRange(off, length)
}

// zeroRange is WriteZeroes without marking the bitmaps.
func (img *Image) zeroRange(off, length int64) error {
	cs := img.clusterSize
	end := off + length
	for off < end {
		base := off / cs * cs
		cEnd := min(end, base+cs)
		full := off == base && cEnd == min(base+cs, img.size)
		if err := img.zeroCluster(base/cs, off, cEnd, full); err != nil {
			return err
		}
		off = cEnd
	}
	return nil
}

// zeroCluster zeroes [from, to) of virtual cluster vc.
func (img *Image) zeroCluster(vc, from, to int64, full bool) error {
	img.mu.Lock()
	entry, bitmap, err := img.lookup(vc)
	if err != nil {
		img.mu.Unlock()
		return err
	}
	unallocated := entry&(offsetMask|oflagCompressed|oflagZero) == 0 && bitmap == 0
	zero := !img.extL2 && entry&oflagZero != 0 && img.hdr.Version >= 3 ||
		img.extL2 && entry&oflagCompressed == 0 && bitmap>>32 == subAllocMask
	if zero || unallocated && !img.hasBacking() {
		img.mu.Unlock()
		return nil
	}
	if full && (img.hdr.Version >= 3 || !img.hasBacking()) {
		var e, bm uint64
		if img.hdr.Version >= 3 && (img.hasBacking() || !unallocated) {
			e, bm = oflagZero, uint64(subAllocMask)<<32
			if img.extL2 {
				e = 0
			}
			if !img.hasBacking() {
				e, bm = 0, 0 // unallocated reads as zeros too
			}
		}
		err = img.setEntry(vc, e, bm)
		img.mu.Unlock()
		return err
	}
	img.mu.Unlock()
	_, err = img.WriteAt(make([]byte, to-from), from)
	return err
}

// closeWriter stores the bitmaps as consistent and flushes (Close).
func (img *Image) closeWriter() error {
	img.mu.Lock()
	defer img.mu.Unlock()
	if err := img.closeBitmaps(); err != nil {
		return err
	}
	return img.flushLocked()
}

// Flush writes the metadata changed since the last Flush: L2 tables, the L1
// table, refcount blocks, the refcount table and the header.
func (img *Image) Flush() error {
	if img.w == nil {
		return nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.flushLocked()
}

func (img *Image) flushLocked() error {
	w := img.w
	if w.err != nil {
		return w.err
	}
	if err := img.flushOrdered(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// flushOrdered writes the changed metadata in the order the writer's doc
// gives, with barriers between the steps.
func (img *Image) flushOrdered() error {
	w := img.w
	if err := img.flushRefcountIncreases(); err != nil {
		return err
	}
	if len(w.dirtyL2) > 0 {
		buf := make([]byte, img.clusterSize)
		for off := range w.dirtyL2 {
			t, ok := img.cache.Get(off)
			if !ok {
				t, ok = w.pending[off]
			}
			if ok {
				if err := img.writeTable(t, off, buf); err != nil {
					return err
				}
			}
		}
		clear(w.dirtyL2)
		clear(w.pending)
		if err := img.barrier(); err != nil {
			return err
		}
	}
	if w.l1Dirty {
		if err := img.writeTable(img.l1, int64(img.hdr.L1TableOffset), nil); err != nil {
			return err
		}
		w.l1Dirty = false
		if err := img.barrier(); err != nil {
			return err
		}
	}
	if w.hdrDirty {
		if _, err := img.f.WriteAt(img.hdr.encode(), 0); err != nil {
			return err
		}
		w.hdrDirty = false
		if err := img.barrier(); err != nil {
			return err
		}
	}
	if err := img.flushRefcountDecreases(); err != nil {
		return err
	}
	return img.fixFileSize()
}

// flushRefcountIncreases writes the changed refcount blocks with every
// increase but no decrease since the last flush, then the refcount table
// and, when the table moved, the header fields that name it (as qemu
// does, before anything that needs the new refcounts).
func (img *Image) flushRefcountIncreases() error {
	w := img.w
	if len(w.dirtyBlocks) == 0 && !w.reftableDty {
		return nil
	}
	buf := make([]byte, img.clusterSize)
	for blk := range w.dirtyBlocks {
		img.encodeBlock(blk, buf, true)
		if _, err := img.f.WriteAt(buf, int64(w.reftable[blk]&offsetMask)); err != nil {
			return err
		}
	}
	clear(w.dirtyBlocks)
	if !w.reftableDty {
		return img.barrier()
	}
	if err := img.barrier(); err != nil {
		return err
	}
	if err := img.writeTable(w.reftable, int64(img.hdr.RefcountTableOffset), nil); err != nil {
		return err
	}
	w.reftableDty = false
	if err := img.barrier(); err != nil {
		return err
	}
	if w.diskReftable == img.hdr.RefcountTableOffset {
		return nil
	}
	var fields [12]byte // refcount_table_offset (48), refcount_table_clusters (56)
	binary.BigEndian.PutUint64(fields[0:], img.hdr.RefcountTableOffset)
	binary.BigEndian.PutUint32(fields[8:], img.hdr.RefcountTableClusters)
	if _, err := img.f.WriteAt(fields[:], 48); err != nil {
		return err
	}
	w.diskReftable = img.hdr.RefcountTableOffset
	return img.barrier()
}

// flushRefcountDecreases rewrites the refcount blocks holding a refcount
// that dropped, once nothing on disk references what was freed.
func (img *Image) flushRefcountDecreases() error {
	w := img.w
	if len(w.preDec) == 0 {
		return nil
	}
	blocks := map[int64]bool{}
	for cl := range w.preDec {
		blocks[cl/w.rcPerBlock] = true
	}
	buf := make([]byte, img.clusterSize)
	for blk := range blocks {
		img.encodeBlock(blk, buf, false)
		if _, err := img.f.WriteAt(buf, int64(w.reftable[blk]&offsetMask)); err != nil {
			return err
		}
	}
	clear(w.preDec)
	return img.barrier()
}

// barrier syncs the file between ordered metadata steps (existing images).
func (img *Image) barrier() error {
	if !img.w.barriers {
		return nil
	}
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: syncing qcow2 metadata: %w", img.name, err)
	}
	return nil
}

// evictL2 writes a changed L2 table dropped from the cache, after the
// refcounts of what it maps; a table that maps a cluster whose data is not
// written yet waits in pending until that write lands.
func (img *Image) evictL2(off int64, entries []uint64) {
	w := img.w
	if !w.dirtyL2[off] {
		return
	}
	if w.inflight[off] > 0 {
		w.pending[off] = entries
		return
	}
	img.writeBack(off, entries)
}

// writeBack writes dirty L2 table off ahead of a flush (caller holds img.mu).
func (img *Image) writeBack(off int64, entries []uint64) {
	w := img.w
	delete(w.dirtyL2, off)
	delete(w.pending, off)
	if w.err != nil {
		return
	}
	if err := img.flushRefcountIncreases(); err != nil {
		w.err = err
		return
	}
	if err := img.writeTable(entries, off, nil); err != nil {
		w.err = err
	}
}

// dropInflight undoes startData for writes that will not happen (caller
// holds img.mu): the image stops writing metadata, as after a failed write.
func (img *Image) dropInflight(tables []int64) {
	for _, off := range tables {
		if img.w.inflight[off]--; img.w.inflight[off] <= 0 {
			delete(img.w.inflight, off)
		}
	}
	if len(tables) > 0 && img.w.err == nil {
		img.w.err = fmt.Errorf("%s: a write failed half planned, qcow2 metadata is no longer written", img.name)
	}
}

// startData records that the data of a cluster newly mapped by L2 table
// off is about to be written (caller holds img.mu).
func (img *Image) startData(vc int64) int64 {
	off := int64(img.l1[vc>>img.l2Bits] & offsetMask)
	img.w.inflight[off]++
	return off
}

// landData records the end of the data writes started for tables; a
// failed write stops every later metadata write (the tables would map
// clusters that hold no data).
func (img *Image) landData(tables []int64, werr error) {
	if len(tables) == 0 && werr == nil {
		return
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	w := img.w
	if werr != nil && w.err == nil {
		w.err = fmt.Errorf("%s: an earlier data write failed, qcow2 metadata is no longer written: %w", img.name, werr)
	}
	for _, off := range tables {
		if w.inflight[off]--; w.inflight[off] > 0 {
			continue
		}
		delete(w.inflight, off)
		if t, ok := w.pending[off]; ok {
			img.writeBack(off, t)
		}
	}
}

// fixFileSize extends the file to cover every allocated cluster. A trailing
// cluster holding compressed data ends at the 512-byte sector after its
// last byte, as qemu leaves it: a compressed cluster's descriptor counts
// whole sectors, and readers (qemu's among them) read them all.
func (img *Image) fixFileSize() error {
	w := img.w
	if w.fileEnd == w.startEnd {
		return nil // nothing allocated: leave the file as it was
	}
	want := w.fileEnd
	if w.tailBytes > 0 {
		want = roundUp(w.fileEnd-img.clusterSize+w.tailBytes, compressedSector)
	}
	size, err := img.f.Size()
	if err != nil {
		return err
	}
	if size < want {
		return img.f.Truncate(want)
	}
	return nil
}

// writeTable writes t at off as big-endian entries, encoded in buf when it
// is long enough (scratch space) or else in a new buffer.
func (img *Image) writeTable(t []uint64, off int64, buf []byte) error {
	if len(buf) < 8*len(t) {
		buf = make([]byte, 8*len(t))
	}
	buf = buf[:8*len(t)]
	for i, e := range t {
		binary.BigEndian.PutUint64(buf[8*i:], e)
	}
	_, err := img.f.WriteAt(buf, off)
	return err
}

// Compress appends the compressed form of a cluster to dst (the last
// cluster of the disk may be short: it is padded with zeros, as qemu does).
func (img *Image) Compress(dst, cluster []byte) ([]byte, bool, error) {
	if img.crypt != nil {
		return dst, false, errCompressEncrypted(img.name)
	}
	if int64(len(cluster)) < img.clusterSize {
		padded := make([]byte, img.clusterSize)
		copy(padded, cluster)
		cluster = padded
	}
	return img.codec.compress(dst, cluster)
}

// WriteCompressed stores compressed data for the cluster at virtual offset
// off. Compressed clusters are packed byte by byte into host clusters, as
// qemu does; a host cluster shared by N of them has refcount N.
func (img *Image) WriteCompressed(off int64, compressed []byte) error {
	if err := img.dataWritable(); err != nil {
		return err
	}
	cs := img.clusterSize
	n := int64(len(compressed))
	if off%cs != 0 || off < 0 || off >= img.size || n == 0 || n >= cs {
		return fmt.Errorf("%s: bad compressed write of %d bytes at %d", img.name, n, off)
	}
	if img.dataName != "" {
		return formats.Unsupportedf(img.name, "compressed clusters with an external data file")
	}
	if img.crypt != nil {
		return errCompressEncrypted(img.name)
	}
	img.mu.Lock()
	err := img.markDirty(off, cs)
	if err == nil {
		// The L2 table first, as qemu does: allocated after the data, it
		// would end the host cluster the compressed stream is packed into.
		_, _, err = img.l2For(off / cs)
	}
	var host int64
	if err == nil {
		host, err = img.allocBytes(n)
	}
	var tables []int64
	if err == nil {
		x := img.sectorsShift
		extra := uint64((host+n-1)>>9 - host>>9)
		err = img.setEntry(off/cs, uint64(host)|extra<<x|oflagCompressed, 0)
		if err == nil {
			tables = append(tables, img.startData(off/cs))
		}
	}
	img.mu.Unlock()
	if err != nil {
		return err
	}
	return img.writeData([]hostWrite{{host: host, buf: compressed}}, tables)
}

// allocBytes reserves n bytes (n < cluster size) for compressed data.
func (img *Image) allocBytes(n int64) (int64, error) {
	w := img.w
	cs := img.clusterSize
	if pos := w.compOff; pos != 0 {
		cur, last := pos/cs, (pos+n-1)/cs
		ok := w.refcount(cur) < w.maxRef && (last == cur || (cur+1)*cs == w.fileEnd)
		if ok {
			if err := img.addRef(cur, 1); err != nil {
				return 0, err
			}
			if last > cur {
				if _, err := img.allocClusters(1); err != nil {
					return 0, err
				}
			}
			img.advanceComp(pos + n)
			return pos, nil
		}
	}
	pos, err := img.allocClusters(1)
	if err != nil {
		return 0, err
	}
	img.advanceComp(pos + n)
	return pos, nil
}

func (img *Image) advanceComp(end int64) {
	w := img.w
	w.compOff = end
	if end%img.clusterSize == 0 {
		w.compOff = 0
	}
	if end > w.fileEnd-img.clusterSize {
		w.tailBytes = end - (w.fileEnd - img.clusterSize)
	}
}

// hasBacking reports whether the image names a backing file, opened or
// not (an image opened with NoBacking still must not read its
// unallocated clusters as zeros when it writes).
func (img *Image) hasBacking() bool { return img.backing != nil || img.backingName != "" }
