package vhdx

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// Writing an existing VHDX in place (qemu-img commit into a VHDX base,
// relinking a differencing disk, emptying a committed top), as MS-VHDX
// asks for metadata updates:
//
//   - before the first change of the disk's content, both headers get a
//     new DataWriteGuid (and FileWriteGuid), the non-current slot first;
//     differencing disks made over the old content link to the old one
//     (parent_linkage) and refuse to open until they are relinked;
//   - payload data is written in place or into new blocks at the end of the
//     file (1 MiB aligned), and made durable before any BAT entry points
//     at it;
//   - every change to the BAT and the metadata region goes through the log:
//     the log GUID is set in the headers, an entry holding the new 4 KiB
//     sectors is written at the log's start and made durable, the sectors
//     are written in place and made durable, and the log GUID is cleared
//     again. An interruption before the entry is complete leaves the old
//     metadata (new blocks leak); after it, the entry is replayed when the
//     file is next opened (vdisk replays it in memory for reading, check -r
//     all on disk; qemu refuses a read-only open until then). Changes larger
//     than the log are cut into several entries, each applied before the
//     next is written: each BAT entry is then old or new.

// logSector is one 4 KiB sector of the file to change through the log.
type logSector struct {
	off  int64
	data []byte
}

// openWritable turns an image opened for writing into a Writer over it.
func openWritable(img *Image) (*Writer, error) {
	if img.hdr.Version != 1 {
		return nil, formats.Unsupportedf(img.name, "writing a VHDX of header version %d", img.hdr.Version)
	}
	if len(img.entries) > 0 {
		if err := img.replayLog(); err != nil {
			return nil, err
		}
	}
	if img.bat == nil {
		return nil, formats.Unsupportedf(img.name, "writing a VHDX whose BAT exceeds the table limit (it is read in pages)")
	}
	w := &Writer{Image: img, inPlace: true}
	w.fileEnd = roundUp(img.fileSize, mib)
	w.dirty = make([]bool, (int64(len(img.bat))*batEntrySize+logSectorSize-1)/logSectorSize)
	w.writtenEnd = make([]uint32, img.payloadBlocks)
	for blk := range w.writtenEnd {
		if batState(img.entry(int64(blk))) == payloadFull {
			w.writtenEnd[blk] = uint32(img.blockSize) // its bytes are what they are
		}
	}
	return w, nil
}

// contentChanges gives the disk a new DataWriteGuid before its first
// content change (MS-VHDX 2.2.2).
func (w *Writer) contentChanges() error {
	if !w.inPlace {
		return nil
	}
	w.hdrMu.Lock()
	defer w.hdrMu.Unlock()
	if w.dataGUIDDone {
		return nil
	}
	h := w.hdr
	var err error
	if h.DataWriteGUID, err = newGUID(); err != nil {
		return err
	}
	if err := w.updateHeaders(h); err != nil {
		return err
	}
	w.dataGUIDDone = true
	return nil
}

// flushLogged writes the dirty BAT pages through the log.
func (w *Writer) flushLogged() error {
	var secs []logSector
	n := int64(len(w.bat))
	for pg := range w.dirty {
		if !w.dirty[pg] {
			continue
		}
		first := int64(pg) * logSectorSize / batEntrySize
		buf := make([]byte, logSectorSize)
		for i, e := range w.bat[first:min(n, first+logSectorSize/batEntrySize)] {
			binary.LittleEndian.PutUint64(buf[i*batEntrySize:], e)
		}
		// Past the last entry, the page keeps what the file holds.
		if end := first + logSectorSize/batEntrySize; end > n {
			if err := fileio.ReadPadded(w.f, buf[(n-first)*batEntrySize:], w.batOff+n*batEntrySize); err != nil {
				return err
			}
		}
		secs = append(secs, logSector{w.batOff + int64(pg)*logSectorSize, buf})
	}
	if len(secs) == 0 {
		return nil
	}
	if err := w.logWrite(secs); err != nil {
		return err
	}
	clear(w.dirty)
	return nil
}

// logWrite changes secs (4 KiB-aligned file sectors) through the log.
func (w *Writer) logWrite(secs []logSector) error {
	sort.Slice(secs, func(i, j int) bool { return secs[i].off < secs[j].off })
	logLen := int64(w.hdr.LogLength)
	if logLen < 2*logSectorSize {
		return formats.Unsupportedf(w.name, "changing the metadata of a VHDX with a %d-byte log", logLen)
	}
	size, err := w.f.Size()
	if err != nil {
		return err
	}
	if size < w.fileEnd {
		if err := w.f.Truncate(w.fileEnd); err != nil {
			return err
		}
		size = w.fileEnd
	}
	if err := formats.Sync(w.f); err != nil { // the data the new entries point at
		return err
	}
	h := w.hdr
	if h.LogGUID, err = newGUID(); err != nil {
		return err
	}
	if err := w.updateHeaders(h); err != nil {
		return err
	}
	// Sectors per entry: one header+descriptor sector holds 126
	// descriptors, each later one 128.
	perEntry := int64(0)
	for k := int64(1); ; k++ {
		descSectors := (k + 2 + 127) / 128
		if (descSectors+k)*logSectorSize > logLen {
			break
		}
		perEntry = k
	}
	for len(secs) > 0 {
		part := secs[:min(int64(len(secs)), perEntry)]
		secs = secs[len(part):]
		w.logSeq++
		entry := encodeDataEntry(part, w.logSeq, w.hdr.LogGUID, size)
		if _, err := w.f.WriteAt(entry, int64(w.hdr.LogOffset)); err != nil {
			return fmt.Errorf("%s: writing log entry: %w", w.name, err)
		}
		if err := formats.Sync(w.f); err != nil {
			return err
		}
		for _, s := range part {
			if _, err := w.f.WriteAt(s.data, s.off); err != nil {
				return fmt.Errorf("%s: applying log entry at %d: %w", w.name, s.off, err)
			}
		}
		if err := formats.Sync(w.f); err != nil {
			return err
		}
	}
	h = w.hdr
	h.LogGUID = guid{}
	return w.updateHeaders(h)
}

// encodeDataEntry builds a log entry (MS-VHDX 2.3.1) of data descriptors
// for secs, with sequence number seq, the tail at itself (every earlier
// entry is applied) and the file size fileSize.
func encodeDataEntry(secs []logSector, seq uint64, logGUID guid, fileSize int64) []byte {
	n := int64(len(secs))
	descSectors := (n + 2 + 127) / 128
	b := make([]byte, (descSectors+n)*logSectorSize)
	le := binary.LittleEndian
	copy(b[0:4], sigLogEntry[:])
	le.PutUint32(b[8:], uint32(len(b)))
	le.PutUint32(b[12:], 0) // tail: this entry
	le.PutUint64(b[16:], seq)
	le.PutUint32(b[24:], uint32(n))
	copy(b[32:48], logGUID[:])
	le.PutUint64(b[48:], uint64(fileSize))
	le.PutUint64(b[56:], uint64(fileSize))
	for k, s := range secs {
		slot := int64(k) + 2
		d := b[slot/128*logSectorSize+slot%128*logDescSize:]
		copy(d[0:4], sigDescData[:])
		copy(d[4:8], s.data[4092:4096])
		copy(d[8:16], s.data[0:8])
		le.PutUint64(d[16:], uint64(s.off))
		le.PutUint64(d[24:], seq)
		ds := b[(descSectors+int64(k))*logSectorSize:]
		copy(ds[0:4], sigDataSect[:])
		le.PutUint32(ds[4:], uint32(seq>>32))
		copy(ds[8:4092], s.data[8:4092])
		le.PutUint32(ds[4092:], uint32(seq))
	}
	le.PutUint32(b[4:], crc32.Checksum(b, castagnoli))
	return b
}

// SetBacking points a differencing disk at another VHDX parent (backing,
// named name): a new parent locator (parent_linkage = the parent's
// DataWriteGuid, relative_path, absolute_win32_path) in the metadata
// region, written through the log. Making a disk standalone (name "") or
// giving a dynamic disk a parent changes the BAT's meaning and is refused
// (vdisk rebase writes a new image for those).
func (w *Writer) SetBacking(name, format string, backing formats.Image) error {
	if !w.inPlace {
		return formats.Unsupportedf(w.name, "relinking a VHDX being created")
	}
	if format != "" && format != Name {
		return formats.Unsupportedf(w.name, "a %s parent (a differencing VHDX's parent is a VHDX)", format)
	}
	if name == "" || !w.hasParent {
		return formats.Unsupportedf(w.name, "changing whether a VHDX has a parent in place (only relinking a differencing disk)")
	}
	parent, ok := backing.(*Image)
	if wp, isW := backing.(*Writer); isW {
		parent, ok = wp.Image, true
	}
	if !ok {
		return fmt.Errorf("%s: relinking needs the new parent %q open as a VHDX (its DataWriteGuid is stored): %w", w.name, name, formats.ErrInvalidOption)
	}
	if parent.size != w.size || parent.logicalSector != w.logicalSector {
		return fmt.Errorf("%w: a differencing VHDX must have its parent's size (%d) and logical sector size (%d)",
			formats.ErrInvalidOption, parent.size, parent.logicalSector)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	loc := locatorFor(w.name, name, parent.hdr.DataWriteGUID)
	if err := w.writeLocator(loc); err != nil {
		return err
	}
	w.mu.Lock()
	old := w.parent
	w.parent, w.parentRef, w.parentPath = backing, name, parent.name
	w.locator = loc
	w.mu.Unlock()
	if old != nil && old != backing {
		old.Close()
	}
	return nil
}

// writeLocator stores loc as the parent locator item: where the old one
// was when it fits there, else after the last item of the region; the
// metadata table entry follows, in the same log entry.
func (w *Writer) writeLocator(loc parentLocator) error {
	item := loc.encode()
	regionLen := w.regionLen(w.metaOff)
	region := make([]byte, regionLen)
	if err := fileio.ReadPadded(w.f, region, w.metaOff); err != nil {
		return err
	}
	es := append([]metaEntry(nil), w.meta...)
	idx, end := -1, int64(metaTableSize)
	for i, e := range es {
		if e.GUID == itemParentLoc {
			idx = i
		}
		end = max(end, int64(e.Offset)+int64(e.Length))
	}
	if idx < 0 {
		return formats.Corruptf(w.name, "metadata table", w.metaOff, "a differencing disk without a parent locator item")
	}
	off := int64(es[idx].Offset)
	if int64(len(item)) > int64(es[idx].Length) {
		off = end
	}
	if off+int64(len(item)) > regionLen {
		return formats.Limitf(w.name, "metadata region", w.metaOff, "a %d-byte parent locator does not fit the %d-byte region", len(item), regionLen)
	}
	es[idx].Offset, es[idx].Length = uint32(off), uint32(len(item))
	next := append([]byte(nil), region...)
	copy(next, encodeMetaTable(es))
	copy(next[off:], item)
	var secs []logSector
	for s := int64(0); s < regionLen; s += logSectorSize {
		if string(next[s:s+logSectorSize]) != string(region[s:s+logSectorSize]) {
			secs = append(secs, logSector{w.metaOff + s, next[s : s+logSectorSize]})
		}
	}
	if err := w.logWrite(secs); err != nil {
		return err
	}
	w.meta = es
	return nil
}

// MakeEmpty drops every block of a differencing disk (qemu-img commit
// empties the top): the chunks' sector bitmaps are zeroed first (each
// PARTIALLY_PRESENT block then reads from the parent, which holds the same
// data after a commit), then every payload entry becomes NOT_PRESENT
// through the log. The blocks' space is not returned to the file system.
func (w *Writer) MakeEmpty() error {
	if !w.inPlace || !w.hasParent {
		return formats.Unsupportedf(w.name, "emptying a VHDX that is not a differencing disk")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	w.allocMu.Lock()
	defer w.allocMu.Unlock()
	zeros := make([]byte, bitmapBlockSize)
	for blk := int64(0); blk < w.payloadBlocks; blk += w.chunkRatio {
		if e := w.bat[w.bitmapIndex(blk)]; batState(e) == bitmapPresent {
			if _, err := w.f.WriteAt(zeros, batOffset(e)); err != nil {
				return fmt.Errorf("%s: zeroing a sector bitmap: %w", w.name, err)
			}
		}
	}
	for blk := int64(0); blk < w.payloadBlocks; blk++ {
		if batState(w.entry(blk)) != payloadNotPres {
			w.setEntry(w.batIndex(blk), batEntry(payloadNotPres, 0))
			w.writtenEnd[blk] = 0
		}
	}
	return w.flushLogged()
}

// SetBacking of an image opened read-only: refused (Writer relinks).
func (img *Image) SetBacking(name, format string, backing formats.Image) error {
	return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
}
