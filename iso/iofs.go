package iso

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// The io/fs view of an image: FS implements fs.FS, fs.StatFS, fs.ReadDirFS
// and fs.ReadLinkFS with io/fs names ("." is the root, "boot/grub/grub.cfg"
// a file; no leading slash). Open and Stat follow symbolic links inside the
// image (at most maxLinkHops of them per name, a link out of the root
// stopping at the root as "/.." does); ReadLink and Lstat do not. Files
// opened are io.ReaderAt and io.Seeker; directories list their entries
// sorted by name.

// maxLinkHops bounds the symbolic links followed for one name (as Linux's
// 40), so a crafted loop of links ends.
const maxLinkHops = 40

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// Open opens name (an io/fs name) for reading, following symbolic links.
func (f *FS) Open(name string) (fs.File, error) {
	e, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	if e.IsDir() {
		kids, err := f.sortedKids(&e)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{e: e, kids: kids}, nil
	}
	return &regFile{e: e, r: f.readerAt(&e), name: name}, nil
}

// Stat describes name, following symbolic links.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{e}, nil
}

// Lstat describes name without following a final symbolic link.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	e, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{e}, nil
}

// ReadLink returns the target of the symbolic link name (Rock Ridge SL).
func (f *FS) ReadLink(name string) (string, error) {
	e, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e.Mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.Link, nil
}

// ReadDir lists the directory name sorted by file name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	kids, err := f.sortedKids(&e)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(kids))
	for i, k := range kids {
		out[i] = dirEntry{k}
	}
	return out, nil
}

func (f *FS) sortedKids(dir *Entry) ([]Entry, error) {
	kids, err := f.readDir(dir)
	if err != nil {
		return nil, err
	}
	kids = slices.Clone(kids)
	slices.SortStableFunc(kids, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return kids, nil
}

// resolve finds the entry of an io/fs name, following symbolic links on
// the way (and the last one when followLast).
func (f *FS) resolve(op, name string, followLast bool) (Entry, error) {
	if !fs.ValidPath(name) {
		return Entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	var parts []string
	if name != "." {
		parts = strings.Split(name, "/")
	}
	cur, at := f.root, []string(nil) // at: the components of cur's path
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if !cur.IsDir() {
			return Entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		kids, err := f.readDir(&cur)
		if err != nil {
			return Entry{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		i := slices.IndexFunc(kids, func(k Entry) bool { return k.Name == part })
		if i < 0 {
			return Entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		kid := kids[i]
		if kid.Mode&fs.ModeSymlink == 0 || (len(parts) == 0 && !followLast) {
			cur, at = kid, append(at, part)
			continue
		}
		if hops++; hops > maxLinkHops {
			return Entry{}, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
		}
		base := at
		if strings.HasPrefix(kid.Link, "/") {
			base = nil
		}
		parts = append(linkParts(base, kid.Link), parts...)
		cur, at = f.root, nil
	}
	return cur, nil
}

// linkParts is the component list of target resolved against the
// directory components base, with "." and ".." applied (".." at the root
// stays at the root).
func linkParts(base []string, target string) []string {
	out := slices.Clone(base)
	for _, p := range strings.Split(target, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, p)
		}
	}
	return out
}

// readerAt reads a regular file's bytes across its extents.
func (f *FS) readerAt(e *Entry) *extentReader {
	return &extentReader{r: f.r, extents: e.extents, size: e.Size}
}

type extentReader struct {
	r       io.ReaderAt
	extents []extent
	size    int64
}

func (x *extentReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	n := 0
	pos := int64(0) // file offset where the current extent starts
	for _, ext := range x.extents {
		if len(p) == n {
			break
		}
		if at := off + int64(n); at < pos+ext.length {
			rel := at - pos
			want := min(int64(len(p)-n), ext.length-rel)
			m, err := x.r.ReadAt(p[n:n+int(want)], ext.off+rel)
			n += m
			if err != nil && !(err == io.EOF && int64(m) == want) {
				return n, err
			}
		}
		pos += ext.length
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// regFile is an open regular file (or a symbolic link's target).
type regFile struct {
	e    Entry
	r    *extentReader
	name string
	off  int64
}

func (r *regFile) Stat() (fs.FileInfo, error) { return fileInfo{r.e}, nil }
func (r *regFile) Close() error               { return nil }

func (r *regFile) Read(p []byte) (int, error) {
	if r.off >= r.e.Size {
		return 0, io.EOF
	}
	n, err := r.r.ReadAt(p[:min(int64(len(p)), r.e.Size-r.off)], r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *regFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.e.Size {
		return 0, io.EOF
	}
	n, err := r.r.ReadAt(p[:min(int64(len(p)), r.e.Size-off)], off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (r *regFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.e.Size
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: r.name, Err: fs.ErrInvalid}
	}
	r.off = offset
	return offset, nil
}

// dirFile is an open directory.
type dirFile struct {
	e    Entry
	kids []Entry
	pos  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return fileInfo{d.e}, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.e.Path, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.kids[d.pos:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && len(rest) > n {
		rest = rest[:n]
	}
	d.pos += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, k := range rest {
		out[i] = dirEntry{k}
	}
	return out, nil
}

// fileInfo is an Entry as an fs.FileInfo; Sys returns the Entry.
type fileInfo struct{ e Entry }

func (i fileInfo) Name() string {
	if i.e.Path == "/" || i.e.Path == "" {
		return "."
	}
	return path.Base(i.e.Path)
}
func (i fileInfo) Size() int64        { return i.e.Size }
func (i fileInfo) Mode() fs.FileMode  { return i.e.Mode }
func (i fileInfo) ModTime() time.Time { return i.e.ModTime }
func (i fileInfo) IsDir() bool        { return i.e.IsDir() }
func (i fileInfo) Sys() any           { return i.e }

// dirEntry is an Entry as an fs.DirEntry.
type dirEntry struct{ e Entry }

func (d dirEntry) Name() string               { return d.e.Name }
func (d dirEntry) IsDir() bool                { return d.e.IsDir() }
func (d dirEntry) Type() fs.FileMode          { return d.e.Mode.Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return fileInfo(d), nil }
