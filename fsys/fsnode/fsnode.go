// Package fsnode turns a read-only tree of file-system nodes into an io/fs
// file system. Each file-system reader (ext4, FAT, NTFS) implements Node for
// its inodes or directory entries; New gives the fs.FS that callers use, with
// fs.ReadDirFS, fs.StatFS and fs.ReadLinkFS.
//
// Paths follow io/fs rules (slash-separated, unrooted, no . or ..
// components). Symbolic links met inside a path are followed inside the file
// system: an absolute target is taken from the file system's root, a target
// cannot climb above the root, and at most MaxLinks links are followed in
// one lookup, so a hostile image cannot loop or reach outside.
package fsnode

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxLinks is how many symbolic links one lookup follows.
const MaxLinks = 40

// Node is one file, directory or special file of a read-only tree.
type Node interface {
	Name() string // the entry's name in its directory ("." for the root)
	Mode() fs.FileMode
	Size() int64
	ModTime() time.Time
	Sys() any
	// ReadDir lists a directory's entries, without "." and "..".
	ReadDir() ([]Node, error)
	// Open returns the content of a regular file: Size() bytes.
	Open() (io.ReaderAt, error)
	// Readlink returns a symbolic link's target.
	Readlink() (string, error)
}

// Folder is implemented by trees whose names compare without case (FAT,
// NTFS): Fold maps a name to the form lookups compare.
type Folder interface {
	Fold(name string) string
}

// Identifier is implemented by nodes with a stable identity (an inode or
// record number): directories listed once are then remembered, and a walk
// can tell a directory it has already entered.
type Identifier interface {
	ID() uint64
}

// cacheNodes bounds how many listed entries the directory cache keeps.
const cacheNodes = 1 << 16

// ErrLinkLoop: too many symbolic links in one lookup.
var ErrLinkLoop = errors.New("too many levels of symbolic links")

// FS is the io/fs view of a tree.
type FS struct {
	root Node
	fold func(string) string

	mu     sync.Mutex
	dirs   map[uint64][]Node // listings of directories with an ID
	cached int               // entries held in dirs
}

// New returns the file system rooted at root.
func New(root Node) *FS {
	f := &FS{root: root, fold: func(s string) string { return s }}
	if c, ok := root.(Folder); ok {
		f.fold = c.Fold
	}
	return f
}

// Root is the tree's root node.
func (f *FS) Root() Node { return f.root }

// Lookup finds the node at name; follow says whether a final symbolic
// link is followed (links inside the path always are).
func (f *FS) Lookup(op, name string, follow bool) (Node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	links := 0
	n, _, err := f.walk(f.root, nil, name, follow, &links)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

// walk resolves rel below dir, whose ancestors (root first) are parents;
// it returns the node and its own ancestors, so ".." after a followed link
// climbs from the link's target, as in a POSIX path walk.
func (f *FS) walk(dir Node, parents []Node, rel string, follow bool, links *int) (Node, []Node, error) {
	cur := dir
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		switch part {
		case "", ".":
			continue
		case "..":
			if len(parents) > 0 {
				cur, parents = parents[len(parents)-1], parents[:len(parents)-1]
			}
			continue
		}
		if !cur.Mode().IsDir() {
			return nil, nil, fs.ErrNotExist
		}
		child, err := f.child(cur, part)
		if err != nil {
			return nil, nil, err
		}
		if child.Mode()&fs.ModeSymlink == 0 || (i == len(parts)-1 && !follow) {
			parents = append(parents, cur)
			cur = child
			continue
		}
		if *links++; *links > MaxLinks {
			return nil, nil, ErrLinkLoop
		}
		target, err := child.Readlink()
		if err != nil {
			return nil, nil, err
		}
		base, up := cur, slices.Clone(parents)
		if strings.HasPrefix(target, "/") {
			base, up = f.root, nil
		}
		if cur, parents, err = f.walk(base, up, target, true, links); err != nil {
			return nil, nil, err
		}
	}
	return cur, parents, nil
}

// list is dir.ReadDir, remembered for directories with an identity.
func (f *FS) list(dir Node) ([]Node, error) {
	id, ok := dir.(Identifier)
	if !ok {
		return dir.ReadDir()
	}
	f.mu.Lock()
	kids, hit := f.dirs[id.ID()]
	f.mu.Unlock()
	if hit {
		return kids, nil
	}
	kids, err := dir.ReadDir()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if f.dirs == nil || f.cached+len(kids) > cacheNodes {
		f.dirs, f.cached = map[uint64][]Node{}, 0
	}
	if len(kids) <= cacheNodes {
		f.dirs[id.ID()] = kids
		f.cached += len(kids)
	}
	f.mu.Unlock()
	return kids, nil
}

func (f *FS) child(dir Node, name string) (Node, error) {
	kids, err := f.list(dir)
	if err != nil {
		return nil, err
	}
	want := f.fold(name)
	for _, k := range kids {
		if k.Name() == name {
			return k, nil
		}
	}
	for _, k := range kids {
		if f.fold(k.Name()) == want {
			return k, nil
		}
	}
	return nil, fs.ErrNotExist
}

// Open opens the named file or directory (following symbolic links).
func (f *FS) Open(name string) (fs.File, error) {
	n, err := f.Lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	if n.Mode().IsDir() {
		return &dirFile{fs: f, node: n, name: name}, nil
	}
	if !n.Mode().IsRegular() {
		return &specialFile{node: n}, nil
	}
	r, err := n.Open()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &file{node: n, SectionReader: io.NewSectionReader(r, 0, n.Size())}, nil
}

// ReadDir lists the named directory, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.Lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.Mode().IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	ents, err := f.entries(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return ents, nil
}

func (f *FS) entries(dir Node) ([]fs.DirEntry, error) {
	kids, err := f.list(dir)
	if err != nil {
		return nil, err
	}
	ents := make([]fs.DirEntry, len(kids))
	for i, k := range kids {
		ents[i] = fs.FileInfoToDirEntry(Info(k))
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// Stat describes the named file, following symbolic links.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.Lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return Info(n), nil
}

// Lstat describes the named file without following a final symbolic link.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.Lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return Info(n), nil
}

// ReadLink returns the target of the named symbolic link.
func (f *FS) ReadLink(name string) (string, error) {
	n, err := f.Lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.Mode()&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t, err := n.Readlink()
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// Info is the fs.FileInfo of a node.
func Info(n Node) fs.FileInfo { return nodeInfo{n, n.Name()} }

type nodeInfo struct {
	n    Node
	name string
}

func (i nodeInfo) Name() string       { return i.name }
func (i nodeInfo) Size() int64        { return i.n.Size() }
func (i nodeInfo) Mode() fs.FileMode  { return i.n.Mode() }
func (i nodeInfo) ModTime() time.Time { return i.n.ModTime() }
func (i nodeInfo) IsDir() bool        { return i.n.Mode().IsDir() }
func (i nodeInfo) Sys() any           { return i.n.Sys() }

// file is an open regular file: Read, ReadAt and Seek over its content.
type file struct {
	node Node
	*io.SectionReader
}

func (f *file) Stat() (fs.FileInfo, error) { return Info(f.node), nil }
func (f *file) Close() error               { return nil }

// specialFile is an open device, FIFO or socket: nothing to read.
type specialFile struct{ node Node }

func (f *specialFile) Stat() (fs.FileInfo, error) { return Info(f.node), nil }
func (f *specialFile) Read([]byte) (int, error)   { return 0, io.EOF }
func (f *specialFile) Close() error               { return nil }

// dirFile is an open directory.
type dirFile struct {
	fs   *FS
	node Node
	name string
	ents []fs.DirEntry
	read bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return Info(d.node), nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

// ReadDir returns the next n entries (all remaining when n <= 0).
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.fs.entries(d.node)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: err}
		}
		d.ents, d.read = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n]
	d.ents = d.ents[n:]
	return out, nil
}

// Span is a byte range [Start, End) of a volume.
type Span struct{ Start, End int64 }

// AddSpan appends [start, end) to spans, merging it with the last span when
// they touch (callers add in increasing order).
func AddSpan(spans []Span, start, end int64) []Span {
	if n := len(spans); n > 0 && spans[n-1].End == start {
		spans[n-1].End = end
		return spans
	}
	return append(spans, Span{start, end})
}
