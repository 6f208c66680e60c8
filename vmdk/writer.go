package vmdk

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// writer is a new random-access VMDK: monolithicSparse, monolithicFlat,
// twoGbMaxExtentSparse or twoGbMaxExtentFlat. WriteAt may be called from
// several goroutines on disjoint ranges.
type writer struct {
	name   string
	main   formats.File
	size   int64
	exts   []*wextent
	extra  []formats.File // sibling extent files
	parent formats.Image
	// backingName is the backing_file as stored (parentFileNameHint).
	backingName string
	closed      bool
	// descFor, for a new monolithicSparse disk, is its embedded
	// descriptor for a capacity (FinishSize rewrites it).
	descFor func(size int64) []byte
}

// wextent is one extent of a writer: a flat file or a sparse extent.
type wextent struct {
	start, length int64
	file          formats.File
	path          string // "" for the main file
	sp            *sparseWriter
}

func createSparse(cfg *createConfig) (formats.Writable, error) {
	w := &writer{name: cfg.req.Name, main: cfg.req.File, size: cfg.size}
	if cfg.parent != nil {
		w.parent, w.backingName = cfg.parent, cfg.backing
	}
	if cfg.sub == subMonolithicSparse {
		w.descFor = cfg.monolithicDescriptor(subMonolithicSparse)
		sp, err := newSparseWriter(cfg.req.File, cfg.size, cfg.zeroed, w.descFor(cfg.size), cfg.req.Open.Limits, cfg.req.Provisional)
		if err != nil {
			return nil, err
		}
		sp.parent, sp.parentOff = w.parent, 0
		w.exts = []*wextent{{length: cfg.size, file: cfg.req.File, sp: sp}}
		return &sparseDisk{w}, nil
	}
	var lines []extentLine
	var start int64
	for i, n := range splitSizes(cfg.size) {
		name := cfg.extentName("s", i+1)
		f, err := w.sibling(cfg, name)
		if err != nil {
			return nil, err
		}
		sp, err := newSparseWriter(f, n, cfg.zeroed, nil, cfg.req.Open.Limits, false)
		if err != nil {
			return nil, err
		}
		sp.parent, sp.parentOff = w.parent, start
		w.exts = append(w.exts, &wextent{start: start, length: n, file: f, path: f.Name(), sp: sp})
		lines = append(lines, extentLine{Access: "RW", Sectors: uint64(n / sectorSize), Type: "SPARSE", File: name})
		start += n
	}
	return &sparseDisk{w}, writeDescriptorFile(cfg.req.File, cfg.descriptor(subTwoGbSparse, lines))
}

// sparseDisk is a writer of hosted sparse extents. Like qemu, it accepts
// compressed conversion (-c) but stores grains uncompressed: only
// streamOptimized extents hold compressed grains.
type sparseDisk struct{ *writer }

// Compress declines, so the engine writes the grain with WriteAt.
func (d *sparseDisk) Compress(dst, cluster []byte) ([]byte, bool, error) { return dst, false, nil }

// WriteCompressed is never called after Compress declined.
func (d *sparseDisk) WriteCompressed(off int64, compressed []byte) error {
	return formats.Unsupportedf(d.name, "compressed grains in a non-streamOptimized VMDK")
}

func createFlat(cfg *createConfig) (formats.Writable, error) {
	w := &writer{name: cfg.req.Name, main: cfg.req.File, size: cfg.size}
	sizes := []int64{cfg.size}
	if cfg.sub == subTwoGbFlat {
		sizes = splitSizes(cfg.size)
	}
	var lines []extentLine
	var start int64
	for i, n := range sizes {
		name := cfg.extentName("f", i+1)
		if cfg.sub == subMonolithicFlat {
			name = cfg.extentName("flat", 0)
		}
		f, err := w.sibling(cfg, name)
		if err != nil {
			return nil, err
		}
		if err := f.Truncate(n); err != nil {
			return nil, err
		}
		w.exts = append(w.exts, &wextent{start: start, length: n, file: f, path: f.Name()})
		lines = append(lines, extentLine{Access: "RW", Sectors: uint64(n / sectorSize), Type: "FLAT", File: name})
		start += n
	}
	return w, writeDescriptorFile(cfg.req.File, cfg.descriptor(cfg.sub, lines))
}

func (w *writer) sibling(cfg *createConfig, name string) (formats.File, error) {
	if cfg.req.Siblings == nil {
		return nil, formats.Unsupportedf(cfg.req.Name, "subformat %s needs extra extent files, which this output cannot create", cfg.sub)
	}
	f, err := cfg.req.Siblings(name)
	if err != nil {
		return nil, err
	}
	w.extra = append(w.extra, f)
	return f, nil
}

func (w *writer) Size() int64    { return w.size }
func (w *writer) Format() string { return Name }

// ClusterSize is the grain size for sparse subformats, 0 for flat ones.
func (w *writer) ClusterSize() int64 {
	if w.exts[0].sp != nil {
		return w.exts[0].sp.grainBytes
	}
	return 0
}

// forExtents calls fn for every extent piece of [off, off+length).
func (w *writer) forExtents(off, length int64, fn func(e *wextent, rel, n, done int64) error) error {
	done := int64(0)
	for done < length {
		i, _ := slices.BinarySearchFunc(w.exts, off+done, func(e *wextent, v int64) int {
			switch {
			case e.start+e.length <= v:
				return -1
			case e.start > v:
				return 1
			}
			return 0
		})
		if i >= len(w.exts) {
			return fmt.Errorf("%s: offset %d outside the disk", w.name, off+done)
		}
		e := w.exts[i]
		rel := off + done - e.start
		n := min(length-done, e.length-rel)
		if err := fn(e, rel, n, done); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// WriteAt writes p at virtual offset off.
func (w *writer) WriteAt(p []byte, off int64) (int, error) {
	if err := imageio.CheckWrite(w.name, len(p), off, w.size); err != nil {
		return 0, err
	}
	err := w.forExtents(off, int64(len(p)), func(e *wextent, rel, n, done int64) error {
		if e.sp != nil {
			return e.sp.writeAt(p[done:done+n], rel)
		}
		_, err := e.file.WriteAt(p[done:done+n], rel)
		return err
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteZeroes records zeros: nothing for unallocated grains of a disk
// without parent, zeroed-grain GTEs when enabled, holes in flat extents.
func (w *writer) WriteZeroes(off, length int64) error {
	if off < 0 || length < 0 || off > w.size || length > w.size-off {
		return fmt.Errorf("%s: zero range %d+%d outside the disk", w.name, off, length)
	}
	return w.forExtents(off, length, func(e *wextent, rel, n, _ int64) error {
		if e.sp != nil {
			return e.sp.writeZeroes(rel, n)
		}
		return fileio.ZeroRange(e.file, rel, n)
	})
}

// ReadAt reads back what was written (the parent where nothing was).
func (w *writer) ReadAt(p []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(p, off, w.size)
	if n == 0 {
		return 0, eof
	}
	err := w.forExtents(off, int64(n), func(e *wextent, rel, c, done int64) error {
		if e.sp != nil {
			return e.sp.readAt(p[done:done+c], rel)
		}
		got, err := e.file.ReadAt(p[done:done+c], rel)
		if err != nil && err != io.EOF {
			return err
		}
		clear(p[done+int64(got) : done+c])
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, eof
}

// Extents reports written grains as data, the rest unallocated.
func (w *writer) Extents(off, length int64) ([]formats.Extent, error) {
	length = min(length, w.size-off)
	var out []formats.Extent
	err := w.forExtents(off, max(length, 0), func(e *wextent, rel, n, _ int64) error {
		if e.sp == nil {
			out = imageio.AppendExtent(out, formats.Extent{Offset: e.start + rel, Length: n, Kind: formats.Data, HostOffset: rel, HostFile: e.path})
			return nil
		}
		var err error
		out, err = e.sp.extents(out, e.start, rel, n, e.path)
		return err
	})
	return out, err
}

// Backer, for delta disks.
func (w *writer) Backing() formats.Image { return w.parent }
func (w *writer) BackingName() string    { return w.backingName }
func (w *writer) BackingPath() string {
	if w.parent == nil {
		return ""
	}
	return w.parent.(*Image).name
}
func (w *writer) BackingFormat() string {
	if w.parent == nil {
		return ""
	}
	return Name
}

// Flush writes the dirty grain tables and sets the file sizes.
func (w *writer) Flush() error {
	for _, e := range w.exts {
		if e.sp != nil {
			if err := e.sp.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close flushes and closes the sibling files and the parent (the main file
// belongs to the caller's output handling and is closed too).
func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.Flush()
	for _, f := range w.extra {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if w.parent != nil {
		if cerr := w.parent.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := w.main.Close(); err == nil {
		err = cerr
	}
	return err
}

// sparseWriter writes one hosted sparse extent in qemu's layout: header,
// embedded descriptor (sectors 1-20), redundant GD and GTs, GD and GTs (all
// GTs preallocated), then grains appended at the end of the file.
type sparseWriter struct {
	f          formats.File
	hdr        sparseHeader
	capacity   int64 // bytes
	grainBytes int64
	numGTs     int64
	rgtOff     int64 // byte offset of the redundant GTs
	gtOff      int64 // byte offset of the GTs
	parent     formats.Image
	parentOff  int64 // virtual offset of this extent in the disk
	// needParent: a delta disk's extent opened without its parent; a
	// partial write into a new grain cannot be filled and is refused.
	needParent bool
	// gtOffs and rgtOffs, when set, are each table's byte offset (an
	// existing extent, whose tables need not be contiguous, or a new one
	// whose tables are allocated as they fill); rgtOffs nil there means
	// no redundant copy. A table at -1 is not allocated yet (its GD
	// entry is 0): setGTE places it at the end of the file.
	gtOffs, rgtOffs []int64
	// gdOff and rgdOff are the byte offsets of the grain directories
	// (rgdOff -1: none); gdDirty says a table was allocated since the
	// last flush, whose GD entries must be written.
	gdOff, rgdOff int64
	gdDirty       bool

	mu       sync.Mutex
	grainEnd int64 // every grain with a GTE set is below it
	next     int64 // byte offset of the next grain
	tables   map[int64]*wtable
	order    []int64 // table load order, for eviction
	maxTabs  int
	pending  map[int64]chan struct{} // grains being filled from the parent
}

// wtable is a grain table held by the writer.
type wtable struct {
	gte   [defaultGTEs]uint32
	dirty bool
}

// maxHostBytes is the largest file offset a GTE (u32 sectors) can address.
const maxHostBytes = 1<<32*sectorSize - 1

// maxWriterTables bounds the writer's GT cache (2 KiB each).
const maxWriterTables = 4096

// newSparseWriter lays out a new sparse extent: grain tables preallocated
// after each grain directory, as qemu does, or, lazy, none (the GD entries
// 0) and each allocated at the end of the file when its first entry is set
// (an extent created at a provisional size: the preallocated tables of 1
// TiB would be 128 MiB of holes before the first grain).
func newSparseWriter(f formats.File, capacity int64, zeroed bool, desc []byte, lim formats.Limits, lazy bool) (*sparseWriter, error) {
	grains := ceilDiv(uint64(capacity), defaultGrain*sectorSize)
	numGTs := int64(ceilDiv(grains, defaultGTEs))
	if err := lim.CheckTable(f.Name(), "grain directory", -1, uint64(numGTs), gteBytes); err != nil {
		return nil, err
	}
	if len(desc) > embeddedDescSectors*sectorSize {
		return nil, fmt.Errorf("%s: descriptor of %d bytes does not fit the embedded area", f.Name(), len(desc))
	}
	gdSectors := int64(ceilDiv(uint64(numGTs*gteBytes), sectorSize))
	gtSectors := numGTs * defaultGTEs * gteBytes / sectorSize
	if lazy {
		gtSectors = 0
	}
	rgd := int64(1 + embeddedDescSectors)
	gd := rgd + gdSectors + gtSectors
	end := gd + gdSectors + gtSectors
	overhead := (end + defaultGrain - 1) / defaultGrain * defaultGrain
	h := sparseHeader{Magic: sparseMagic, Version: 1, Flags: flagNewlineTest | flagRedundantGD,
		Capacity: uint64(capacity / sectorSize), GrainSize: defaultGrain,
		DescriptorOffset: 1, DescriptorSize: embeddedDescSectors, NumGTEsPerGT: defaultGTEs,
		RGDOffset: uint64(rgd), GDOffset: uint64(gd), OverHead: uint64(overhead), NewlineCheck: newlineCheck}
	if zeroed {
		h.Version, h.Flags = 2, h.Flags|flagZeroedGrain
	}
	s := &sparseWriter{f: f, hdr: h, capacity: capacity, grainBytes: defaultGrain * sectorSize, numGTs: numGTs,
		rgtOff: (rgd + gdSectors) * sectorSize, gtOff: (gd + gdSectors) * sectorSize,
		next: overhead * sectorSize, tables: map[int64]*wtable{}, maxTabs: maxWriterTables,
		pending: map[int64]chan struct{}{}, gdOff: gd * sectorSize, rgdOff: rgd * sectorSize}
	if _, err := f.WriteAt(h.encode(), 0); err != nil {
		return nil, err
	}
	if len(desc) > 0 {
		if _, err := f.WriteAt(desc, sectorSize); err != nil {
			return nil, err
		}
	}
	if lazy {
		s.gtOffs, s.rgtOffs = make([]int64, numGTs), make([]int64, numGTs)
		for t := range s.gtOffs {
			s.gtOffs[t], s.rgtOffs[t] = -1, -1
		}
		return s, f.Truncate(s.next) // the GDs are holes: every entry 0
	}
	if err := s.writeGD(rgd*sectorSize, s.rgtOff); err != nil {
		return nil, err
	}
	if err := s.writeGD(gd*sectorSize, s.gtOff); err != nil {
		return nil, err
	}
	return s, f.Truncate(s.next)
}

// writeGD writes a fully populated grain directory at off whose GTs start
// at gtOff.
func (s *sparseWriter) writeGD(off, gtOff int64) error {
	const batch = 64 << 10 / gteBytes
	buf := make([]byte, 0, batch*gteBytes)
	for i := int64(0); i < s.numGTs; i++ {
		buf = binary.LittleEndian.AppendUint32(buf, uint32((gtOff+i*defaultGTEs*gteBytes)/sectorSize))
		if len(buf) == cap(buf) || i == s.numGTs-1 {
			if _, err := s.f.WriteAt(buf, off); err != nil {
				return err
			}
			off += int64(len(buf))
			buf = buf[:0]
		}
	}
	return nil
}

// table returns grain table t, loading it (and evicting another) under s.mu.
func (s *sparseWriter) table(t int64) (*wtable, error) {
	if tab, ok := s.tables[t]; ok {
		return tab, nil
	}
	if len(s.tables) >= s.maxTabs {
		if err := s.evict(); err != nil {
			return nil, err
		}
	}
	tab := &wtable{}
	if at := s.gtAt(t); at >= 0 { // else not allocated: all entries 0
		raw := make([]byte, defaultGTEs*gteBytes)
		if _, err := s.f.ReadAt(raw, at); err != nil && err != io.EOF {
			return nil, err
		}
		for i := range tab.gte {
			tab.gte[i] = binary.LittleEndian.Uint32(raw[i*gteBytes:])
		}
	}
	s.tables[t] = tab
	s.order = append(s.order, t)
	return tab, nil
}

// evict writes back and drops the oldest half of the cached tables.
func (s *sparseWriter) evict() error {
	drop := s.order[:len(s.order)/2]
	slices.Sort(drop)
	if err := s.writeTables(drop); err != nil {
		return err
	}
	for _, t := range drop {
		delete(s.tables, t)
	}
	s.order = slices.Clone(s.order[len(s.order)/2:])
	return nil
}

const tableBytes = defaultGTEs * gteBytes

// gtAt is the byte offset of grain table t; rgtAt that of its redundant
// copy (-1: none).
func (s *sparseWriter) gtAt(t int64) int64 {
	if s.gtOffs != nil {
		return s.gtOffs[t]
	}
	return s.gtOff + t*tableBytes
}

func (s *sparseWriter) rgtAt(t int64) int64 {
	switch {
	case s.gtOffs == nil:
		return s.rgtOff + t*tableBytes
	case s.rgtOffs == nil:
		return -1
	}
	return s.rgtOffs[t]
}

// follows reports whether table t is stored right after table t-1, in
// both copies (one write covers them).
func (s *sparseWriter) follows(t int64) bool {
	if s.gtOffs == nil {
		return true
	}
	ok := s.gtAt(t) == s.gtAt(t-1)+tableBytes
	if r := s.rgtAt(t); r >= 0 {
		ok = ok && r == s.rgtAt(t-1)+tableBytes
	}
	return ok
}

// writeTables writes the dirty tables among ts (sorted), both copies
// (the redundant one first), coalescing neighbours into one write.
func (s *sparseWriter) writeTables(ts []int64) error {
	var buf []byte
	first := int64(-1)
	emit := func() error {
		if len(buf) == 0 {
			return nil
		}
		for _, off := range []int64{s.rgtAt(first), s.gtAt(first)} {
			if off < 0 {
				continue
			}
			if _, err := s.f.WriteAt(buf, off); err != nil {
				return err
			}
		}
		buf = buf[:0]
		return nil
	}
	for _, t := range ts {
		tab := s.tables[t]
		if tab == nil || !tab.dirty {
			continue
		}
		if len(buf) > 0 && (first+int64(len(buf))/tableBytes != t || !s.follows(t)) || len(buf) >= 1<<20 {
			if err := emit(); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			first = t
		}
		for _, e := range tab.gte {
			buf = binary.LittleEndian.AppendUint32(buf, e)
		}
		tab.dirty = false
	}
	return emit()
}

// gte returns the entry of grain g under s.mu.
func (s *sparseWriter) gte(g int64) (uint32, error) {
	tab, err := s.table(g / defaultGTEs)
	if err != nil {
		return 0, err
	}
	return tab.gte[g%defaultGTEs], nil
}

func (s *sparseWriter) setGTE(g int64, v uint32) error {
	tab, err := s.table(g / defaultGTEs)
	if err != nil {
		return err
	}
	if err := s.allocTable(g / defaultGTEs); err != nil {
		return err
	}
	tab.gte[g%defaultGTEs] = v
	tab.dirty = true
	s.grainEnd = max(s.grainEnd, g+1)
	return nil
}

// allocTable places table t (and its redundant copy) at the end of the
// file if it has no place yet; its GD entries are written at flush.
func (s *sparseWriter) allocTable(t int64) error {
	if s.gtOffs == nil || s.gtOffs[t] >= 0 {
		return nil
	}
	if s.next+2*tableBytes > maxHostBytes {
		return formats.Limitf(s.f.Name(), "grain directory", -1, "extent file would exceed %d bytes (32-bit sector offsets)", int64(maxHostBytes))
	}
	if s.rgtOffs != nil {
		s.rgtOffs[t], s.next = s.next, s.next+tableBytes
	}
	s.gtOffs[t], s.next = s.next, s.next+tableBytes
	s.gdDirty = true
	return nil
}

// writeGDs writes both grain directories from gtOffs and rgtOffs (0 for a
// table not allocated).
func (s *sparseWriter) writeGDs() error {
	for _, d := range []struct {
		off  int64
		offs []int64
	}{{s.rgdOff, s.rgtOffs}, {s.gdOff, s.gtOffs}} {
		if d.off < 0 || d.offs == nil {
			continue
		}
		buf := make([]byte, 0, len(d.offs)*gteBytes)
		for _, o := range d.offs {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(max(o, 0)/sectorSize))
		}
		if _, err := s.f.WriteAt(buf, d.off); err != nil {
			return err
		}
	}
	s.gdDirty = false
	return nil
}

func (s *sparseWriter) allocated(gte uint32) bool {
	return gte > zeroedGrainGTE || gte == zeroedGrainGTE && s.hdr.Flags&flagZeroedGrain == 0
}

// writeAt writes p at extent offset off.
func (s *sparseWriter) writeAt(p []byte, off int64) error {
	for len(p) > 0 {
		n, err := s.writeRun(p, off)
		if err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// writeRun writes a prefix of p: either a run of whole new grains in one
// write, or the part of p in one grain. It returns the bytes written.
func (s *sparseWriter) writeRun(p []byte, off int64) (int, error) {
	g := off / s.grainBytes
	inGrain := off % s.grainBytes
	piece := min(int64(len(p)), s.grainBytes-inGrain)
	s.mu.Lock()
	for {
		ch, busy := s.pending[g]
		if !busy {
			break
		}
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	gte, err := s.gte(g)
	if err != nil {
		s.mu.Unlock()
		return 0, err
	}
	if s.allocated(gte) {
		s.mu.Unlock()
		_, err := s.f.WriteAt(p[:piece], int64(gte)*sectorSize+inGrain)
		return int(piece), err
	}
	if s.next+int64(len(p))+s.grainBytes > maxHostBytes {
		s.mu.Unlock()
		return 0, formats.Limitf(s.f.Name(), "grain table", -1, "extent file would exceed %d bytes (32-bit sector offsets)", int64(maxHostBytes))
	}
	whole := inGrain == 0 && (piece == s.grainBytes || off+piece == s.capacity)
	if whole {
		return s.writeNewGrains(p, off)
	}
	// A new grain for part of p: reserved and marked pending (writers to
	// the grain wait), filled, and only then published in its table, so
	// that readers meanwhile see the old content (the parent's bytes, or
	// zeros), never a grain whose data is not in place yet.
	fresh := s.parent == nil || gte == zeroedGrainGTE
	if fresh && s.needParent && gte != zeroedGrainGTE {
		s.mu.Unlock()
		return 0, formats.Unsupportedf(s.f.Name(), "writing part of grain %d of a VMDK delta disk opened without its parent", g)
	}
	host := s.reserve(g, 1)
	s.mu.Unlock()
	err = s.fillGrain(g, host, inGrain, p[:piece], fresh)
	if err := s.publish(g, 1, host, err); err != nil {
		return 0, err
	}
	return int(piece), nil
}

// fillGrain writes a new grain g at host holding piece at inGrain: around
// it the parent's bytes, or, for a fresh grain (no parent, or replacing a
// zeroed grain), nothing: the rest is a hole past the end of the file,
// which reads as zeros.
func (s *sparseWriter) fillGrain(g, host, inGrain int64, piece []byte, fresh bool) error {
	if fresh {
		_, err := s.f.WriteAt(piece, host+inGrain)
		return err
	}
	buf := make([]byte, min(s.grainBytes, s.capacity-g*s.grainBytes))
	if err := imageio.ReadBacking(s.parent, buf, s.parentOff+g*s.grainBytes); err != nil {
		return err
	}
	copy(buf[inGrain:], piece)
	_, err := s.f.WriteAt(buf, host)
	return err
}

// writeNewGrains allocates consecutive unallocated whole grains starting at
// off (s.mu held, released here), writes them in one call and then
// publishes them.
func (s *sparseWriter) writeNewGrains(p []byte, off int64) (int, error) {
	g := off / s.grainBytes
	n := int64(1)
	for ; n < int64(len(p))/s.grainBytes; n++ {
		if _, busy := s.pending[g+n]; busy {
			break
		}
		gte, err := s.gte(g + n)
		if err != nil {
			s.mu.Unlock()
			return 0, err
		}
		if s.allocated(gte) {
			break
		}
	}
	bytes := min(n*s.grainBytes, int64(len(p)))
	if n == 1 {
		bytes = min(s.grainBytes, int64(len(p)))
	}
	host := s.reserve(g, n)
	s.mu.Unlock()
	_, err := s.f.WriteAt(p[:bytes], host)
	if err := s.publish(g, n, host, err); err != nil {
		return 0, err
	}
	return int(bytes), nil
}

// reserve takes file space for n new grains from grain g on and marks them
// pending (s.mu held): writers to them wait, readers still see them
// unallocated.
func (s *sparseWriter) reserve(g, n int64) (host int64) {
	host = s.next
	s.next += n * s.grainBytes
	for i := range n {
		s.pending[g+i] = make(chan struct{})
	}
	return host
}

// publish ends the allocation of n grains from g on, whose data is now at
// host (or failed with werr): their table entries are set, unless the data
// write failed, and the writers waiting for them are released.
func (s *sparseWriter) publish(g, n, host int64, werr error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := werr
	for i := range n {
		if err == nil {
			err = s.setGTE(g+i, uint32((host+i*s.grainBytes)/sectorSize))
		}
		close(s.pending[g+i])
		delete(s.pending, g+i)
	}
	return err
}

// zeroGrain is a grain of zeros written where zeros must be explicit; it is
// only ever read.
var zeroGrain [defaultGrain * sectorSize]byte

// writeZeroes records zeros in [off, off+n).
func (s *sparseWriter) writeZeroes(off, n int64) error {
	for n > 0 {
		g := off / s.grainBytes
		inGrain := off % s.grainBytes
		piece := min(n, s.grainBytes-inGrain)
		whole := inGrain == 0 && (piece == s.grainBytes || off+piece == s.capacity)
		s.mu.Lock()
		gte, err := s.gte(g)
		zeroed := s.hdr.Flags&flagZeroedGrain != 0
		switch {
		case err != nil:
		case gte == zeroedGrainGTE && zeroed, gte == 0 && s.parent == nil && !s.needParent:
			// Reads as zeros already.
		case whole && zeroed:
			err = s.setGTE(g, zeroedGrainGTE)
		default:
			s.mu.Unlock()
			if err := s.writeAt(zeroGrain[:piece], off); err != nil {
				return err
			}
			s.mu.Lock()
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		off, n = off+piece, n-piece
	}
	return nil
}

// readAt reads extent bytes back.
func (s *sparseWriter) readAt(p []byte, off int64) error {
	for len(p) > 0 {
		g := off / s.grainBytes
		inGrain := off % s.grainBytes
		piece := min(int64(len(p)), s.grainBytes-inGrain)
		s.mu.Lock()
		gte, err := s.gte(g)
		s.mu.Unlock()
		switch {
		case err != nil:
			return err
		case s.allocated(gte):
			n, err := s.f.ReadAt(p[:piece], int64(gte)*sectorSize+inGrain)
			if err != nil && err != io.EOF {
				return err
			}
			clear(p[n:piece])
		case gte == 0:
			if err := imageio.ReadBacking(s.parent, p[:piece], s.parentOff+off); err != nil {
				return err
			}
		default:
			clear(p[:piece])
		}
		p, off = p[piece:], off+piece
	}
	return nil
}

func (s *sparseWriter) extents(out []formats.Extent, start, off, n int64, path string) ([]formats.Extent, error) {
	for n > 0 {
		g := off / s.grainBytes
		piece := min(n, s.grainBytes-off%s.grainBytes)
		s.mu.Lock()
		gte, err := s.gte(g)
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		x := formats.Extent{Offset: start + off, Length: piece, Kind: formats.Unallocated, HostOffset: -1}
		switch {
		case s.allocated(gte):
			x.Kind, x.HostOffset, x.HostFile = formats.Data, int64(gte)*sectorSize+off%s.grainBytes, path
		case gte == zeroedGrainGTE:
			x.Kind = formats.Zero
		}
		out = imageio.AppendExtent(out, x)
		off, n = off+piece, n-piece
	}
	return out, nil
}

// flush writes every dirty grain table and extends the file to cover the
// last grain.
func (s *sparseWriter) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := make([]int64, 0, len(s.tables))
	for t := range s.tables {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	if err := s.writeTables(ts); err != nil {
		return err
	}
	if s.gdDirty { // the tables first: a GD entry never points to an unwritten table
		if err := s.writeGDs(); err != nil {
			return err
		}
	}
	size, err := s.f.Size()
	if err != nil {
		return err
	}
	if size < s.next {
		return s.f.Truncate(s.next)
	}
	return nil
}

// RawRange: a flat extent file holds its part of the disk verbatim from
// offset 0; a sparse extent stores nothing verbatim.
func (w *writer) RawRange(off int64) (formats.File, int64, int64) {
	if off < 0 || off >= w.size {
		return nil, 0, 0
	}
	var file formats.File
	var fileOff, n int64
	_ = w.forExtents(off, 1, func(e *wextent, rel, _, _ int64) error {
		if e.sp == nil {
			file, fileOff, n = e.file, rel, e.length-rel
		}
		return nil
	})
	return file, fileOff, n
}
