package iso

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// Limits on what a directory tree read from an image may make us do.
const (
	maxDirBytes   = 64 << 20 // one directory's extent
	maxDirEntries = 1 << 20  // records in one directory
	maxDepth      = 256      // directory nesting followed
	maxExtents    = 1 << 16  // extents of one multi-extent file
)

// FS is an ISO 9660 file system read from an image.
type FS struct {
	r         io.ReaderAt
	size      int64
	name      string
	vs        *volumeSet
	rockRidge bool
	suspSkip  int
	tree      *volumeDescriptor // the descriptor whose tree is browsed
	root      Entry
	closer    io.Closer // the file OpenPath opened, or nil
}

// OpenPath opens the ISO image file at path; Close closes it.
func OpenPath(path string) (*FS, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		file.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := Open(file, st.Size(), path)
	if err != nil {
		file.Close()
		return nil, err
	}
	f.closer = file
	return f, nil
}

// Close closes the file OpenPath opened (it does nothing for an FS made by
// Open, whose reader belongs to the caller).
func (f *FS) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Open reads the volume descriptors of the ISO 9660 image in r (size
// bytes, name for messages) and picks the directory tree to browse: the
// primary tree with Rock Ridge names when present, else the Joliet tree,
// else the primary tree with ISO 9660 names.
func Open(r io.ReaderAt, size int64, name string) (*FS, error) {
	vs, err := readVolumeSet(r, name, size)
	if err != nil {
		return nil, err
	}
	return openSet(r, size, name, vs)
}

// openSet is Open with the volume descriptors already read.
func openSet(r io.ReaderAt, size int64, name string, vs *volumeSet) (*FS, error) {
	if err := vs.checkSize(name, size); err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, name: name, vs: vs, tree: vs.primary}
	primRoot, err := f.rootRecord(vs.primary)
	if err != nil {
		return nil, err
	}
	if err := f.detectRockRidge(primRoot); err != nil {
		return nil, err
	}
	rootRec := primRoot
	if !f.rockRidge && vs.joliet != nil {
		if rootRec, err = f.rootRecord(vs.joliet); err != nil {
			return nil, err
		}
		f.tree = vs.joliet
	}
	f.root = Entry{Name: "/", Path: "/", Mode: fs.ModeDir | 0o755, ModTime: rootRec.date, dirKey: rootRec.extent}
	if f.root.extents, err = f.recordExtents(rootRec); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) rootRecord(v *volumeDescriptor) (record, error) {
	rec, n, err := parseRecord(f.name, v.Root, v.Offset+156)
	if err != nil {
		return rec, err
	}
	if n == 0 || !rec.isDir() {
		return rec, formats.Corruptf(f.name, "root directory record", v.Offset+156, "not a directory record")
	}
	return rec, nil
}

// detectRockRidge looks for the SUSP "SP" entry in the root's "." record.
func (f *FS) detectRockRidge(root record) error {
	off, err := f.extentOffset(root, root.offset)
	if err != nil {
		return err
	}
	buf := make([]byte, blockBytes)
	if err := fileio.ReadFull(f.r, buf, off); err != nil {
		return fmt.Errorf("%s: reading root directory: %w", f.name, err)
	}
	dot, n, err := parseRecord(f.name, buf, off)
	if err != nil || n == 0 {
		return formats.Corruptf(f.name, "root directory", off, "no \".\" record")
	}
	su := dot.sysUse
	if len(su) >= 7 && string(su[0:2]) == "SP" && su[4] == 0xBE && su[5] == 0xEF {
		f.rockRidge, f.suspSkip = true, int(su[6])
	}
	return nil
}

// extentOffset returns the byte offset of a record's data, checked to lie
// inside the image.
func (f *FS) extentOffset(r record, at int64) (int64, error) {
	off := (int64(r.extent) + int64(r.extAttr)) * blockBytes
	if off+int64(r.length) > f.size {
		return 0, formats.Corruptf(f.name, "directory record", at,
			"extent %d+%d bytes is past the end of the %d-byte image", off, r.length, f.size)
	}
	return off, nil
}

func (f *FS) recordExtents(r record) ([]extent, error) {
	off, err := f.extentOffset(r, r.offset)
	if err != nil {
		return nil, err
	}
	return []extent{{off: off, length: int64(r.length)}}, nil
}

// RockRidge reports whether the image has Rock Ridge entries.
func (f *FS) RockRidge() bool { return f.rockRidge }

// Joliet reports whether the image has a Joliet tree.
func (f *FS) Joliet() bool { return f.vs.joliet != nil }

// Root is the root directory.
func (f *FS) Root() Entry { return f.root }

// readDir lists a directory entry's records.
func (f *FS) readDir(dir *Entry) ([]Entry, error) {
	if len(dir.extents) != 1 {
		return nil, formats.Corruptf(f.name, "directory", -1, "%s has %d extents", dir.Path, len(dir.extents))
	}
	ext := dir.extents[0]
	if ext.length > maxDirBytes {
		return nil, formats.Limitf(f.name, "directory", ext.off, "%s is %d bytes (limit %d)", dir.Path, ext.length, maxDirBytes)
	}
	var out []Entry
	buf := make([]byte, blockBytes)
	for blk := int64(0); blk*blockBytes < ext.length; blk++ {
		off := ext.off + blk*blockBytes
		n := min(blockBytes, ext.length-blk*blockBytes)
		if err := fileio.ReadFull(f.r, buf[:n], off); err != nil {
			return nil, fmt.Errorf("%s: reading directory %s: %w", f.name, dir.Path, err)
		}
		for pos := 0; pos < int(n); {
			rec, size, err := parseRecord(f.name, buf[pos:n], off+int64(pos))
			if err != nil {
				return nil, err
			}
			if size == 0 {
				break // rest of the block is padding
			}
			pos += size
			if len(rec.ident) == 1 && rec.ident[0] <= 1 || rec.flags&flagAssociated != 0 {
				continue // ".", ".." and associated files (resource forks)
			}
			if len(out) >= maxDirEntries {
				return nil, formats.Limitf(f.name, "directory", ext.off, "%s has more than %d entries", dir.Path, maxDirEntries)
			}
			if out, err = f.addRecord(out, dir, rec); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// addRecord appends the entry of rec, or extends the previous entry when
// rec continues a multi-extent file.
func (f *FS) addRecord(out []Entry, dir *Entry, rec record) ([]Entry, error) {
	if rec.interlvd {
		return nil, formats.Unsupportedf(f.name, "interleaved file in %s", dir.Path)
	}
	off, err := f.extentOffset(rec, rec.offset)
	if err != nil {
		return nil, err
	}
	ext := extent{off: off, length: int64(rec.length)}
	if n := len(out); n > 0 && out[n-1].multi {
		last := &out[n-1]
		if len(last.extents) >= maxExtents {
			return nil, formats.Limitf(f.name, "directory record", rec.offset, "more than %d extents in one file", maxExtents)
		}
		last.extents = append(last.extents, ext)
		last.Size += ext.length
		last.multi = rec.flags&flagMultiExt != 0
		return out, nil
	}
	e := Entry{Size: ext.length, ModTime: rec.date, Hidden: rec.flags&flagHidden != 0,
		extents: []extent{ext}, multi: rec.flags&flagMultiExt != 0, Mode: 0o644}
	if rec.isDir() {
		e.Mode, e.Size, e.dirKey = fs.ModeDir|0o755, 0, rec.extent
	}
	if f.tree.joliet() {
		e.Name = jolietName(rec.ident)
	} else {
		e.Name = isoName(rec.ident)
	}
	if f.rockRidge {
		skip, err := f.applyRockRidge(&e, rec)
		if err != nil || skip {
			return out, err
		}
	}
	if err := checkName(e.Name); err != nil {
		return nil, formats.Corruptf(f.name, "directory record", rec.offset, "%v in %s", err, dir.Path)
	}
	e.Path = path.Join(dir.Path, e.Name)
	return append(out, e), nil
}

// applyRockRidge sets the name, mode, time and link from Rock Ridge; skip
// is true for a relocated directory's own record (RE).
func (f *FS) applyRockRidge(e *Entry, rec record) (skip bool, err error) {
	rr, err := f.parseRockRidge(rec.sysUse, rec.offset)
	if err != nil {
		return false, err
	}
	if rr.relocated {
		return true, nil
	}
	if rr.hasName {
		e.Name = rr.name
	}
	if rr.hasMode {
		e.Mode = posixMode(rr.mode)
	}
	if !rr.mtime.IsZero() {
		e.ModTime = rr.mtime
	}
	if rr.isLink {
		e.Mode = e.Mode&fs.ModePerm | fs.ModeSymlink
		e.Link, e.Size = rr.link, 0
	}
	if rr.childLink >= 0 { // a relocated directory: its records live at CL
		cl := record{extent: uint32(rr.childLink), length: blockBytes, offset: rec.offset}
		off, err := f.extentOffset(cl, rec.offset)
		if err != nil {
			return false, err
		}
		buf := make([]byte, blockBytes)
		if err := fileio.ReadFull(f.r, buf, off); err != nil {
			return false, err
		}
		dot, n, err := parseRecord(f.name, buf, off)
		if err != nil || n == 0 {
			return false, formats.Corruptf(f.name, "Rock Ridge CL", rec.offset, "relocated directory has no \".\" record")
		}
		if off, err = f.extentOffset(dot, dot.offset); err != nil {
			return false, err
		}
		e.Mode = fs.ModeDir | e.Mode.Perm()
		e.Size, e.dirKey = 0, dot.extent
		e.extents = []extent{{off: off, length: int64(dot.length)}}
	}
	return false, nil
}

// checkName refuses names that could not be a single path element.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("bad file name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains a slash or NUL", name)
	}
	return nil
}

// ErrNotFound is returned for a path not in the image.
var ErrNotFound = errors.New("no such file in the image")

// Lookup returns the entry at path ("/" or "/dir/file"; "" is the root),
// without following symbolic links. (Stat is the io/fs view.)
func (f *FS) Lookup(p string) (Entry, error) {
	cur := f.root
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" || part == "." {
			continue
		}
		if !cur.IsDir() {
			return Entry{}, fmt.Errorf("%s: %s: %w (%s is not a directory)", f.name, p, ErrNotFound, cur.Path)
		}
		kids, err := f.readDir(&cur)
		if err != nil {
			return Entry{}, err
		}
		found := false
		for _, k := range kids {
			if k.Name == part {
				cur, found = k, true
				break
			}
		}
		if !found {
			return Entry{}, fmt.Errorf("%s: %s: %w", f.name, p, ErrNotFound)
		}
	}
	return cur, nil
}

// Entries lists the directory at path in the image's order. (ReadDir is
// the io/fs view.)
func (f *FS) Entries(p string) ([]Entry, error) {
	e, err := f.Lookup(p)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return nil, fmt.Errorf("%s: %s is not a directory", f.name, p)
	}
	return f.readDir(&e)
}

// Walk calls fn for the entry at path and, for a directory, every entry
// below it, parents before children, in directory order. A directory
// reached twice (a loop made with crafted records) is an ErrCorrupt error.
func (f *FS) Walk(p string, fn func(e Entry) error) error {
	e, err := f.Lookup(p)
	if err != nil {
		return err
	}
	return f.walk(e, fn, map[uint32]bool{}, 0)
}

func (f *FS) walk(e Entry, fn func(Entry) error, seen map[uint32]bool, depth int) error {
	if err := fn(e); err != nil {
		return err
	}
	if !e.IsDir() {
		return nil
	}
	if depth > maxDepth {
		return formats.Limitf(f.name, "directory tree", -1, "%s is nested deeper than %d", e.Path, maxDepth)
	}
	if seen[e.dirKey] {
		return formats.Corruptf(f.name, "directory tree", int64(e.dirKey)*blockBytes, "directory loop at %s", e.Path)
	}
	seen[e.dirKey] = true
	kids, err := f.readDir(&e)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := f.walk(k, fn, seen, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// List returns every entry below the directory at path (recursively, in
// Walk order), or the entry itself when path is a file.
func (f *FS) List(p string) ([]Entry, error) {
	var out []Entry
	top := ""
	err := f.Walk(p, func(e Entry) error {
		if top == "" {
			top = e.Path
			if e.IsDir() {
				return nil
			}
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// OpenFile returns a reader of a regular file's bytes.
func (f *FS) OpenFile(p string) (io.Reader, Entry, error) {
	e, err := f.Lookup(p)
	if err != nil {
		return nil, e, err
	}
	if !e.Mode.IsRegular() {
		return nil, e, fmt.Errorf("%s: %s is not a regular file", f.name, p)
	}
	return f.contents(&e), e, nil
}

// Reader returns a reader of the bytes of a regular file entry (from
// ReadDir, Stat or Walk).
func (f *FS) Reader(e Entry) (io.Reader, error) {
	if !e.Mode.IsRegular() {
		return nil, fmt.Errorf("%s: %s is not a regular file", f.name, e.Path)
	}
	return f.contents(&e), nil
}

func (f *FS) contents(e *Entry) io.Reader {
	rs := make([]io.Reader, 0, len(e.extents))
	for _, x := range e.extents {
		rs = append(rs, io.NewSectionReader(f.r, x.off, x.length))
	}
	return io.MultiReader(rs...)
}
