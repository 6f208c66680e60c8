package ntfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/fsnode"
)

// Attribute types.
const (
	typeStdInfo      = 0x10
	typeAttrList     = 0x20
	typeFileName     = 0x30
	typeVolumeName   = 0x60
	typeData         = 0x80
	typeIndexRoot    = 0x90
	typeIndexAlloc   = 0xA0
	typeBitmap       = 0xB0
	typeReparsePoint = 0xC0
	typeEnd          = 0xFFFFFFFF

	flagCompressed = 0x0001
	flagEncrypted  = 0x4000
	flagSparse     = 0x8000

	recordInUse = 0x01
	recordDir   = 0x02

	tagSymlink    = 0xA000000C
	tagMountPoint = 0xA0000003
)

// run maps length clusters from vcn to lcn (-1: sparse).
type run struct {
	vcn, lcn, length int64
}

// attribute is one decoded attribute (non-resident pieces merged).
type attribute struct {
	typ         uint32
	name        string
	flags       uint16
	nonResident bool
	value       []byte // resident value
	runs        []run
	startVCN    int64
	dataSize    int64
	initSize    int64
	compUnit    int // log2 clusters per compression unit
}

// file is an MFT record with its attributes (extension records included).
type file struct {
	v     *Volume
	num   int64
	name  string
	flags uint16
	attrs []*attribute

	interixDone   bool
	interixTarget string // an Interix symlink's target ("" if not one)
}

// file reads MFT record num and its extension records.
func (v *Volume) file(num int64) (*file, error) {
	buf := make([]byte, v.recordBytes)
	if err := v.readRecord(num, "FILE", buf); err != nil {
		return nil, err
	}
	f := &file{v: v, num: num, flags: binary.LittleEndian.Uint16(buf[0x16:])}
	if f.flags&recordInUse == 0 {
		return nil, corrupt("MFT record %d is not in use", num)
	}
	attrs, err := parseAttrs(buf, num)
	if err != nil {
		return nil, err
	}
	f.attrs = attrs
	if list := f.attr(typeAttrList, ""); list != nil {
		if err := f.loadExtensions(list); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// parseAttrs decodes the attributes of one record.
func parseAttrs(rec []byte, num int64) ([]*attribute, error) {
	var out []*attribute
	off := int(binary.LittleEndian.Uint16(rec[0x14:]))
	used := min(int(binary.LittleEndian.Uint32(rec[0x18:])), len(rec))
	for off+8 <= used {
		typ := binary.LittleEndian.Uint32(rec[off:])
		if typ == typeEnd {
			return out, nil
		}
		length := int(binary.LittleEndian.Uint32(rec[off+4:]))
		if length < 24 || off+length > used || length%8 != 0 {
			return nil, corrupt("MFT record %d: attribute %#x at %d with length %d", num, typ, off, length)
		}
		a, err := parseAttr(rec[off:off+length], num)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		off += length
	}
	return out, nil
}

func parseAttr(b []byte, num int64) (*attribute, error) {
	a := &attribute{typ: binary.LittleEndian.Uint32(b), nonResident: b[8] != 0,
		flags: binary.LittleEndian.Uint16(b[0x0C:])}
	nameLen, nameOff := int(b[9]), int(binary.LittleEndian.Uint16(b[0x0A:]))
	if nameOff+2*nameLen > len(b) {
		return nil, corrupt("MFT record %d: attribute %#x name outside it", num, a.typ)
	}
	a.name = utf16String(b[nameOff : nameOff+2*nameLen])
	if !a.nonResident {
		vlen := int(binary.LittleEndian.Uint32(b[0x10:]))
		voff := int(binary.LittleEndian.Uint16(b[0x14:]))
		if voff+vlen > len(b) || vlen < 0 {
			return nil, corrupt("MFT record %d: resident attribute %#x value %d+%d outside it", num, a.typ, voff, vlen)
		}
		a.value = b[voff : voff+vlen]
		a.dataSize, a.initSize = int64(vlen), int64(vlen)
		return a, nil
	}
	if len(b) < 0x40 {
		return nil, corrupt("MFT record %d: non-resident attribute %#x of %d bytes", num, a.typ, len(b))
	}
	a.startVCN = int64(binary.LittleEndian.Uint64(b[0x10:]))
	runOff := int(binary.LittleEndian.Uint16(b[0x20:]))
	a.compUnit = int(binary.LittleEndian.Uint16(b[0x22:]))
	a.dataSize = int64(binary.LittleEndian.Uint64(b[0x30:]))
	a.initSize = int64(binary.LittleEndian.Uint64(b[0x38:]))
	if runOff > len(b) || a.dataSize < 0 || a.initSize < 0 || a.compUnit > 8 {
		return nil, corrupt("MFT record %d: attribute %#x: runs at %d, size %d, compression unit 2^%d", num, a.typ, runOff, a.dataSize, a.compUnit)
	}
	runs, err := decodeRuns(b[runOff:], a.startVCN)
	if err != nil {
		return nil, fmt.Errorf("MFT record %d attribute %#x: %w", num, a.typ, err)
	}
	a.runs = runs
	return a, nil
}

// decodeRuns decodes a run list: a header byte (low nibble: bytes of the
// length, high nibble: bytes of the signed offset from the previous run's
// cluster; no offset means sparse), ending at a zero byte.
func decodeRuns(b []byte, vcn int64) ([]run, error) {
	var runs []run
	lcn := int64(0)
	for i := 0; i < len(b) && b[i] != 0; {
		lenBytes, offBytes := int(b[i]&0xF), int(b[i]>>4)
		i++
		if lenBytes == 0 || lenBytes > 8 || offBytes > 8 || i+lenBytes+offBytes > len(b) {
			return nil, corrupt("run list entry at %d: %d length and %d offset bytes", i-1, lenBytes, offBytes)
		}
		length := int64(leUint(b[i : i+lenBytes]))
		i += lenBytes
		r := run{vcn: vcn, length: length, lcn: -1}
		if offBytes > 0 {
			lcn += leInt(b[i : i+offBytes])
			i += offBytes
			r.lcn = lcn
		}
		if length <= 0 || (r.lcn != -1 && r.lcn < 0) {
			return nil, corrupt("run at VCN %d: %d clusters at cluster %d", vcn, length, r.lcn)
		}
		runs = append(runs, r)
		if len(runs) > maxRuns {
			return nil, corrupt("more than %d runs", maxRuns)
		}
		vcn += length
	}
	return runs, nil
}

func leUint(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func leInt(b []byte) int64 {
	v := int64(leUint(b))
	shift := uint(64 - 8*len(b))
	return v << shift >> shift
}

// loadExtensions adds the attributes that the attribute list places in
// other records, and merges non-resident pieces of one attribute.
func (f *file) loadExtensions(list *attribute) error {
	value := list.value
	if list.nonResident {
		r, err := f.dataReader(list)
		if err != nil {
			return err
		}
		if list.dataSize > 1<<20 {
			return corrupt("MFT record %d: attribute list of %d bytes", f.num, list.dataSize)
		}
		value = make([]byte, list.dataSize)
		if _, err := r.ReadAt(value, 0); err != nil && err != io.EOF {
			return err
		}
	}
	seen := map[int64]bool{f.num: true}
	for o := 0; o+0x1A <= len(value); {
		length := int(binary.LittleEndian.Uint16(value[o+4:]))
		if length < 0x1A || o+length > len(value) {
			return corrupt("MFT record %d: attribute list entry at %d of length %d", f.num, o, length)
		}
		ref := int64(binary.LittleEndian.Uint64(value[o+0x10:]) & 0xFFFFFFFFFFFF)
		o += length
		if seen[ref] {
			continue
		}
		seen[ref] = true
		buf := make([]byte, f.v.recordBytes)
		if err := f.v.readRecord(ref, "FILE", buf); err != nil {
			return err
		}
		attrs, err := parseAttrs(buf, ref)
		if err != nil {
			return err
		}
		if f.attrs = append(f.attrs, attrs...); len(f.attrs) > maxAttrs {
			return corrupt("MFT record %d: more than %d attributes", f.num, maxAttrs)
		}
	}
	f.attrs = mergePieces(f.attrs)
	return nil
}

// mergePieces joins the pieces (by starting VCN) of each non-resident
// attribute into the first.
func mergePieces(attrs []*attribute) []*attribute {
	var out []*attribute
	first := map[string]*attribute{}
	slices.SortStableFunc(attrs, func(a, b *attribute) int { return int(a.startVCN - b.startVCN) })
	for _, a := range attrs {
		key := fmt.Sprintf("%x/%s", a.typ, a.name)
		if h, ok := first[key]; ok && a.nonResident && h.nonResident && a.startVCN > 0 {
			h.runs = append(h.runs, a.runs...)
			continue
		}
		if a.nonResident && a.startVCN == 0 {
			first[key] = a
		}
		out = append(out, a)
	}
	return out
}

// attr finds the attribute of a type and name.
func (f *file) attr(typ uint32, name string) *attribute {
	for _, a := range f.attrs {
		if a.typ == typ && a.name == name {
			return a
		}
	}
	return nil
}

func (f *file) Name() string { return f.name }
func (f *file) ID() uint64   { return uint64(f.num) }

// Stat is what Sys returns for an NTFS file.
type Stat struct {
	Record  int64
	Streams []string // names of alternate data streams
	// Attributes are the DOS attributes of $STANDARD_INFORMATION.
	Attributes uint32
}

func (f *file) Sys() any {
	s := &Stat{Record: f.num, Attributes: f.dosAttrs()}
	for _, a := range f.attrs {
		if a.typ == typeData && a.name != "" {
			s.Streams = append(s.Streams, a.name)
		}
	}
	return s
}

func (f *file) dosAttrs() uint32 {
	if a := f.attr(typeStdInfo, ""); a != nil && len(a.value) >= 0x24 {
		return binary.LittleEndian.Uint32(a.value[0x20:])
	}
	return 0
}

func (f *file) ModTime() time.Time {
	if a := f.attr(typeStdInfo, ""); a != nil && len(a.value) >= 0x10 {
		return filetime(binary.LittleEndian.Uint64(a.value[0x08:]))
	}
	return time.Time{}
}

func (f *file) isDir() bool { return f.flags&recordDir != 0 }

func (f *file) reparseTag() uint32 {
	if a := f.attr(typeReparsePoint, ""); a != nil && len(a.value) >= 8 {
		return binary.LittleEndian.Uint32(a.value)
	}
	return 0
}

// interix reads an Interix symbolic link (as ntfs-3g and Services for
// Unix write them): a system file whose data is "IntxLNK\x01" and the
// target in UTF-16.
func (f *file) interix() string {
	if f.interixDone {
		return f.interixTarget
	}
	f.interixDone = true
	a := f.attr(typeData, "")
	if f.isDir() || f.dosAttrs()&0x04 == 0 || a == nil || a.dataSize < 8 || a.dataSize > 8192 {
		return ""
	}
	r, err := f.dataReader(a)
	if err != nil {
		return ""
	}
	b := make([]byte, a.dataSize)
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		return ""
	}
	if string(b[:8]) == "IntxLNK\x01" {
		f.interixTarget = utf16String(b[8:])
	}
	return f.interixTarget
}

// Mode: directories 0755, files 0644 (0444 when read-only); reparse points
// that are symbolic links or junctions, and Interix links, show as symlinks.
func (f *file) Mode() fs.FileMode {
	if tag := f.reparseTag(); tag == tagSymlink || tag == tagMountPoint || f.interix() != "" {
		return fs.ModeSymlink | 0o777
	}
	if f.isDir() {
		return fs.ModeDir | 0o755
	}
	if f.dosAttrs()&0x01 != 0 {
		return 0o444
	}
	return 0o644
}

func (f *file) Size() int64 {
	if f.isDir() {
		return 0
	}
	if f.Mode()&fs.ModeSymlink != 0 {
		t, _ := f.Readlink()
		return int64(len(t))
	}
	if a := f.attr(typeData, ""); a != nil {
		return a.dataSize
	}
	return 0
}

// Readlink decodes a symbolic link's or junction's print name, or an
// Interix link's target.
func (f *file) Readlink() (string, error) {
	if t := f.interix(); t != "" {
		return t, nil
	}
	a := f.attr(typeReparsePoint, "")
	if a == nil || len(a.value) < 16 {
		return "", errors.New("not a symbolic link")
	}
	tag := binary.LittleEndian.Uint32(a.value)
	buf := a.value[16:]
	if tag == tagSymlink {
		if len(buf) < 4 {
			return "", corrupt("record %d: short symlink reparse data", f.num)
		}
		buf = buf[4:] // flags
	}
	off := int(binary.LittleEndian.Uint16(a.value[12:]))
	n := int(binary.LittleEndian.Uint16(a.value[14:]))
	if off+n > len(buf) {
		return "", corrupt("record %d: reparse print name %d+%d outside %d bytes", f.num, off, n, len(buf))
	}
	return strings.ReplaceAll(utf16String(buf[off:off+n]), `\`, "/"), nil
}

// Open returns the unnamed data stream's reader.
func (f *file) Open() (io.ReaderAt, error) { return f.Stream("") }

// Stream returns the reader of a data stream ("" for the file's content).
func (f *file) Stream(name string) (io.ReaderAt, error) {
	a := f.attr(typeData, name)
	if a == nil {
		if name == "" {
			return bytes.NewReader(nil), nil
		}
		return nil, fmt.Errorf("%w: stream %q of %s", fs.ErrNotExist, name, f.name)
	}
	return f.dataReader(a)
}

// dataReader reads an attribute's value: resident bytes, runs, or LZNT1
// compression units; bytes past the initialised size read as zeros.
func (f *file) dataReader(a *attribute) (io.ReaderAt, error) {
	if a.flags&flagEncrypted != 0 {
		return nil, fmt.Errorf("%w: ntfs: record %d (%s) is EFS-encrypted", formats.ErrUnsupported, f.num, f.name)
	}
	if !a.nonResident {
		return bytes.NewReader(a.value), nil
	}
	for _, r := range a.runs {
		if r.lcn >= 0 && r.lcn+r.length > f.v.Clusters {
			return nil, corrupt("record %d: run of %d clusters at %d past the %d-cluster volume", f.num, r.length, r.lcn, f.v.Clusters)
		}
	}
	rr := &runReader{v: f.v, runs: a.runs, size: a.dataSize, init: min(a.initSize, a.dataSize)}
	if a.flags&flagCompressed != 0 && a.compUnit > 0 {
		return newCompressedReader(rr, int64(1)<<a.compUnit), nil
	}
	return rr, nil
}

// runReader reads through a run list.
type runReader struct {
	v          *Volume
	runs       []run
	size, init int64
}

func (r *runReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), r.size-off)]
	if err := readRuns(r.v, r.runs, p, off); err != nil {
		return 0, err
	}
	if off+int64(len(p)) > r.init { // past the initialised size: zeros
		clear(p[max(0, r.init-off):])
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// readRuns fills p with the bytes at virtual offset off of a run list;
// sparse runs and clusters no run maps read as zeros.
func readRuns(v *Volume, runs []run, p []byte, off int64) error {
	cb := v.ClusterBytes
	for done := 0; done < len(p); {
		pos := off + int64(done)
		vcn := pos / cb
		i, _ := slices.BinarySearchFunc(runs, vcn, func(r run, vcn int64) int {
			switch {
			case r.vcn+r.length <= vcn:
				return -1
			case r.vcn > vcn:
				return 1
			}
			return 0
		})
		var n int64
		if i >= len(runs) || runs[i].vcn > vcn {
			end := int64(len(p) - done)
			if i < len(runs) {
				end = min(end, runs[i].vcn*cb-pos)
			}
			clear(p[done : done+int(end)])
			n = end
		} else {
			r := runs[i]
			n = min(int64(len(p)-done), (r.vcn+r.length)*cb-pos)
			if r.lcn < 0 {
				clear(p[done : done+int(n)])
			} else if _, err := v.r.ReadAt(p[done:done+int(n)], (r.lcn+vcn-r.vcn)*cb+pos%cb); err != nil {
				return err
			}
		}
		done += int(n)
	}
	return nil
}

// ReadDir lists a directory's index ($I30): the entries of $INDEX_ROOT
// and of every in-use INDX record of $INDEX_ALLOCATION. DOS 8.3 aliases
// and the file system's own files are not listed.
func (f *file) ReadDir() ([]fsnode.Node, error) {
	if !f.isDir() {
		return nil, errors.New("not a directory")
	}
	keys, err := f.indexKeys()
	if err != nil {
		return nil, err
	}
	var out []fsnode.Node
	seen := map[string]bool{}
	for _, k := range keys {
		if k.namespace == 2 || k.name == "." || seen[k.name] || (f.num == recordRoot && k.ref < firstUser) {
			continue
		}
		seen[k.name] = true
		child, err := f.v.file(k.ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.name, err)
		}
		child.name = k.name
		out = append(out, child)
	}
	return out, nil
}

type indexKey struct {
	ref       int64
	name      string
	namespace byte
}

func (f *file) indexKeys() ([]indexKey, error) {
	root := f.attr(typeIndexRoot, "$I30")
	if root == nil || len(root.value) < 0x20 {
		return nil, corrupt("directory record %d has no $I30 index root", f.num)
	}
	keys, err := indexEntries(root.value[0x10:], f.num)
	if err != nil {
		return nil, err
	}
	alloc := f.attr(typeIndexAlloc, "$I30")
	if alloc == nil {
		return keys, nil
	}
	if alloc.dataSize > maxIndexBytes {
		return nil, corrupt("directory record %d: index of %d bytes", f.num, alloc.dataSize)
	}
	var bitmap []byte
	if bm := f.attr(typeBitmap, "$I30"); bm != nil {
		r, err := f.dataReader(bm)
		if err != nil {
			return nil, err
		}
		bitmap = make([]byte, min(bm.dataSize, 1<<20))
		if _, err := r.ReadAt(bitmap, 0); err != nil && err != io.EOF {
			return nil, err
		}
	}
	r, err := f.dataReader(alloc)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, f.v.indexBytes)
	for i := int64(0); (i+1)*f.v.indexBytes <= alloc.dataSize; i++ {
		if bitmap != nil && (i/8 >= int64(len(bitmap)) || bitmap[i/8]&(1<<(i%8)) == 0) {
			continue
		}
		if _, err := r.ReadAt(buf, i*f.v.indexBytes); err != nil && err != io.EOF {
			return nil, err
		}
		if err := fixup(buf, "INDX", fmt.Sprintf("index record %d of directory %d", i, f.num)); err != nil {
			return nil, err
		}
		more, err := indexEntries(buf[0x18:], f.num)
		if err != nil {
			return nil, err
		}
		if keys = append(keys, more...); len(keys) > 1<<22 {
			return nil, corrupt("directory record %d: more than %d index entries", f.num, 1<<22)
		}
	}
	return keys, nil
}

// indexEntries decodes the entries of an index node (header first).
func indexEntries(node []byte, dir int64) ([]indexKey, error) {
	if len(node) < 16 {
		return nil, corrupt("directory record %d: index node of %d bytes", dir, len(node))
	}
	start := int(binary.LittleEndian.Uint32(node))
	end := min(int(binary.LittleEndian.Uint32(node[4:])), len(node))
	var out []indexKey
	for o := start; o+0x10 <= end; {
		length := int(binary.LittleEndian.Uint16(node[o+8:]))
		keyLen := int(binary.LittleEndian.Uint16(node[o+10:]))
		flags := binary.LittleEndian.Uint16(node[o+12:])
		if length < 0x10 || o+length > end || 0x10+keyLen > length {
			return nil, corrupt("directory record %d: index entry at %d of length %d", dir, o, length)
		}
		if flags&0x02 != 0 { // the last entry carries no key
			break
		}
		key := node[o+0x10 : o+0x10+keyLen]
		if keyLen >= 0x42 {
			nameLen := int(key[0x40])
			if 0x42+2*nameLen <= keyLen {
				out = append(out, indexKey{
					ref:       int64(binary.LittleEndian.Uint64(node[o:]) & 0xFFFFFFFFFFFF),
					name:      utf16String(key[0x42 : 0x42+2*nameLen]),
					namespace: key[0x41],
				})
			}
		}
		o += length
	}
	return out, nil
}

// OpenStream opens the alternate data stream stream of the file at name.
func (v *Volume) OpenStream(name, stream string) (io.Reader, error) {
	n, err := v.Lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	f, ok := n.(*file)
	if !ok {
		return nil, fmt.Errorf("%s: not an NTFS file", name)
	}
	r, err := f.Stream(stream)
	if err != nil {
		return nil, err
	}
	a := f.attr(typeData, stream)
	return io.NewSectionReader(r, 0, a.dataSize), nil
}

// ID is the MFT record number: the file's identity for loop detection.
func (s *Stat) ID() uint64 { return uint64(s.Record) }
