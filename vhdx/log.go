package vhdx

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// The log (MS-VHDX 2.3) is a circular buffer of 4 KiB sectors holding
// entries. Each entry is:
//
//	entry header, 64 bytes:
//	off  size  field
//	0    4     signature "loge"
//	4    4     checksum: CRC-32C of the whole entry with this field zero
//	8    4     entry length in bytes, a multiple of 4 KiB
//	12   4     tail: log offset of the first entry of the active sequence
//	16   8     sequence number (> 0)
//	24   4     descriptor count
//	28   4     reserved
//	32   16    LogGuid (must equal the header's)
//	48   8     FlushedFileOffset: the file size when the entry was written
//	56   8     LastFileOffset: the file size the entry needs
//
// followed by 32-byte descriptors (the header takes the first two slots of
// the first descriptor sector) and then one 4 KiB data sector per data
// descriptor:
//
//	zero descriptor: "zero", reserved u32, length u64, file offset u64, seq u64
//	data descriptor: "desc", trailing 4 bytes, leading 8 bytes, file offset u64, seq u64
//	data sector:     "data", seq high u32, 4084 bytes (target bytes 8..4091), seq low u32
const (
	logEntryHeaderSize = 64
	logDescSize        = 32
	logDataBytes       = 4084
)

// logOp is one replayed change: a 4 KiB data sector, or a run of zeros.
type logOp struct {
	fileOff int64
	zeroLen int64  // for zero descriptors
	data    []byte // 4 KiB for data descriptors
}

// logEntry is a parsed, validated log entry.
type logEntry struct {
	start       int64 // offset inside the log
	length      int64
	tail        int64
	seq         uint64
	flushedSize int64
	lastSize    int64
	ops         []logOp
}

// readLog loads the log region and returns the active sequence's entries
// in replay order (nil when nothing is to be replayed).
func readLog(f formats.File, h header, fileSize int64, lim formats.Limits) ([]*logEntry, error) {
	name := f.Name()
	if h.LogGUID.isZero() || h.LogLength == 0 {
		return nil, nil
	}
	if err := lim.CheckTable(name, "log", int64(h.LogOffset), uint64(h.LogLength), 1); err != nil {
		return nil, err
	}
	if h.LogOffset+uint64(h.LogLength) > uint64(fileSize) {
		return nil, formats.Corruptf(name, "log", int64(h.LogOffset), "log of %d bytes ends past the end of the %d-byte file", h.LogLength, fileSize)
	}
	buf := make([]byte, h.LogLength)
	if _, err := f.ReadAt(buf, int64(h.LogOffset)); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: reading log: %w", name, err)
	}
	entries, ok := activeSequence(buf, h.LogGUID)
	if !ok {
		return nil, formats.Limitf(name, "log", int64(h.LogOffset), "too many candidate log entries to verify (crafted log?)")
	}
	return entries, nil
}

// logScanBudget bounds the bytes checksummed while looking for entries, as
// a multiple of the log's length: a real log is checksummed about once; a
// crafted one with an entry header in every sector must not cost the square.
const logScanBudget = 16

// activeSequence finds the entry with the highest sequence number and the
// run of entries with consecutive sequence numbers ending with it. ok is
// false when verifying candidates would exceed the work budget.
func activeSequence(log []byte, logGUID guid) (seq []*logEntry, ok bool) {
	byEnd := map[int64][]*logEntry{}
	var newest *logEntry
	budget := int64(logScanBudget)*int64(len(log)) + 16*mib
	for pos := int64(0); pos+logSectorSize <= int64(len(log)); {
		e := parseLogEntry(log, pos, logGUID, &budget)
		if budget < 0 {
			return nil, false
		}
		if e == nil {
			pos += logSectorSize
			continue
		}
		end := (e.start + e.length) % int64(len(log))
		byEnd[end] = append(byEnd[end], e)
		if newest == nil || e.seq > newest.seq {
			newest = e
		}
		pos += min(e.length, int64(len(log))-pos) // entries do not overlap
	}
	if newest == nil {
		return nil, true
	}
	seq = []*logEntry{newest}
	for cur := newest; cur.start != newest.tail && len(seq) < len(log)/logSectorSize; {
		var prev *logEntry
		for _, c := range byEnd[cur.start] {
			if c.seq == cur.seq-1 {
				prev = c
			}
		}
		if prev == nil {
			break
		}
		seq = append(seq, prev)
		cur = prev
	}
	for i, j := 0, len(seq)-1; i < j; i, j = i+1, j-1 {
		seq[i], seq[j] = seq[j], seq[i]
	}
	return seq, true
}

// ring reads an entry of the circular log in place: sector i of the entry
// starting at start (sectors never straddle the wrap: everything is 4 KiB
// aligned).
type ring struct {
	log   []byte
	start int64
}

func (r ring) sector(i int64) []byte {
	at := (r.start + i*logSectorSize) % int64(len(r.log))
	return r.log[at : at+logSectorSize]
}

// desc returns descriptor k (the header takes the first two 32-byte slots).
func (r ring) desc(k int64) []byte {
	slot := k + 2
	s := r.sector(slot / (logSectorSize / logDescSize))
	off := slot % (logSectorSize / logDescSize) * logDescSize
	return s[off : off+logDescSize]
}

// checksum is the CRC-32C of the entry's length bytes with the checksum
// field (bytes 4-7 of the first sector) taken as zero.
func (r ring) checksum(length int64) uint32 {
	first := r.sector(0)
	crc := crc32.Update(0, castagnoli, first[:4])
	crc = crc32.Update(crc, castagnoli, []byte{0, 0, 0, 0})
	crc = crc32.Update(crc, castagnoli, first[8:])
	for i := int64(1); i < length/logSectorSize; i++ {
		crc = crc32.Update(crc, castagnoli, r.sector(i))
	}
	return crc
}

// parseLogEntry validates the entry at pos; nil when it is not a valid
// entry. The cheap structural checks come first; the checksum, which reads
// the whole entry, is charged to budget.
func parseLogEntry(log []byte, pos int64, logGUID guid, budget *int64) *logEntry {
	le := binary.LittleEndian
	r := ring{log: log, start: pos}
	hb := r.sector(0)
	if [4]byte(hb[0:4]) != sigLogEntry || guid(hb[32:48]) != logGUID {
		return nil
	}
	e := &logEntry{start: pos, length: int64(le.Uint32(hb[8:])), tail: int64(le.Uint32(hb[12:])),
		seq: le.Uint64(hb[16:]), flushedSize: int64(le.Uint64(hb[48:])), lastSize: int64(le.Uint64(hb[56:]))}
	descCount := int64(le.Uint32(hb[24:]))
	if e.length == 0 || e.length%logSectorSize != 0 || e.length > int64(len(log)) || e.seq == 0 ||
		e.tail%logSectorSize != 0 || e.tail >= int64(len(log)) || e.flushedSize < 0 || e.lastSize < 0 {
		return nil
	}
	descSectors := (descCount + 2 + 127) / 128
	if descSectors*logSectorSize > e.length {
		return nil
	}
	// Verifying reads up to the whole entry twice (structure, checksum).
	if *budget -= 2 * e.length; *budget < 0 {
		return nil
	}
	type pending struct {
		d      []byte
		sector int64
	}
	var ops []pending
	dataSector := descSectors
	for k := int64(0); k < descCount; k++ {
		d := r.desc(k)
		fileOff := int64(le.Uint64(d[16:]))
		if le.Uint64(d[24:]) != e.seq || fileOff < 0 || fileOff%logSectorSize != 0 {
			return nil
		}
		switch [4]byte(d[0:4]) {
		case sigDescZero:
			if n := int64(le.Uint64(d[8:])); n < 0 || n%logSectorSize != 0 {
				return nil
			}
			ops = append(ops, pending{d, -1})
		case sigDescData:
			if (dataSector+1)*logSectorSize > e.length {
				return nil
			}
			s := r.sector(dataSector)
			if [4]byte(s[0:4]) != sigDataSect || uint64(le.Uint32(s[4:]))<<32|uint64(le.Uint32(s[4092:])) != e.seq {
				return nil
			}
			ops = append(ops, pending{d, dataSector})
			dataSector++
		default:
			return nil
		}
	}
	if r.checksum(e.length) != le.Uint32(hb[4:]) {
		return nil
	}
	for _, op := range ops {
		fileOff := int64(le.Uint64(op.d[16:]))
		if op.sector < 0 {
			e.ops = append(e.ops, logOp{fileOff: fileOff, zeroLen: int64(le.Uint64(op.d[8:]))})
			continue
		}
		s := r.sector(op.sector)
		sector := make([]byte, logSectorSize)
		copy(sector[0:8], op.d[8:16])
		copy(sector[8:4092], s[8:4092])
		copy(sector[4092:], op.d[4:8])
		e.ops = append(e.ops, logOp{fileOff: fileOff, data: sector})
	}
	return e
}

// overlay is a read-only view of a file with a log sequence replayed on
// top, in memory: the file itself is never written.
type overlay struct {
	formats.File
	size    int64
	zeros   []logOp          // zero runs, applied first
	sectors map[int64][]byte // data sectors by file offset, applied last
	keys    []int64          // sorted keys of sectors
}

// newOverlay replays entries over f. fileSize is f's size.
func newOverlay(f formats.File, entries []*logEntry, fileSize int64) (*overlay, error) {
	o := &overlay{File: f, size: fileSize, sectors: map[int64][]byte{}}
	for _, e := range entries {
		if err := checkEntryBounds(f.Name(), e, o.size); err != nil {
			return nil, err
		}
		for _, op := range e.ops {
			if op.data != nil {
				o.sectors[op.fileOff] = op.data
				continue
			}
			for k := range o.sectors {
				if k >= op.fileOff && k < op.fileOff+op.zeroLen {
					delete(o.sectors, k)
				}
			}
			o.zeros = append(o.zeros, op)
		}
		if e.lastSize > o.size {
			o.size = roundUp(e.lastSize, mib)
		}
	}
	for k := range o.sectors {
		o.keys = append(o.keys, k)
	}
	sort.Slice(o.keys, func(i, j int) bool { return o.keys[i] < o.keys[j] })
	return o, nil
}

func (o *overlay) Size() (int64, error) { return o.size, nil }

func (o *overlay) WriteAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("%s: log replayed in memory: %w", o.Name(), formats.ErrReadOnly)
}

func (o *overlay) Truncate(int64) error {
	return fmt.Errorf("%s: log replayed in memory: %w", o.Name(), formats.ErrReadOnly)
}

func (o *overlay) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.File.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, err
	}
	end := off + int64(len(p))
	if n < len(p) {
		want := int(max(0, min(end, o.size)-off))
		if want > n {
			clear(p[n:want])
			n = want
		}
	}
	for _, z := range o.zeros {
		lo, hi := max(off, z.fileOff), min(end, z.fileOff+z.zeroLen)
		if lo < hi {
			clear(p[lo-off : hi-off])
		}
	}
	i := sort.Search(len(o.keys), func(i int) bool { return o.keys[i]+logSectorSize > off })
	for ; i < len(o.keys) && o.keys[i] < end; i++ {
		k := o.keys[i]
		lo, hi := max(off, k), min(end, k+logSectorSize)
		copy(p[lo-off:hi-off], o.sectors[k][lo-k:hi-k])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// replayOnDisk writes the entries' changes into f (check -r all) and
// returns the file size afterwards.
func replayOnDisk(f formats.File, entries []*logEntry, fileSize int64) (int64, error) {
	for _, e := range entries {
		if err := checkEntryBounds(f.Name(), e, fileSize); err != nil {
			return 0, err
		}
		for _, op := range e.ops {
			if op.data != nil {
				if _, err := f.WriteAt(op.data, op.fileOff); err != nil {
					return 0, err
				}
				continue
			}
			if err := fileio.WriteZeros(f, op.fileOff, op.zeroLen); err != nil {
				return 0, err
			}
		}
		if e.lastSize > fileSize {
			fileSize = roundUp(e.lastSize, mib)
			if err := f.Truncate(fileSize); err != nil {
				return 0, err
			}
		}
		if sz, err := f.Size(); err == nil && sz > fileSize {
			fileSize = sz
		}
	}
	return fileSize, f.Sync()
}

// maxLogFileSize bounds the file size a log entry may ask for.
const maxLogFileSize = 1 << 50

// checkEntryBounds refuses an entry written for a longer file (the file was
// truncated since) or whose changes reach past the size it asks for.
func checkEntryBounds(name string, e *logEntry, fileSize int64) error {
	if e.flushedSize > fileSize {
		return formats.Corruptf(name, "log entry", e.start, "the log was written when the file was %d bytes; it is %d bytes now (truncated)", e.flushedSize, fileSize)
	}
	if e.lastSize > maxLogFileSize {
		return formats.Corruptf(name, "log entry", e.start, "last file offset %d is implausibly large", e.lastSize)
	}
	limit := max(fileSize, roundUp(e.lastSize, mib))
	for _, op := range e.ops {
		n := op.zeroLen
		if op.data != nil {
			n = logSectorSize
		}
		if op.fileOff > limit || n > limit-op.fileOff {
			return formats.Corruptf(name, "log entry", e.start, "change at file offset %d+%d is past the %d-byte file", op.fileOff, n, limit)
		}
	}
	return nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
