package fsys

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/ext4"
	"github.com/vdiskio/vdisk/fsys/fsnode"
	"github.com/vdiskio/vdisk/internal/zero"
)

// maxDepth bounds how deep a walk descends (a damaged tree could nest
// without end).
const maxDepth = 256

// ErrLoop: a directory contains itself.
var ErrLoop = errors.New("directory loop")

// Entry is one file met by Walk: its path (relative to the walk's root,
// slash-separated) and its information, not following symbolic links.
type Entry struct {
	Path string
	Info fs.FileInfo
}

// Walk calls fn for root and everything below it, parents before
// children, without following symbolic links. A directory met again below
// itself (same identity) is ErrLoop.
func Walk(ctx context.Context, fsys FS, root string, fn func(Entry) error) error {
	info, err := fsys.Lstat(root)
	if err != nil {
		return err
	}
	return walk(ctx, fsys, Entry{root, info}, fn, map[uint64]bool{}, 0)
}

func walk(ctx context.Context, fsys FS, e Entry, fn func(Entry) error, open map[uint64]bool, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := fn(e); err != nil {
		return err
	}
	if !e.Info.IsDir() {
		return nil
	}
	if depth >= maxDepth {
		return fmt.Errorf("%w: %s: directories nested deeper than %d", formats.ErrLimit, e.Path, maxDepth)
	}
	if id, ok := identity(e.Info); ok {
		if open[id] {
			return fmt.Errorf("%w: %s contains itself", ErrLoop, e.Path)
		}
		open[id] = true
		defer delete(open, id)
	}
	ents, err := fsys.ReadDir(e.Path)
	if err != nil {
		return err
	}
	for _, d := range ents {
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := walk(ctx, fsys, Entry{path.Join(e.Path, d.Name()), info}, fn, open, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// identity is a file's inode or record number, when its file system has one.
func identity(info fs.FileInfo) (uint64, bool) {
	if s, ok := info.Sys().(fsnode.Identifier); ok {
		return s.ID(), true
	}
	return 0, false
}

// owner is the file's owner where the file system records one.
func owner(info fs.FileInfo) (uid, gid int, ok bool) {
	if s, isExt := info.Sys().(*ext4.Stat); isExt {
		return int(s.UID), int(s.GID), true
	}
	return 0, 0, false
}

// links is the hard-link count where the file system records one.
func links(info fs.FileInfo) int {
	if s, ok := info.Sys().(*ext4.Stat); ok {
		return int(s.Links)
	}
	return 1
}

// ExtractStats counts what Extract did.
type ExtractStats struct {
	Files, Dirs, Links, HardLinks int
	Bytes                         int64
	Skipped                       []string // special files not extracted
}

// Extract copies src (a file or a tree) from fsys into the directory dest
// (created when missing): src's last element becomes dest's child ("."
// extracts the whole file system into dest). Symbolic links are made as
// links, hard links as hard links, permissions and modification times are
// kept; device nodes, FIFOs and sockets are skipped and listed. Nothing is
// written outside dest: every path goes through an os.Root, which refuses
// ".." and links that leave it. Existing files are not overwritten.
func Extract(ctx context.Context, fsys FS, src, dest string) (ExtractStats, error) {
	var st ExtractStats
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return st, err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return st, err
	}
	defer root.Close()
	base := path.Base(src)
	target := func(p string) string {
		if src == "." {
			return p
		}
		rel := p[len(src):]
		return path.Join(base, rel)
	}
	seen := map[uint64]string{} // hard-linked files: identity -> first path
	type dirTimes struct {
		name  string
		mode  fs.FileMode
		mtime time.Time
	}
	var dirs []dirTimes
	err = Walk(ctx, fsys, src, func(e Entry) error {
		name := target(e.Path)
		mode := e.Info.Mode()
		switch {
		case mode.IsDir():
			if name != "." {
				if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			}
			dirs = append(dirs, dirTimes{name, mode.Perm(), e.Info.ModTime()})
			st.Dirs++
		case mode&fs.ModeSymlink != 0:
			link, err := fsys.ReadLink(e.Path)
			if err != nil {
				return err
			}
			if err := root.Symlink(link, name); err != nil {
				return err
			}
			st.Links++
		case mode.IsRegular():
			if id, ok := identity(e.Info); ok && links(e.Info) > 1 {
				if first, dup := seen[id]; dup {
					st.HardLinks++
					return root.Link(first, name)
				}
				seen[id] = name
			}
			n, err := extractFile(fsys, e, root, name)
			st.Bytes += n
			st.Files++
			return err
		default:
			st.Skipped = append(st.Skipped, e.Path)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	for i := len(dirs) - 1; i >= 0; i-- { // children first: a read-only directory last
		d := dirs[i]
		if err := root.Chmod(d.name, d.mode); err != nil {
			return st, err
		}
		if !d.mtime.IsZero() {
			root.Chtimes(d.name, d.mtime, d.mtime)
		}
	}
	return st, nil
}

// copyBlock is the unit of file copies; all-zero blocks become holes.
const copyBlock = 1 << 20

// extractFile writes one regular file, leaving holes where its data is
// zeros.
func extractFile(fsys FS, e Entry, root *os.Root, name string) (int64, error) {
	in, err := fsys.Open(e.Path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := copySparse(out, in)
	if err == nil {
		err = out.Truncate(n)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("%s: %w", e.Path, err)
	}
	if err := root.Chmod(name, e.Info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return n, err
	}
	if mt := e.Info.ModTime(); !mt.IsZero() {
		root.Chtimes(name, mt, mt)
	}
	return n, nil
}

// copySparse copies r into w, seeking over all-zero blocks.
func copySparse(w *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, copyBlock)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if !zero.Is(buf[:n]) {
				if _, werr := w.WriteAt(buf[:n], off); werr != nil {
					return off, werr
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// Tar writes src (a file or a tree) from fsys to w as a tar archive (PAX
// headers for long names): files, directories, symbolic links, hard links
// (as links to the first name), FIFOs; device nodes and sockets are
// skipped and returned.
func Tar(ctx context.Context, fsys FS, src string, w io.Writer) ([]string, error) {
	tw := tar.NewWriter(w)
	var skipped []string
	seen := map[uint64]string{}
	base := path.Base(src)
	err := Walk(ctx, fsys, src, func(e Entry) error {
		name := e.Path
		if src != "." {
			name = path.Join(base, e.Path[len(src):])
		}
		mode := e.Info.Mode()
		hdr := &tar.Header{Name: name, Mode: int64(mode.Perm()), ModTime: e.Info.ModTime(), Format: tar.FormatPAX}
		if mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		if uid, gid, ok := owner(e.Info); ok {
			hdr.Uid, hdr.Gid = uid, gid
		}
		switch {
		case mode.IsDir():
			if name == "." {
				return nil
			}
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case mode&fs.ModeSymlink != 0:
			link, err := fsys.ReadLink(e.Path)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, link
		case mode&fs.ModeNamedPipe != 0:
			hdr.Typeflag = tar.TypeFifo
		case mode.IsRegular():
			if id, ok := identity(e.Info); ok && links(e.Info) > 1 {
				if first, dup := seen[id]; dup {
					hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
					return tw.WriteHeader(hdr)
				}
				seen[id] = name
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.Info.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			f, err := fsys.Open(e.Path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
			return nil
		default:
			skipped = append(skipped, e.Path)
			return nil
		}
		return tw.WriteHeader(hdr)
	})
	if err != nil {
		return skipped, err
	}
	return skipped, tw.Close()
}
