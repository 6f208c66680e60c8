package qcow2

import (
	"encoding/binary"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// writer is the state of a writable image: every refcount is kept in memory
// (one counter per host cluster) and the metadata changed since the last
// Flush (L2 tables still cached, L1, refcount blocks and table, header) is
// written at Flush. Allocation only appends at fileEnd, so it never has to search for
// free clusters; clusters freed by rewrites stay in the file with refcount 0.
//
// Metadata reaches the file in qemu's order, so that an interruption at
// any write leaves an image whose refcounts are never below its references
// (at worst leaked clusters): refcount blocks with every increase (and no
// decrease yet), the refcount table and its header fields, then L2 tables,
// the L1 table and the header, and last the refcount blocks with the
// decreases. An L2 table is written only once the data of every cluster it
// newly maps is written (inflight), and a failed write stops all later
// metadata writes (err). Existing images get a sync barrier between the
// steps; a new image (a temporary output until it is complete) does not.
type writer struct {
	refcounts   refStore // per host cluster
	refBits     uint     // refcount_bits
	maxRef      uint64
	rcPerBlock  int64 // refcount entries per refcount block
	reftable    []uint64
	dirtyBlocks map[int64]bool
	dirtyL2     map[int64]bool
	reftableDty bool
	l1Dirty     bool
	hdrDirty    bool
	fileEnd     int64 // first unallocated host offset (cluster aligned)
	startEnd    int64 // fileEnd when writing started
	compOff     int64 // next free byte of the cluster being packed with compressed data; 0: none
	tailBytes   int64 // bytes used of the last cluster when it holds compressed data; 0: full
	err         error // the first failed write; no metadata is written after it
	barriers    bool  // sync between the ordered steps of a flush
	// preDec holds, for each cluster whose refcount dropped since the last
	// flush, its refcount before the first drop: the value the refcount
	// blocks keep until the L2 and L1 tables that dropped the references
	// are written.
	preDec   map[int64]uint64
	inflight map[int64]int      // L2 table offset -> writes whose data is not yet written
	pending  map[int64][]uint64 // evicted dirty L2 tables waiting for their in-flight data
	// diskReftable is the refcount table offset the header on disk names.
	diskReftable uint64
	bms          *bitmapState // persistent dirty bitmaps, marked by writes
}

// newWriter returns an empty writer for refcount_order order.
func newWriter(img *Image, order uint32) *writer {
	bits := uint(1) << order
	maxRef := ^uint64(0)
	if bits < 64 {
		maxRef = 1<<bits - 1
	}
	return &writer{refBits: bits, maxRef: maxRef, rcPerBlock: img.clusterSize * 8 / int64(bits),
		dirtyBlocks: map[int64]bool{}, dirtyL2: map[int64]bool{}, preDec: map[int64]uint64{},
		inflight: map[int64]int{}, pending: map[int64][]uint64{}, diskReftable: img.hdr.RefcountTableOffset}
}

// startWriter prepares an existing image for writing: it loads the refcount
// structure (or recomputes it from the references when the dirty bit says
// it cannot be trusted).
func (img *Image) startWriter() error {
	w := newWriter(img, img.hdr.RefcountOrder)
	w.barriers = true
	img.cache.OnEvict(img.evictL2)
	if unknown := img.hdr.AutoclearFeatures &^ (autoclearBitmaps | autoclearRawData); unknown != 0 && !img.corruptBit {
		// The spec: a writer clears the autoclear bits it does not know.
		img.hdr.AutoclearFeatures &^= unknown
		w.hdrDirty = true
	}
	w.fileEnd, w.startEnd = img.fileEnd, img.fileEnd
	rt, err := img.readTable("refcount table", img.hdr.RefcountTableOffset, uint64(img.hdr.RefcountTableClusters)*uint64(img.clusterSize)/8)
	if err != nil {
		return err
	}
	w.reftable = rt
	img.w = w
	if img.hdr.IncompatibleFeatures&incompatDirty != 0 {
		refs, _, err := img.countReferences(nil)
		if err != nil {
			return err
		}
		w.refcounts = refs
		for b := range refs.len()/w.rcPerBlock + 1 {
			w.dirtyBlocks[b] = true
		}
		img.hdr.IncompatibleFeatures &^= incompatDirty
		w.hdrDirty = true
		return nil
	}
	if w.refcounts, err = img.readRefcounts(rt, w.fileEnd/img.clusterSize); err != nil {
		return err
	}
	w.bms, err = img.loadBitmaps()
	return err
}

// readRefcounts loads the refcounts of the first n host clusters (straight
// into the 2-byte store: no 8-byte copy per host cluster on the way).
func (img *Image) readRefcounts(rt []uint64, n int64) (refStore, error) {
	w := img.w
	if err := img.budget.Charge(img.name, "refcounts", -1, 2*n); err != nil {
		return refStore{}, err
	}
	refs := refStore{small: make([]uint16, n)}
	block := make([]byte, img.clusterSize)
	for b := int64(0); b*w.rcPerBlock < n && b < int64(len(rt)); b++ {
		off := int64(rt[b] & offsetMask)
		if off == 0 {
			continue
		}
		if off%img.clusterSize != 0 || off+img.clusterSize > img.fileEnd || rt[b]&^offsetMask != 0 {
			// Unusable: forget it (check -r all reports and rebuilds it).
			rt[b] = 0
			w.reftableDty = true
			continue
		}
		if _, err := img.f.ReadAt(block, off); err != nil {
			return refs, fmt.Errorf("%s: reading refcount block at %d: %w", img.name, off, err)
		}
		for i := int64(0); i < w.rcPerBlock && b*w.rcPerBlock+i < n; i++ {
			refs.set(b*w.rcPerBlock+i, getRefcount(block, i, w.refBits))
		}
	}
	return refs, nil
}

// getRefcount reads entry i of a refcount block of bits-wide entries.
func getRefcount(block []byte, i int64, bits uint) uint64 {
	switch bits {
	case 64:
		return binary.BigEndian.Uint64(block[8*i:])
	case 32:
		return uint64(binary.BigEndian.Uint32(block[4*i:]))
	case 16:
		return uint64(binary.BigEndian.Uint16(block[2*i:]))
	case 8:
		return uint64(block[i])
	}
	perByte := int64(8 / bits)
	shift := uint(i%perByte) * bits
	return uint64(block[i/perByte]>>shift) & (1<<bits - 1)
}

// setRefcount writes entry i of a refcount block.
func setRefcount(block []byte, i int64, bits uint, v uint64) {
	switch bits {
	case 64:
		binary.BigEndian.PutUint64(block[8*i:], v)
	case 32:
		binary.BigEndian.PutUint32(block[4*i:], uint32(v))
	case 16:
		binary.BigEndian.PutUint16(block[2*i:], uint16(v))
	case 8:
		block[i] = byte(v)
	default:
		perByte := int64(8 / bits)
		shift := uint(i%perByte) * bits
		mask := byte(1<<bits-1) << shift
		block[i/perByte] = block[i/perByte]&^mask | byte(v)<<shift&mask
	}
}

// allocClusters appends n clusters with refcount 1 (caller holds img.mu).
func (img *Image) allocClusters(n int64) (int64, error) {
	w := img.w
	off := w.fileEnd
	if off+n*img.clusterSize > maxHostOffset {
		return 0, formats.Limitf(img.name, "host file", off, "image file would exceed the largest host offset")
	}
	w.fileEnd += n * img.clusterSize
	w.tailBytes = 0
	for i := range n {
		if err := img.addRef(off/img.clusterSize+i, 1); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// addRef adds delta (possibly negative) to the refcount of host cluster cl,
// creating the refcount block that covers it when needed.
func (img *Image) addRef(cl, delta int64) error {
	w := img.w
	if delta < 0 && (cl < 0 || cl >= w.refcounts.len()) {
		return formats.Corruptf(img.name, "refcount", -1, "freeing cluster %d that has no refcount", cl)
	}
	if cl >= w.refcounts.len() && cl > w.fileEnd/img.clusterSize+maxBeyondEOF {
		return formats.Corruptf(img.name, "refcount", -1, "cluster %d is far past the end of the file", cl)
	}
	v := w.refcounts.get(cl)
	switch {
	case delta < 0 && v < uint64(-delta):
		return formats.Corruptf(img.name, "refcount", cl*img.clusterSize, "refcount of cluster %d would drop below zero", cl)
	case delta > 0 && w.maxRef-v < uint64(delta):
		return formats.Limitf(img.name, "refcount", cl*img.clusterSize, "refcount of cluster %d would exceed %d", cl, w.maxRef)
	}
	if _, seen := w.preDec[cl]; delta < 0 && !seen {
		w.preDec[cl] = v
	}
	w.refcounts.set(cl, uint64(int64(v)+delta))
	blk := cl / w.rcPerBlock
	w.dirtyBlocks[blk] = true
	return img.ensureBlock(blk)
}

// ensureBlock makes sure refcount block blk exists.
func (img *Image) ensureBlock(blk int64) error {
	w := img.w
	if blk >= int64(len(w.reftable)) {
		if err := img.growReftable(blk + 1); err != nil {
			return err
		}
	}
	if w.reftable[blk]&offsetMask != 0 {
		return nil
	}
	off := w.fileEnd
	w.fileEnd += img.clusterSize
	w.tailBytes = 0
	w.reftable[blk] = uint64(off)
	w.reftableDty = true
	return img.addRef(off/img.clusterSize, 1)
}

// growReftable moves the refcount table to a larger place at the end of the
// file, with room to spare.
func (img *Image) growReftable(minEntries int64) error {
	w := img.w
	perCluster := img.clusterSize / 8
	clusters := (minEntries*3/2 + perCluster) / perCluster
	if clusters*img.clusterSize > maxReftableSize {
		return formats.Limitf(img.name, "refcount table", -1, "%d clusters exceed qemu's %d-byte limit", clusters, maxReftableSize)
	}
	off := w.fileEnd
	w.fileEnd += clusters * img.clusterSize
	w.tailBytes = 0
	table := make([]uint64, clusters*perCluster)
	copy(table, w.reftable)
	oldOff, oldClusters := int64(img.hdr.RefcountTableOffset), int64(img.hdr.RefcountTableClusters)
	w.reftable = table
	img.hdr.RefcountTableOffset, img.hdr.RefcountTableClusters = uint64(off), uint32(clusters)
	w.reftableDty, w.hdrDirty = true, true
	for i := range clusters {
		if err := img.addRef(off/img.clusterSize+i, 1); err != nil {
			return err
		}
	}
	if oldOff != 0 {
		for i := range oldClusters {
			if err := img.addRef(oldOff/img.clusterSize+i, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// refcount returns the refcount of host cluster cl.
func (w *writer) refcount(cl int64) uint64 {
	return w.refcounts.get(cl)
}

// encodeBlock renders refcount block blk; with keepDropped, a refcount that
// dropped since the last flush keeps its value from before the drop.
func (img *Image) encodeBlock(blk int64, buf []byte, keepDropped bool) {
	w := img.w
	clear(buf)
	first := blk * w.rcPerBlock
	for i := int64(0); i < w.rcPerBlock && first+i < w.refcounts.len(); i++ {
		v := w.refcounts.get(first + i)
		if pre, ok := w.preDec[first+i]; keepDropped && ok && pre > v {
			v = pre
		}
		if v != 0 {
			setRefcount(buf, i, w.refBits, v)
		}
	}
}

// refStore holds one refcount per host cluster in 16 bits, with the rare
// larger values aside, so a writer needs 2 bytes per host cluster.
type refStore struct {
	small []uint16
	big   map[int64]uint64 // values >= 0xffff
}

func (r *refStore) len() int64 { return int64(len(r.small)) }

func (r *refStore) get(cl int64) uint64 {
	if cl < 0 || cl >= int64(len(r.small)) {
		return 0
	}
	if v := r.small[cl]; v != 0xffff {
		return uint64(v)
	}
	return r.big[cl]
}

func (r *refStore) set(cl int64, v uint64) {
	if cl >= int64(len(r.small)) {
		grown := make([]uint16, max(cl+1, int64(len(r.small))*5/4+64))
		copy(grown, r.small)
		r.small = grown
	}
	if v < 0xffff {
		r.small[cl] = uint16(v)
		delete(r.big, cl)
		return
	}
	if r.big == nil {
		r.big = map[int64]uint64{}
	}
	r.small[cl] = 0xffff
	r.big[cl] = v
}
