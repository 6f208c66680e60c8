package vhdx

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
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

// logOpBytes is what one decoded logOp costs in memory (charged to the
// metadata budget), besides its data sector.
const logOpBytes = 40

// logEntry is a parsed, validated log entry. Its ops are decoded only for
// the entries of the active sequence (decodeOps).
type logEntry struct {
	start       int64 // offset inside the log
	length      int64
	tail        int64
	seq         uint64
	flushedSize int64
	lastSize    int64
	descCount   int64
	dataCount   int64
	descSectors int64
	ops         []logOp
}

// readLog loads the log region and returns the active sequence's entries
// in replay order (nil when nothing is to be replayed).
func readLog(f formats.File, h header, fileSize int64, lim formats.Limits, budget *formats.Budget) ([]*logEntry, error) {
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
	if err := budget.Charge(name, "log", int64(h.LogOffset), int64(h.LogLength)); err != nil {
		return nil, err
	}
	defer budget.Refund(int64(h.LogLength)) // the log is copied out of as it is decoded
	buf := make([]byte, h.LogLength)
	if _, err := f.ReadAt(buf, int64(h.LogOffset)); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: reading log: %w", name, err)
	}
	entries, ok := activeSequence(buf, h.LogGUID)
	if !ok {
		return nil, formats.Limitf(name, "log", int64(h.LogOffset), "too many candidate log entries to verify (crafted log?)")
	}
	for _, e := range entries {
		if err := budget.Charge(name, "log entry", int64(h.LogOffset)+e.start, e.descCount*logOpBytes+e.dataCount*logSectorSize); err != nil {
			return nil, err
		}
		e.decodeOps(buf)
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
		case sigDescData:
			if (dataSector+1)*logSectorSize > e.length {
				return nil
			}
			s := r.sector(dataSector)
			if [4]byte(s[0:4]) != sigDataSect || uint64(le.Uint32(s[4:]))<<32|uint64(le.Uint32(s[4092:])) != e.seq {
				return nil
			}
			dataSector++
		default:
			return nil
		}
	}
	if r.checksum(e.length) != le.Uint32(hb[4:]) {
		return nil
	}
	e.descCount, e.descSectors, e.dataCount = descCount, descSectors, dataSector-descSectors
	return e
}

// decodeOps decodes the descriptors of e (validated by parseLogEntry) into
// replay operations, copying the data sectors out of log.
func (e *logEntry) decodeOps(log []byte) {
	le := binary.LittleEndian
	r := ring{log: log, start: e.start}
	e.ops = make([]logOp, 0, e.descCount)
	dataSector := e.descSectors
	for k := int64(0); k < e.descCount; k++ {
		d := r.desc(k)
		fileOff := int64(le.Uint64(d[16:]))
		if [4]byte(d[0:4]) == sigDescZero {
			e.ops = append(e.ops, logOp{fileOff: fileOff, zeroLen: int64(le.Uint64(d[8:]))})
			continue
		}
		s := r.sector(dataSector)
		dataSector++
		sector := make([]byte, logSectorSize)
		copy(sector[0:8], d[8:16])
		copy(sector[8:4092], s[8:4092])
		copy(sector[4092:], d[4:8])
		e.ops = append(e.ops, logOp{fileOff: fileOff, data: sector})
	}
}

// overlay is a read-only view of a file with a log sequence replayed on
// top, in memory: the file itself is never written. The replay is indexed
// once (replayIndex): spans, sorted and disjoint, say which byte ranges
// read as zeros and which as a data sector, so a read costs a binary
// search, whatever the number of descriptors.
type overlay struct {
	formats.File
	size  int64
	spans []span
}

// span is a range of the replayed file: zeros (data == nil) or the bytes
// of data, which cover it exactly.
type span struct {
	off, end int64
	data     []byte
}

// spanBytes is what one span costs in memory (charged to the budget).
const spanBytes = 40

// newOverlay replays entries over f. fileSize is f's size.
func newOverlay(f formats.File, entries []*logEntry, fileSize int64, budget *formats.Budget) (*overlay, error) {
	o := &overlay{File: f, size: fileSize}
	var ops []logOp
	for _, e := range entries {
		if err := checkEntryBounds(f.Name(), e, o.size); err != nil {
			return nil, err
		}
		ops = append(ops, e.ops...)
		if e.lastSize > o.size {
			o.size = roundUp(e.lastSize, mib)
		}
	}
	// The index's transient events and its spans, at most two per op.
	n := int64(len(ops))
	if err := budget.Charge(f.Name(), "log replay index", -1, n*(2*eventBytes+1)+2*n*spanBytes); err != nil {
		return nil, err
	}
	defer budget.Refund(n * (2*eventBytes + 1))
	o.spans = replayIndex(ops)
	return o, nil
}

// event is where an op's range starts or ends, for the sweep of replayIndex.
type event struct {
	pos   int64
	op    int32
	start bool
}

const eventBytes = 16

// replayIndex sweeps the ops' ranges in offset order and keeps, at every
// point, the op applied last (the highest index): the result of replaying
// them in order, in O(n log n) time and O(n) memory.
func replayIndex(ops []logOp) []span {
	events := make([]event, 0, 2*len(ops))
	for i, op := range ops {
		end := op.fileOff + op.zeroLen
		if op.data != nil {
			end = op.fileOff + logSectorSize
		}
		if end > op.fileOff {
			events = append(events, event{op.fileOff, int32(i), true}, event{end, int32(i), false})
		}
	}
	slices.SortFunc(events, func(a, b event) int { return cmp.Compare(a.pos, b.pos) })
	ended := make([]bool, len(ops))
	var active opHeap
	var spans []span
	for k := 0; k < len(events); {
		pos := events[k].pos
		for ; k < len(events) && events[k].pos == pos; k++ {
			if events[k].start {
				active.push(events[k].op)
			} else {
				ended[events[k].op] = true
			}
		}
		for len(active) > 0 && ended[active[0]] {
			active.pop()
		}
		if len(active) == 0 || k == len(events) {
			continue
		}
		next, op := events[k].pos, ops[active[0]]
		sp := span{off: pos, end: next}
		if op.data != nil {
			sp.data = op.data[pos-op.fileOff : next-op.fileOff]
		}
		if last := len(spans) - 1; last >= 0 && sp.data == nil && spans[last].data == nil && spans[last].end == sp.off {
			spans[last].end = sp.end
			continue
		}
		spans = append(spans, sp)
	}
	return spans
}

// opHeap is a max-heap of op indexes.
type opHeap []int32

func (h *opHeap) push(v int32) {
	*h = append(*h, v)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p] >= a[i] {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *opHeap) pop() {
	a := *h
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		big, l, r := i, 2*i+1, 2*i+2
		if l < len(a) && a[l] > a[big] {
			big = l
		}
		if r < len(a) && a[r] > a[big] {
			big = r
		}
		if big == i {
			break
		}
		a[i], a[big] = a[big], a[i]
		i = big
	}
	*h = a
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
	i := sort.Search(len(o.spans), func(i int) bool { return o.spans[i].end > off })
	for ; i < len(o.spans) && o.spans[i].off < end; i++ {
		sp := o.spans[i]
		lo, hi := max(off, sp.off), min(end, sp.end)
		if sp.data == nil {
			clear(p[lo-off : hi-off])
		} else {
			copy(p[lo-off:hi-off], sp.data[lo-sp.off:hi-sp.off])
		}
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
	return fileSize, formats.Sync(f)
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
