package qcow2

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// maxBeyondEOF bounds how many distinct clusters past the end of the file
// the checker tracks (hostile offsets could name 2^47 of them).
const maxBeyondEOF = 1 << 20

// scan is one pass of the checker over all references (qemu's
// calculate_refcounts and check_refcounts_l1/l2).
type scan struct {
	img        *Image
	rep        *formats.CheckReport
	refs       refStore // references per host cluster inside the file
	beyond     map[int64]uint64
	nbClusters int64
	fileLen    int64
	rebuild    bool
	badBlocks  map[int64]bool // refcount table entries that cannot be used
	nextContig int64
	mult       uint64 // references each inc adds
	budget     int64  // bytes of tables left to read: distinct tables fit in the file
	err        error
	// memo remembers each L2 table counted once: a table named again (by
	// a snapshot, or by a hostile L1 many times) adds its statistics and
	// is counted again with a multiplier at the end, so the work is bounded
	// by the distinct tables, not the number of L1 entries.
	memo map[int64]*l2Memo
}

type l2Memo struct {
	allocated, compressed, fragmented, corruptions int64
	extra                                          uint64
}

func (s *scan) msg(format string, args ...any) {
	s.rep.Messages = append(s.rep.Messages, fmt.Sprintf(format, args...))
}

func (s *scan) inc(off, length int64) {
	if length <= 0 || off < 0 {
		return
	}
	cs := s.img.clusterSize
	if off+length-s.fileLen > cs {
		s.msg("ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x%x size 0x%x", off, length)
		s.rep.Corruptions++
		return
	}
	for cl := off / cs; cl <= (off+length-1)/cs; cl++ {
		if cl < s.nbClusters {
			s.refs.set(cl, s.refs.get(cl)+s.mult)
		} else if len(s.beyond) < maxBeyondEOF {
			s.beyond[cl] += s.mult
		}
	}
}

func (s *scan) ref(cl int64) uint64 {
	if cl < s.nbClusters {
		return s.refs.get(cl)
	}
	return s.beyond[cl]
}

// countReferences computes the references to every host cluster. rep (may
// be nil) collects structural errors and cluster statistics.
func (img *Image) countReferences(rep *formats.CheckReport) (refStore, *scan, error) {
	if rep == nil {
		rep = &formats.CheckReport{}
	}
	fileSize, err := img.f.Size()
	if err != nil {
		return refStore{}, nil, err
	}
	cs := img.clusterSize
	nb := (fileSize + cs - 1) / cs
	if img.w != nil {
		nb = max(nb, img.w.fileEnd/cs)
	}
	s := &scan{img: img, rep: rep, refs: refStore{small: make([]uint16, nb)}, beyond: map[int64]uint64{}, nbClusters: nb, fileLen: fileSize, badBlocks: map[int64]bool{},
		mult: 1, memo: map[int64]*l2Memo{}, budget: 3*fileSize + 2*img.limits.MaxTableBytes + 1<<20}
	h := &img.hdr
	s.inc(0, cs)
	if err := s.checkL1(int64(h.L1TableOffset), int64(h.L1Size), true); err != nil {
		return refStore{}, nil, err
	}
	snapBytes := int64(0)
	for _, sn := range img.snapshots {
		snapBytes = sn.entryOffset + int64((snapshotFixedBytes+len(sn.Extra)+len(sn.ID)+len(sn.Name)+7)&^7) - int64(h.SnapshotsOffset)
		if uint64(sn.L1Size)*8 > maxL1Bytes || sn.L1TableOffset%uint64(cs) != 0 {
			s.msg("ERROR snapshot %q (%q) l1_offset=%#x l1_size=%#x: L1 table is invalid; snapshot table entry corrupted", sn.ID, sn.Name, sn.L1TableOffset, sn.L1Size)
			rep.Corruptions++
			continue
		}
		if err := s.checkL1(int64(sn.L1TableOffset), int64(sn.L1Size), false); err != nil {
			return refStore{}, nil, err
		}
	}
	if err := s.countRepeats(); err != nil {
		return refStore{}, nil, err
	}
	s.inc(int64(h.SnapshotsOffset), snapBytes)
	s.inc(int64(h.RefcountTableOffset), int64(h.RefcountTableClusters)*cs)
	if c := img.ext.Crypto; c != nil {
		s.inc(int64(c.Offset), int64(c.Length))
	}
	s.checkBitmaps()
	if err := s.checkRefblocks(); err != nil {
		return refStore{}, nil, err
	}
	if s.err != nil {
		return refStore{}, nil, s.err
	}
	return s.refs, s, nil
}

func (s *scan) readTable(off, n int64) []uint64 {
	img := s.img
	if n <= 0 || n*8 > img.limits.MaxTableBytes || off >= s.fileLen {
		return nil
	}
	s.budget -= n * 8
	if s.budget < 0 {
		if s.err == nil {
			s.err = formats.Limitf(img.name, "metadata tables", off, "tables named by the image add up to more than the file could hold")
		}
		return nil
	}
	buf := make([]byte, n*8)
	got, _ := img.f.ReadAt(buf, off)
	clear(buf[got:])
	return decodeTable(buf)
}

// checkL1 counts an L1 table, its L2 tables and their clusters.
func (s *scan) checkL1(off, n int64, active bool) error {
	img := s.img
	cs := img.clusterSize
	s.inc(off, n*8)
	var l1 []uint64
	if active && img.snapshotIndex < 0 {
		l1 = img.l1
	} else {
		if n*8 > maxL1Bytes {
			return nil
		}
		l1 = s.readTable(off, n)
	}
	for i, e := range l1 {
		if e&l1ReservedMask != 0 {
			s.msg("ERROR found L1 entry with reserved bits set: %x", e)
			s.rep.Corruptions++
		}
		l2Off := int64(e & offsetMask)
		if l2Off == 0 {
			continue
		}
		s.inc(l2Off, cs)
		if l2Off%cs != 0 {
			s.msg("ERROR l2_offset=%x: Table is not cluster aligned; L1 entry corrupted", l2Off)
			s.rep.Corruptions++
		}
		if m := s.memo[l2Off]; m != nil {
			m.extra++
			s.rep.Corruptions += m.corruptions
			if active {
				s.rep.AllocatedClusters += m.allocated
				s.rep.CompressedClusters += m.compressed
				s.rep.FragmentedClusters += m.fragmented
			}
			continue
		}
		t, err := s.l2Table(l2Off)
		if err != nil {
			return err
		}
		before := *s.rep
		s.checkL2(t, active, int64(i))
		s.memo[l2Off] = &l2Memo{allocated: s.rep.AllocatedClusters - before.AllocatedClusters,
			compressed:  s.rep.CompressedClusters - before.CompressedClusters,
			fragmented:  s.rep.FragmentedClusters - before.FragmentedClusters,
			corruptions: s.rep.Corruptions - before.Corruptions}
	}
	return nil
}

// l2Table reads an L2 table for the checker.
func (s *scan) l2Table(off int64) ([]uint64, error) {
	img := s.img
	if img.w != nil && off%img.clusterSize == 0 {
		img.mu.Lock()
		defer img.mu.Unlock()
		return img.l2(off)
	}
	return s.readTable(off, img.clusterSize/8), nil
}

// countRepeats counts again the references of L2 tables named more than
// once, without repeating their messages.
func (s *scan) countRepeats() error {
	rep := s.rep
	defer func() { s.rep, s.mult = rep, 1 }()
	s.rep = &formats.CheckReport{}
	for off, m := range s.memo {
		if m.extra == 0 {
			continue
		}
		t, err := s.l2Table(off)
		if err != nil {
			return err
		}
		s.mult = m.extra
		s.checkL2(t, false, 0)
	}
	return nil
}

// checkL2 counts the clusters of one L2 table.
func (s *scan) checkL2(t []uint64, active bool, l1i int64) {
	img := s.img
	cs := img.clusterSize
	step := 1
	if img.extL2 {
		step = 2
	}
	s.nextContig = 0 // qemu measures fragmentation within each L2 table
	for j := 0; j < len(t); j += step {
		e := t[j]
		switch {
		case e&oflagCompressed != 0:
			if e&oflagCopied != 0 {
				s.msg("ERROR: coffset=0x%x: copied flag must never be set for compressed clusters", e&(1<<img.sectorsShift-1))
				s.rep.Corruptions++
			}
			if img.extL2 && t[j+1] != 0 {
				s.msg("ERROR compressed cluster %d with non-zero subcluster allocation bitmap, entry=0x%x", l1i<<img.l2Bits+int64(j/step), e)
				s.rep.Corruptions++
			}
			if active {
				s.rep.AllocatedClusters++
				s.rep.CompressedClusters++
				s.rep.FragmentedClusters++
			}
			coff, n := img.compressedRange(e)
			start := coff &^ (sectorSize - 1)
			s.inc(start, coff+n-start)
		case e&offsetMask != 0:
			off := int64(e & offsetMask)
			if e&l2ReservedMask != 0 {
				s.msg("ERROR found l2 entry with reserved bits set: %x", e)
				s.rep.Corruptions++
			}
			if active {
				s.rep.AllocatedClusters++
				if s.nextContig != 0 && off != s.nextContig {
					s.rep.FragmentedClusters++
				}
				s.nextContig = off + cs
			}
			if off%cs != 0 {
				s.msg("ERROR offset=%x: Cluster is not properly aligned; L2 entry corrupted", off)
				s.rep.Corruptions++
				continue
			}
			if img.dataName == "" {
				s.inc(off, cs)
			}
		}
	}
}

// checkBitmaps counts the bitmap directory, bitmap tables and their clusters.
func (s *scan) checkBitmaps() {
	img := s.img
	dir := img.bitmapDir()
	if dir == nil {
		return
	}
	b := img.ext.Bitmaps
	s.inc(int64(b.DirectoryOff), int64(b.DirectorySize))
	for _, e := range dir {
		s.inc(e.tableOff, e.tableSize*8)
		for _, te := range s.readTable(e.tableOff, e.tableSize) {
			if o := int64(te & offsetMask); o != 0 {
				s.inc(o, img.clusterSize)
			}
		}
	}
}

// checkRefblocks counts the refcount blocks (qemu's check_refblocks).
func (s *scan) checkRefblocks() error {
	img := s.img
	cs := img.clusterSize
	rt := s.reftable()
	for i, e := range rt {
		off := int64(e & offsetMask)
		if e&0xfffffffffffffe00 != e&offsetMask || off%cs != 0 {
			s.msg("ERROR refcount block %d is not cluster aligned; refcount table entry corrupted", i)
			s.rep.Corruptions++
			s.badBlocks[int64(i)] = true
			continue
		}
		if off == 0 {
			continue
		}
		if off/cs >= s.nbClusters {
			s.msg("ERROR refcount block %d is outside image", i)
			s.rep.Corruptions++
			s.badBlocks[int64(i)] = true
			continue
		}
		s.inc(off, cs)
		if r := s.ref(off / cs); r != 1 {
			s.msg("ERROR refcount block %d refcount=%d", i, r)
			s.rep.Corruptions++
			s.rebuild = true
			s.badBlocks[int64(i)] = true
		}
	}
	return nil
}

func (s *scan) reftable() []uint64 {
	if s.img.w != nil {
		return s.img.w.reftable
	}
	return s.readTable(int64(s.img.hdr.RefcountTableOffset), int64(s.img.hdr.RefcountTableClusters)*s.img.clusterSize/8)
}

// diskRefcount reads the stored refcount of cluster cl (0 when its block is
// missing or unusable).
type refReader struct {
	img   *Image
	rt    []uint64
	bits  uint
	per   int64
	blk   int64
	block []byte
	bad   map[int64]bool
}

func (r *refReader) get(cl int64) uint64 {
	if r.img.w != nil {
		return r.img.w.refcount(cl)
	}
	b := cl / r.per
	if b >= int64(len(r.rt)) || r.bad[b] || r.rt[b]&offsetMask == 0 {
		return 0
	}
	if b != r.blk {
		r.blk = b
		clear(r.block)
		n, _ := r.img.f.ReadAt(r.block, int64(r.rt[b]&offsetMask))
		clear(r.block[n:])
	}
	return getRefcount(r.block, cl%r.per, r.bits)
}

// Check verifies the refcounts against the references, as qemu-img check
// does, and repairs leaks (RepairLeaks) or everything (RepairAll) on an
// image opened writable. The report after a repair is that of a second
// check, with the fixed counters of the first.
func (img *Image) Check(ctx context.Context, opts formats.CheckOptions) (*formats.CheckReport, error) {
	fix := opts.RepairLeaks || opts.RepairAll
	if fix && img.w == nil {
		return nil, fmt.Errorf("%s: repairing needs the image opened read-write: %w", img.name, formats.ErrReadOnly)
	}
	if err := img.Flush(); err != nil {
		return nil, err
	}
	rep, s, err := img.checkPass(opts)
	if err != nil {
		return nil, err
	}
	if fix && rep.LeaksFixed+rep.CorruptionsFixed > 0 {
		if err := img.repair(s, opts); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		final, _, err := img.checkPass(formats.CheckOptions{})
		if err != nil {
			return nil, err
		}
		final.LeaksFixed, final.CorruptionsFixed = rep.LeaksFixed, rep.CorruptionsFixed
		final.Messages = append(rep.Messages, final.Messages...)
		rep = final
	}
	if fix && rep.Corruptions == 0 && rep.CheckErrors == 0 {
		err = img.markConsistent()
	}
	return rep, err
}

// markConsistent clears the dirty and corrupt bits after a successful
// check with repairs allowed, as qemu does: the image may be written again.
func (img *Image) markConsistent() error {
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.hdr.IncompatibleFeatures&(incompatDirty|incompatCorrupt) == 0 {
		return nil
	}
	img.hdr.IncompatibleFeatures &^= incompatDirty | incompatCorrupt
	img.corruptBit = false
	img.readOnly = false
	img.w.hdrDirty = true
	return img.flushLocked()
}

// checkPass compares references with refcounts once; with repair options
// it counts what will be fixed instead of reporting it.
func (img *Image) checkPass(opts formats.CheckOptions) (*formats.CheckReport, *scan, error) {
	rep := &formats.CheckReport{HasClusterStats: true}
	_, s, err := img.countReferences(rep)
	if err != nil {
		return nil, nil, err
	}
	rep.TotalClusters = (img.size + img.clusterSize - 1) / img.clusterSize
	rr := &refReader{img: img, rt: s.reftable(), bits: uint(1) << img.hdr.RefcountOrder, blk: -1,
		block: make([]byte, img.clusterSize), bad: s.badBlocks}
	rr.per = img.clusterSize * 8 / int64(rr.bits)
	n := s.nbClusters
	for cl := range s.beyond {
		n = max(n, cl+1)
	}
	type mismatch struct {
		cl         int64
		disk, want uint64
	}
	var diffs []mismatch
	highest := int64(-1)
	for cl := int64(0); cl < n; cl++ {
		disk, want := rr.get(cl), s.ref(cl)
		if disk > 0 || want > 0 {
			highest = cl
		}
		if disk != want {
			if disk == 0 {
				s.rebuild = true
			}
			diffs = append(diffs, mismatch{cl, disk, want})
		}
	}
	rep.ImageEndOffset = (highest + 1) * img.clusterSize
	fix := opts.RepairLeaks || opts.RepairAll
	if s.rebuild && fix && !opts.RepairAll {
		for _, d := range diffs {
			s.report(d.cl, d.disk, d.want, false)
		}
		s.msg("ERROR need to rebuild refcount structures")
		rep.CheckErrors++
		return rep, s, nil
	}
	if s.rebuild && opts.RepairAll {
		s.msg("Rebuilding refcount structure")
	}
	for _, d := range diffs {
		switch {
		case opts.RepairAll && s.rebuild, opts.RepairAll && d.disk < d.want:
			s.report(d.cl, d.disk, d.want, true)
			if d.disk < d.want {
				rep.CorruptionsFixed++
			} else {
				rep.LeaksFixed++
			}
		case fix && d.disk > d.want:
			s.report(d.cl, d.disk, d.want, true)
			rep.LeaksFixed++
		default:
			s.report(d.cl, d.disk, d.want, false)
		}
	}
	before := rep.Corruptions
	img.checkCopied(s, rr, opts.RepairAll)
	if opts.RepairAll {
		rep.CorruptionsFixed += rep.Corruptions - before
		rep.Corruptions = before
	}
	return rep, s, nil
}

// report counts one refcount mismatch.
func (s *scan) report(cl int64, disk, want uint64, repairing bool) {
	switch {
	case repairing:
		s.msg("Repairing cluster %d refcount=%d reference=%d", cl, disk, want)
	case disk < want:
		s.msg("ERROR cluster %d refcount=%d reference=%d", cl, disk, want)
		s.rep.Corruptions++
	default:
		s.msg("Leaked cluster %d refcount=%d reference=%d", cl, disk, want)
		s.rep.Leaks++
	}
}

// checkCopied verifies the COPIED flags of the active tables.
func (img *Image) checkCopied(s *scan, rr *refReader, repairing bool) {
	if img.snapshotIndex >= 0 {
		return
	}
	cs := img.clusterSize
	step := 1
	if img.extL2 {
		step = 2
	}
	seen := map[int64]int64{} // corruptions found in each L2 table
	for i, e := range img.l1 {
		l2Off := int64(e & offsetMask)
		if l2Off == 0 || l2Off%cs != 0 {
			continue
		}
		want := s.ref(l2Off / cs)
		if !repairing {
			want = rr.get(l2Off / cs)
		}
		if (want == 1) != (e&oflagCopied != 0) {
			s.msg("ERROR OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%x refcount=%d", i, e, want)
			s.rep.Corruptions++
		}
		if n, ok := seen[l2Off]; ok {
			s.rep.Corruptions += n
			continue
		}
		t, _ := s.l2Table(l2Off)
		before := s.rep.Corruptions
		for j := 0; j < len(t); j += step {
			le := t[j]
			off := int64(le & offsetMask)
			if le&oflagCompressed != 0 || off == 0 || off%cs != 0 {
				continue
			}
			rc := uint64(1)
			if img.dataName == "" {
				rc = s.ref(off / cs)
				if !repairing {
					rc = rr.get(off / cs)
				}
			}
			if (rc == 1) != (le&oflagCopied != 0) {
				s.msg("ERROR OFLAG_COPIED data cluster: l2_entry=%x refcount=%d", le, rc)
				s.rep.Corruptions++
			}
		}
		seen[l2Off] = s.rep.Corruptions - before
	}
}

// repair rewrites the refcounts as the references say (RepairAll), or only
// lowers the leaked ones (RepairLeaks), and fixes COPIED flags.
func (img *Image) repair(s *scan, opts formats.CheckOptions) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	w := img.w
	for b := range s.badBlocks {
		if opts.RepairAll && b < int64(len(w.reftable)) {
			w.reftable[b] = 0
			w.reftableDty = true
		}
	}
	n := max(s.nbClusters, w.refcounts.len())
	for cl := int64(0); cl < n; cl++ {
		have, want := w.refcount(cl), s.ref(cl)
		if have == want || (!opts.RepairAll && have < want) {
			continue
		}
		if err := img.addRef(cl, int64(want)-int64(have)); err != nil {
			return err
		}
	}
	for cl, want := range s.beyond {
		if have := w.refcount(cl); opts.RepairAll && have < want {
			if err := img.addRef(cl, int64(want-have)); err != nil {
				return err
			}
		}
	}
	if opts.RepairAll {
		for b := range w.refcounts.len()/w.rcPerBlock + 1 {
			w.dirtyBlocks[b] = true
			if err := img.ensureBlock(b); err != nil {
				return err
			}
		}
		img.fixCopied()
	}
	return img.flushLocked()
}

// fixCopied sets the COPIED flags of the active L1 and L2 tables from the
// refcounts (caller holds img.mu).
func (img *Image) fixCopied() {
	for i, e := range img.l1 {
		off := int64(e & offsetMask)
		if off == 0 || off%img.clusterSize != 0 {
			continue
		}
		ne := e &^ oflagCopied
		if img.w.refcount(off/img.clusterSize) == 1 {
			ne |= oflagCopied
		}
		if ne != e {
			img.l1[i] = ne
			img.w.l1Dirty = true
		}
		t, err := img.l2(off)
		if err != nil {
			continue
		}
		before := append([]uint64(nil), t...)
		img.recomputeCopied(t)
		for k := range t {
			if t[k] != before[k] {
				img.w.dirtyL2[off] = true
				break
			}
		}
	}
}
