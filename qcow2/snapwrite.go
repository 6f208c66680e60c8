package qcow2

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// snapshotExtraBytes is the extra data qemu writes in every entry:
// vm_state_size_large, disk_size and icount (8 bytes each).
const snapshotExtraBytes = 24

// encodeSnapshots renders a snapshot table as qemu writes it: each entry
// with the 24 bytes of known extra data (plus any unknown extra data it
// carried), padded to 8 bytes. An entry read without a disk size gets
// diskSize, one without an icount gets -1 (qemu's "absent").
func encodeSnapshots(snaps []snapshot, diskSize int64) []byte {
	be := binary.BigEndian
	var out []byte
	for _, s := range snaps {
		extra := make([]byte, snapshotExtraBytes, max(snapshotExtraBytes, len(s.Extra)))
		be.PutUint64(extra[0:], s.VMStateSizeLarge)
		ds := s.DiskSize
		if len(s.Extra) < 16 {
			ds = uint64(diskSize)
		}
		be.PutUint64(extra[8:], ds)
		ic := s.ICount
		if !s.HasICount {
			ic = ^uint64(0)
		}
		be.PutUint64(extra[16:], ic)
		if len(s.Extra) > snapshotExtraBytes {
			extra = append(extra, s.Extra[snapshotExtraBytes:]...)
		}
		var fixed [snapshotFixedBytes]byte
		be.PutUint64(fixed[0:], s.L1TableOffset)
		be.PutUint32(fixed[8:], s.L1Size)
		be.PutUint16(fixed[12:], uint16(len(s.ID)))
		be.PutUint16(fixed[14:], uint16(len(s.Name)))
		be.PutUint32(fixed[16:], s.DateSec)
		be.PutUint32(fixed[20:], s.DateNsec)
		be.PutUint64(fixed[24:], s.VMClockNsec)
		be.PutUint32(fixed[32:], s.VMStateSize)
		be.PutUint32(fixed[36:], uint32(len(extra)))
		out = append(out, fixed[:]...)
		out = append(out, extra...)
		out = append(out, s.ID...)
		out = append(out, s.Name...)
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
	}
	return out
}

// nextSnapshotID is qemu's find_new_snapshot_id: one more than the largest
// numeric id.
func nextSnapshotID(snaps []snapshot) string {
	var top uint64
	for _, s := range snaps {
		if v, err := strconv.ParseUint(s.ID, 10, 64); err == nil && v > top {
			top = v
		}
	}
	return strconv.FormatUint(top+1, 10)
}

// snapshotTableBytes is the size of the snapshot table on disk.
func (img *Image) snapshotTableBytes() int64 {
	n := len(img.snapshots)
	if n == 0 {
		return 0
	}
	s := img.snapshots[n-1]
	return s.entryOffset + int64((snapshotFixedBytes+len(s.Extra)+len(s.ID)+len(s.Name)+7)&^7) - int64(img.hdr.SnapshotsOffset)
}

// Snapshots lists the internal snapshots (oldest first).
func (img *Image) Snapshots() []formats.Snapshot {
	var out []formats.Snapshot
	for _, s := range img.snapshots {
		out = append(out, s.info())
	}
	return out
}

// CreateSnapshot records the active layer as a new internal snapshot named
// name, dated at, as `qemu-img snapshot -c` does: the active L1 table is
// copied, every cluster it references (L2 tables and data) gains a
// reference, and the active tables lose QCOW_OFLAG_COPIED, so later writes
// copy the clusters instead of changing the snapshot. Duplicate names are
// allowed (qemu allows them); the id is the next free number.
func (img *Image) CreateSnapshot(name string, at time.Time) error {
	if err := img.dataWritable(); err != nil {
		return err
	}
	if name == "" || len(name) > 0xffff {
		return fmt.Errorf("%s: %w: snapshot name of %d bytes (want 1..65535)", img.name, formats.ErrInvalidOption, len(name))
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if err := img.flushLocked(); err != nil {
		return err
	}
	if len(img.snapshots) >= maxSnapshots {
		return formats.Limitf(img.name, "snapshot table", int64(img.hdr.SnapshotsOffset), "already %d snapshots, qemu's limit", len(img.snapshots))
	}
	l1Off, err := img.writeL1Copy()
	if err != nil {
		return img.abort(err)
	}
	if err := img.shareActive(); err != nil {
		return img.abort(err)
	}
	usec := at.UnixMicro()
	sn := snapshot{L1TableOffset: uint64(l1Off), L1Size: uint32(len(img.l1)),
		DateSec: uint32(usec / 1e6), DateNsec: uint32(usec%1e6) * 1000,
		DiskSize: uint64(img.size), HasICount: true, ID: nextSnapshotID(img.snapshots), Name: name,
		Extra: make([]byte, snapshotExtraBytes)}
	if err := img.writeSnapshotTable(append(append([]snapshot(nil), img.snapshots...), sn)); err != nil {
		return img.abort(err)
	}
	return img.flushLocked()
}

// abort stops a snapshot operation that failed half way in memory: no
// metadata is written after it, so the file keeps its state from before
// the operation (at most new clusters past the end that nothing uses).
func (img *Image) abort(err error) error {
	if img.w.err == nil {
		img.w.err = fmt.Errorf("%s: an operation failed half way, its metadata is not written: %w", img.name, err)
	}
	return err
}

// writeL1Copy writes the active L1 table, COPIED flags cleared, to new
// clusters and returns their offset (0 for an empty table).
func (img *Image) writeL1Copy() (int64, error) {
	if len(img.l1) == 0 {
		return 0, nil
	}
	cs := img.clusterSize
	off, err := img.allocClusters((int64(len(img.l1))*8 + cs - 1) / cs)
	if err != nil {
		return 0, err
	}
	cp := make([]uint64, len(img.l1))
	for i, e := range img.l1 {
		cp[i] = e &^ oflagCopied
	}
	if err := img.writeTable(cp, off, nil); err != nil {
		img.w.err = err
		return 0, err
	}
	return off, nil
}

// shareActive adds a reference to every cluster the active L1 table
// reaches and clears the COPIED flags of the active tables.
func (img *Image) shareActive() error {
	for i, e := range img.l1 {
		off := int64(e & offsetMask)
		if off == 0 {
			continue
		}
		t, err := img.l2(off)
		if err != nil {
			return err
		}
		if err := img.refTable(t, 1); err != nil {
			return err
		}
		changed := false
		for k := range t {
			if img.isEntry(k) && t[k]&oflagCopied != 0 {
				t[k] &^= oflagCopied
				changed = true
			}
		}
		if changed {
			img.dirtyTable(off, t)
		}
		if err := img.addRef(off/img.clusterSize, 1); err != nil {
			return err
		}
		img.l1[i] = e &^ oflagCopied
		img.w.l1Dirty = true
	}
	return nil
}

// isEntry reports whether index k of an L2 table holds a mapping (with
// extended L2, odd indices hold subcluster bitmaps).
func (img *Image) isEntry(k int) bool { return !img.extL2 || k%2 == 0 }

// refTable adds delta to the refcount of every cluster table t maps.
func (img *Image) refTable(t []uint64, delta int64) error {
	for k, e := range t {
		if img.isEntry(k) {
			if err := img.refEntry(e, delta); err != nil {
				return err
			}
		}
	}
	return nil
}

// refL1 adds delta to the refcounts of every L2 table of l1 and of every
// cluster they map.
func (img *Image) refL1(l1 []uint64, delta int64) error {
	for _, e := range l1 {
		off := int64(e & offsetMask)
		if off == 0 {
			continue
		}
		t, err := img.l2(off)
		if err != nil {
			return err
		}
		if err := img.refTable(t, delta); err != nil {
			return err
		}
		if err := img.addRef(off/img.clusterSize, delta); err != nil {
			return err
		}
	}
	return nil
}

// dirtyTable marks a changed L2 table for the next flush, keeping it in
// the cache (a table read past the budget is not kept by l2).
func (img *Image) dirtyTable(off int64, t []uint64) {
	img.w.dirtyL2[off] = true
	if _, ok := img.cache.Get(off); !ok {
		img.cache.Put(off, t, true)
	}
}

// writeSnapshotTable writes snaps as a new snapshot table, points the
// header at it (written at the next flush, after the tables it needs) and
// frees the old table.
func (img *Image) writeSnapshotTable(snaps []snapshot) error {
	cs := img.clusterSize
	oldOff, oldBytes := int64(img.hdr.SnapshotsOffset), img.snapshotTableBytes()
	buf := encodeSnapshots(snaps, img.size)
	if int64(len(buf)) > maxSnapTable {
		return formats.Limitf(img.name, "snapshot table", -1, "%d bytes exceed qemu's limit of %d", len(buf), maxSnapTable)
	}
	var off int64
	if len(buf) > 0 {
		var err error
		if off, err = img.allocClusters((int64(len(buf)) + cs - 1) / cs); err != nil {
			return err
		}
		if _, err := img.f.WriteAt(buf, off); err != nil {
			img.w.err = err
			return fmt.Errorf("%s: writing the snapshot table: %w", img.name, err)
		}
	}
	if err := img.freeRange(oldOff, oldBytes); err != nil {
		return err
	}
	parsed, err := parseSnapshots(img.name, buf, off, len(snaps))
	if err != nil {
		return err
	}
	img.snapshots = parsed
	img.hdr.NbSnapshots, img.hdr.SnapshotsOffset = uint32(len(snaps)), uint64(off)
	img.w.hdrDirty = true
	return nil
}

// DeleteSnapshot removes the first snapshot named name, as `qemu-img
// snapshot -d` does (it matches names only): the table loses the entry,
// every cluster the snapshot's L1 reaches loses a reference, its L1 copy
// is freed, and the active tables get COPIED back where a cluster is no
// longer shared.
func (img *Image) DeleteSnapshot(name string) error {
	if err := img.dataWritable(); err != nil {
		return err
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	i := -1
	for k, s := range img.snapshots {
		if s.Name == name {
			i = k
			break
		}
	}
	if i < 0 {
		return fmt.Errorf("%s: %q: %w", img.name, name, formats.ErrNoSnapshot)
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	sn := img.snapshots[i]
	l1, err := img.snapshotL1(sn)
	if err != nil {
		return err
	}
	rest := append(append([]snapshot(nil), img.snapshots[:i]...), img.snapshots[i+1:]...)
	if err := img.writeSnapshotTable(rest); err != nil {
		return img.abort(err)
	}
	if err := img.refL1(l1, -1); err != nil {
		return img.abort(err)
	}
	if err := img.freeRange(int64(sn.L1TableOffset), int64(len(l1))*8); err != nil {
		return img.abort(err)
	}
	// The header no longer names the snapshot before its refcounts drop,
	// and the refcounts drop before COPIED comes back.
	if err := img.flushLocked(); err != nil {
		return err
	}
	img.fixCopied()
	return img.flushLocked()
}

// snapshotL1 reads a snapshot's L1 table.
func (img *Image) snapshotL1(sn snapshot) ([]uint64, error) {
	if uint64(sn.L1Size)*8 > maxL1Bytes {
		return nil, formats.Limitf(img.name, "snapshot L1 table", int64(sn.L1TableOffset), "%d entries exceed %d bytes", sn.L1Size, maxL1Bytes)
	}
	if err := checkTableOffset(img.name, "snapshot L1 table", sn.L1TableOffset, uint64(sn.L1Size)*8, uint64(img.clusterSize)); err != nil {
		return nil, err
	}
	return img.readTable("snapshot L1 table", sn.L1TableOffset, uint64(sn.L1Size))
}

// freeRange drops a reference to every cluster of the bytes bytes at off
// (a table the image no longer uses); nothing when off or bytes is 0.
func (img *Image) freeRange(off, bytes int64) error {
	if off == 0 || bytes <= 0 {
		return nil
	}
	cs := img.clusterSize
	for cl := off / cs; cl <= (off+bytes-1)/cs; cl++ {
		if err := img.addRef(cl, -1); err != nil {
			return err
		}
	}
	return nil
}

// ApplySnapshot makes the active layer read as the snapshot selected by
// spec (an id, else a name, as `qemu-img snapshot -a` matches): every
// cluster the snapshot reaches gains a reference, the active L1 table
// takes the snapshot's entries, what the old active layer reached loses a
// reference, and COPIED is recomputed.
func (img *Image) ApplySnapshot(spec string) error {
	if err := img.dataWritable(); err != nil {
		return err
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if st := img.w.bms; st != nil && len(st.list) > 0 {
		// qemu's bdrv_snapshot_goto refuses while any bitmap exists.
		return &RefusalError{Msg: "Device has active dirty bitmaps", Kind: formats.ErrUnsupported}
	}
	i, ok := findSnapshot(img.snapshots, spec)
	if !ok {
		return fmt.Errorf("%s: %q: %w", img.name, spec, formats.ErrNoSnapshot)
	}
	sn := img.snapshots[i]
	l1, err := img.snapshotL1(sn)
	if err != nil {
		return err
	}
	if sn.DiskSize != 0 && int64(sn.DiskSize) != img.size {
		// The snapshot's size comes back with it (qemu truncates first).
		if err := img.limits.CheckVirtualSize(img.name, int64(sn.DiskSize&(1<<63-1))); err != nil {
			return err
		}
		if err := img.resizeLocked(int64(sn.DiskSize)); err != nil {
			return err
		}
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	if err := img.growL1(uint64(len(l1))); err != nil {
		return img.abort(err)
	}
	if err := img.refL1(l1, 1); err != nil {
		return img.abort(err)
	}
	old := append([]uint64(nil), img.l1...)
	for k := range img.l1 {
		img.l1[k] = 0
		if k < len(l1) {
			img.l1[k] = l1[k] &^ oflagCopied
		}
	}
	img.w.l1Dirty = true
	if err := img.refL1(old, -1); err != nil {
		return img.abort(err)
	}
	if err := img.flushLocked(); err != nil {
		return err
	}
	img.fixCopied()
	return img.flushLocked()
}
