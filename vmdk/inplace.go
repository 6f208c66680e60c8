package vmdk

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileid"
)

// Writing an existing image in place (qemu-img commit into a VMDK base,
// rebase, and emptying a committed top). Hosted sparse extents keep their
// layout: grains are appended at the end of the extent file and published
// in the grain table afterwards, the redundant table before the primary
// one (an interruption leaks a grain, never maps one that is not written).
// Flat extents are written in place.
//
// The descriptor changes three ways: the CID gets a new random value
// before the first write changes the content (as qemu does), so that delta
// disks made over the old content refuse to open ("parentCID does not
// match") instead of reading changed data; SetBacking rewrites parentCID
// and parentFileNameHint. An embedded descriptor is rewritten in its fixed
// area (sectors 1..descriptorSize) in one write, refused when the new text
// does not fit; a descriptor file is written to a temporary file beside it
// and renamed over it. Every other line of the descriptor is kept as it is.

// inPlace is the writing state of an image opened writable.
type inPlace struct {
	w          *writer
	descText   string // the descriptor as stored now
	embedded   bool   // the descriptor lives in the main file's sparse header area
	descBytes  int64  // embedded: the area's size
	cidChanged bool
}

// openWritable checks the image can be written in place and sets up the
// writer over its extents.
func (img *Image) openWritable() error {
	if img.desc == nil {
		return formats.Unsupportedf(img.name, "writing to a VMDK extent without a descriptor")
	}
	switch strings.ToLower(img.desc.CreateType) {
	case "monolithicsparse", "monolithicflat", "twogbmaxextentsparse", "twogbmaxextentflat", "vmfs", "vmfssparse", "custom":
	default:
		return formats.Unsupportedf(img.name, "writing to an existing VMDK of createType %q (only sparse and flat hosted disks)", img.desc.CreateType)
	}
	ip := &inPlace{w: &writer{name: img.name, main: img.f, size: img.size, parent: img.backing}}
	for _, e := range img.exts {
		we, err := img.writableExtent(e)
		if err != nil {
			return err
		}
		ip.w.exts = append(ip.w.exts, we)
	}
	if err := ip.loadDescriptor(img); err != nil {
		return err
	}
	img.rw = ip
	return nil
}

func (img *Image) writableExtent(e *extent) (*wextent, error) {
	we := &wextent{start: e.start, length: e.length, file: e.file, path: e.path}
	switch e.kind {
	case kindZero:
		return nil, formats.Unsupportedf(img.name, "writing to a VMDK with a ZERO extent")
	case kindFlat:
		if e.flatOff != 0 {
			return nil, formats.Unsupportedf(img.name, "writing a FLAT extent that starts at offset %d of its file", e.flatOff)
		}
		return we, nil
	}
	for _, o := range img.exts {
		if o != e && o.sp == e.sp {
			return nil, formats.Unsupportedf(img.name, "writing a VMDK whose descriptor names one sparse extent more than once")
		}
	}
	sp, err := writableSparse(e.sp)
	if err != nil {
		return nil, err
	}
	sp.parent, sp.parentOff = img.backing, e.start
	sp.needParent = img.BackingName() != "" && img.backing == nil
	we.sp = sp
	return we, nil
}

// writableSparse makes a sparseWriter over an existing hosted sparse
// extent: uncompressed, qemu's and VMware's 64 KiB grains and 512-entry
// tables, every grain table allocated (both write them all at creation).
func writableSparse(s *sparseExtent) (*sparseWriter, error) {
	h := s.hdr
	switch {
	case s.compressed || s.markers:
		return nil, formats.Unsupportedf(s.name, "writing to a compressed (streamOptimized) VMDK extent")
	case h.GrainSize != defaultGrain || s.gtEntries != defaultGTEs:
		return nil, formats.Unsupportedf(s.name, "writing a VMDK extent with %d-sector grains and %d-entry tables (only %d and %d)", h.GrainSize, s.gtEntries, defaultGrain, defaultGTEs)
	}
	sw := &sparseWriter{f: s.f, hdr: h, capacity: int64(h.Capacity) * sectorSize, grainBytes: s.grainBytes,
		numGTs: int64(len(s.gd)), tables: map[int64]*wtable{}, maxTabs: maxWriterTables,
		pending: map[int64]chan struct{}{}}
	sw.gtOffs = make([]int64, len(s.gd))
	for i, e := range s.gd {
		if e == 0 {
			return nil, formats.Unsupportedf(s.name, "writing a VMDK extent whose grain table %d is not allocated", i)
		}
		sw.gtOffs[i] = int64(e) * sectorSize
	}
	if h.Flags&flagRedundantGD != 0 && h.RGDOffset != 0 {
		rgd := make([]byte, len(s.gd)*gteBytes)
		if _, err := s.f.ReadAt(rgd, int64(h.RGDOffset)*sectorSize); err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s: reading the redundant grain directory: %w", s.name, err)
		}
		sw.rgtOffs = make([]int64, len(s.gd))
		for i := range sw.rgtOffs {
			e := binary.LittleEndian.Uint32(rgd[i*gteBytes:])
			if e == 0 || int64(e)*sectorSize+tableBytes > s.fileSize {
				return nil, formats.Corruptf(s.name, "redundant grain directory", int64(h.RGDOffset)*sectorSize+int64(i)*gteBytes,
					"entry %d points to sector %d, outside the file", i, e)
			}
			sw.rgtOffs[i] = int64(e) * sectorSize
		}
	}
	sw.next = max(roundUpSector(s.fileSize), int64(h.OverHead)*sectorSize)
	return sw, nil
}

func roundUpSector(n int64) int64 { return (n + sectorSize - 1) / sectorSize * sectorSize }

// loadDescriptor reads the descriptor text as stored.
func (ip *inPlace) loadDescriptor(img *Image) error {
	head := make([]byte, headerSize)
	if _, err := img.f.ReadAt(head, 0); err != nil && err != io.EOF {
		return fmt.Errorf("%s: reading header: %w", img.name, err)
	}
	var text []byte
	if binary.LittleEndian.Uint32(head) == sparseMagic {
		h := decodeHeader(head)
		ip.embedded, ip.descBytes = true, int64(h.DescriptorSize)*sectorSize
		text = make([]byte, ip.descBytes)
		if _, err := img.f.ReadAt(text, sectorSize); err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading descriptor: %w", img.name, err)
		}
	} else {
		size, err := img.f.Size()
		if err != nil {
			return err
		}
		text = make([]byte, size)
		if _, err := img.f.ReadAt(text, 0); err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading descriptor: %w", img.name, err)
		}
	}
	if i := strings.IndexByte(string(text), 0); i >= 0 {
		text = text[:i]
	}
	ip.descText = string(text)
	return nil
}

// setFields rewrites the descriptor's header fields: each key of set
// (case-insensitive) gets its value ("" removes the line); a key not
// present is added after the parentCID line. Other lines are kept.
func setFields(text string, keys []string, values []string) string {
	lines := strings.SplitAfter(text, "\n")
	done := make([]bool, len(keys))
	var out []string
	insertAt := -1
	for _, line := range lines {
		trim := strings.TrimSpace(line)
		key, _, isKV := strings.Cut(trim, "=")
		key = strings.TrimSpace(key)
		matched := -1
		if isKV && !strings.HasPrefix(strings.ToLower(key), "ddb.") && !isExtentLine(trim) && trim != "" && trim[0] != '#' {
			for i, k := range keys {
				if strings.EqualFold(key, k) {
					matched = i
				}
			}
		}
		if matched < 0 {
			out = append(out, line)
			continue
		}
		done[matched] = true
		if values[matched] != "" {
			out = append(out, keys[matched]+"="+values[matched]+"\n")
		}
		if strings.EqualFold(key, "parentCID") {
			insertAt = len(out)
		}
	}
	var add []string
	for i, k := range keys {
		if !done[i] && values[i] != "" {
			add = append(add, k+"="+values[i]+"\n")
		}
	}
	if insertAt < 0 {
		insertAt = min(len(out), 1)
	}
	return strings.Join(append(out[:insertAt:insertAt], append(add, out[insertAt:]...)...), "")
}

// rewriteDescriptor stores text as the descriptor and reparses it.
func (img *Image) rewriteDescriptor(text string) error {
	d, err := parseDescriptor(img.name, []byte(text))
	if err != nil {
		return err
	}
	ip := img.rw
	if ip.embedded {
		if int64(len(text)) > ip.descBytes {
			return formats.Limitf(img.name, "descriptor", sectorSize, "the new descriptor of %d bytes does not fit the %d-byte embedded area", len(text), ip.descBytes)
		}
		buf := make([]byte, ip.descBytes)
		copy(buf, text)
		if _, err := img.f.WriteAt(buf, sectorSize); err != nil {
			return fmt.Errorf("%s: writing descriptor: %w", img.name, err)
		}
		if err := formats.Sync(img.f); err != nil {
			return err
		}
	} else if err := replaceFile(img.f, img.name, []byte(text)); err != nil {
		return err
	}
	ip.descText, img.desc = text, d
	return nil
}

// replaceFile writes data to a temporary file beside path, syncs it and
// renames it over path (which must be the file f), then syncs the
// directory: the descriptor file is the old one or the new one.
func replaceFile(f formats.File, path string, data []byte) error {
	if !fileid.Of(f).Same(fileid.OfPath(path)) {
		return formats.Unsupportedf(path, "rewriting a VMDK descriptor file not opened from its path")
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("%s: rewriting descriptor: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// newCID is a random CID other than the current one and the no-parent
// value.
func newCID(old uint32) (uint32, error) {
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if c := binary.LittleEndian.Uint32(b[:]); c != old && c != noParentCID {
			return c, nil
		}
	}
}

// contentChanges gives the image a new CID before its first change.
func (img *Image) contentChanges() error {
	img.rwMu.Lock()
	defer img.rwMu.Unlock()
	if img.rw.cidChanged {
		return nil
	}
	cid, err := newCID(img.desc.CID)
	if err != nil {
		return err
	}
	if err := img.rewriteDescriptor(setFields(img.rw.descText, []string{"CID"}, []string{fmt.Sprintf("%08x", cid)})); err != nil {
		return err
	}
	img.rw.cidChanged = true
	return nil
}

// WriteAt writes virtual disk bytes in place.
func (img *Image) WriteAt(p []byte, off int64) (int, error) {
	if img.rw == nil {
		return 0, fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if err := img.contentChanges(); err != nil {
		return 0, err
	}
	return img.rw.w.WriteAt(p, off)
}

// WriteZeroes records zeros in place (zeroed-grain entries where the
// extent has them, else zero grains; holes in flat extents).
func (img *Image) WriteZeroes(off, length int64) error {
	if img.rw == nil {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if err := img.contentChanges(); err != nil {
		return err
	}
	return img.rw.w.WriteZeroes(off, length)
}

// Flush writes the changed grain tables and makes everything durable.
func (img *Image) Flush() error {
	if img.rw == nil {
		return nil
	}
	if err := img.rw.w.Flush(); err != nil {
		return err
	}
	return syncAll(img)
}

func syncAll(img *Image) error {
	for _, f := range append([]formats.File{img.f}, img.owned...) {
		if err := formats.Sync(f); err != nil {
			return err
		}
	}
	return nil
}

// SetBacking rewrites parentCID and parentFileNameHint: backing (a VMDK)
// becomes the parent under name, or the disk stands alone (name "").
func (img *Image) SetBacking(name, format string, backing formats.Image) error {
	if img.rw == nil {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if format != "" && format != Name {
		return formats.Unsupportedf(img.name, "a %s parent (a VMDK delta disk's parent is a VMDK)", format)
	}
	if strings.ContainsAny(name, "\"\n\r") {
		return fmt.Errorf("%w: backing file name %q", formats.ErrInvalidOption, name)
	}
	if len(name) > maxValueLen {
		return fmt.Errorf("%w: a backing file name of %d bytes (a descriptor value holds at most %d)", formats.ErrInvalidOption, len(name), maxValueLen)
	}
	parentCID, hint := "ffffffff", ""
	if name != "" {
		p, ok := backing.(*Image)
		if !ok || p.desc == nil {
			return fmt.Errorf("%s: relinking needs the new parent %q open as a VMDK with a descriptor (its CID is stored): %w", img.name, name, formats.ErrInvalidOption)
		}
		for _, e := range img.rw.w.exts {
			if e.sp == nil {
				return formats.Unsupportedf(img.name, "a backing file for a flat VMDK (only sparse VMDKs can be delta disks)")
			}
		}
		parentCID, hint = fmt.Sprintf("%08x", p.desc.CID), `"`+name+`"`
	}
	if err := img.Flush(); err != nil {
		return err
	}
	img.rwMu.Lock()
	err := img.rewriteDescriptor(setFields(img.rw.descText, []string{"parentCID", "parentFileNameHint"}, []string{parentCID, hint}))
	img.rwMu.Unlock()
	if err != nil {
		return err
	}
	old := img.backing
	img.backing, img.backingPath = backing, ""
	if p, ok := backing.(*Image); ok {
		img.backingPath = p.name
	}
	img.rw.w.parent = backing
	for _, e := range img.rw.w.exts {
		if e.sp != nil {
			e.sp.parent, e.sp.needParent = backing, name != "" && backing == nil
		}
	}
	if old != nil && old != backing {
		old.Close()
	}
	return nil
}

// MakeEmpty drops every grain of a delta disk: all grain tables are zeroed,
// the redundant copy first (an interruption leaves grains that read as
// before, or through to the parent, which holds the same data after a
// commit; check reports tables whose copies differ until it is rerun), then
// each extent file is cut back to its metadata.
func (img *Image) MakeEmpty() error {
	if img.rw == nil {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if img.BackingName() == "" {
		return formats.Unsupportedf(img.name, "emptying a VMDK that is not a delta disk")
	}
	if err := img.Flush(); err != nil {
		return err
	}
	for _, e := range img.rw.w.exts {
		if e.sp != nil {
			if err := e.sp.empty(); err != nil {
				return err
			}
		}
	}
	return syncAll(img)
}

// empty zeroes both copies of every grain table and truncates the file to
// the grains' start.
func (s *sparseWriter) empty() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	zeros := make([]byte, tableBytes)
	for _, at := range []func(int64) int64{s.rgtAt, s.gtAt} {
		for t := int64(0); t < s.numGTs; t++ {
			if off := at(t); off >= 0 {
				if _, err := s.f.WriteAt(zeros, off); err != nil {
					return err
				}
			}
		}
		if err := formats.Sync(s.f); err != nil {
			return err
		}
	}
	clear(s.tables)
	s.order = s.order[:0]
	s.next = int64(s.hdr.OverHead) * sectorSize
	return s.f.Truncate(s.next)
}
