package iso

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// copyBufBytes is the buffer for streaming file data.
const copyBufBytes = 1 << 20

// Extract copies the file or directory tree at p into the directory
// destDir (created if missing): a file becomes destDir/NAME, a directory's
// contents go directly into destDir (as xorriso -extract does). Nothing is
// ever written outside destDir: names that are not a single path element
// are refused, and every file is created through an os.Root, which does not
// follow symbolic links out of it. Rock Ridge permissions (without setuid,
// setgid and sticky bits) and modification times are restored; symbolic
// links are recreated as links. ctx is checked before each entry and each
// 1 MiB of file data; a file cut short by cancellation or an error is
// removed.
//
// Extract writes at most as many bytes as the image holds. Files whose
// data is the same run of extents (hard links, deduplicated content) are
// extracted as hard links of the first one extracted (copies where the
// destination cannot link, which count); any other file is copied and
// counted, so files crafted to overlap (one small extent named by many
// files, or many times by one) stop with an ErrLimit error once the copies
// would exceed the image's size, instead of multiplying its bytes.
func (f *FS) Extract(ctx context.Context, p, destDir string) error {
	e, err := f.Lookup(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(destDir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{ctx: ctx, f: f, root: root, buf: make([]byte, copyBufBytes), seen: map[uint32]bool{},
		budget: f.size, linked: map[string]string{}}
	if !e.IsDir() {
		return x.entry(e, e.Name)
	}
	if err := x.dir(e, ".", 0); err != nil {
		return err
	}
	return nil
}

type extractor struct {
	ctx    context.Context
	f      *FS
	root   *os.Root
	buf    []byte
	seen   map[uint32]bool
	budget int64             // bytes the copies may still write
	linked map[string]string // extent run -> the first file extracted with it
}

func (x *extractor) dir(e Entry, rel string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s: %s is nested deeper than %d", x.f.name, e.Path, maxDepth)
	}
	if x.seen[e.dirKey] {
		return fmt.Errorf("%s: directory loop at %s", x.f.name, e.Path)
	}
	x.seen[e.dirKey] = true
	kids, err := x.f.readDir(&e)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := x.entry(k, path.Join(rel, k.Name)); err != nil {
			return err
		}
		if k.IsDir() {
			if err := x.dir(k, path.Join(rel, k.Name), depth+1); err != nil {
				return err
			}
		}
	}
	if !e.ModTime.IsZero() && rel != "." {
		x.root.Chtimes(rel, e.ModTime, e.ModTime)
	}
	return nil
}

// entry creates one file, link or (empty) directory at rel.
func (x *extractor) entry(e Entry, rel string) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	if err := checkName(e.Name); err != nil {
		return fmt.Errorf("%s: refusing to extract %s: %v", x.f.name, e.Path, err)
	}
	switch {
	case e.IsDir():
		err := x.root.Mkdir(rel, dirPerm(e.Mode))
		if err != nil && !os.IsExist(err) {
			return err
		}
		return nil
	case e.Mode&fs.ModeSymlink != 0:
		err := x.root.Symlink(e.Link, rel)
		if os.IsExist(err) { // extracting again: replace the old entry
			if err = x.root.Remove(rel); err == nil {
				err = x.root.Symlink(e.Link, rel)
			}
		}
		return err
	case e.Mode.IsRegular():
		return x.file(e, rel)
	}
	return nil // device nodes, fifos and sockets are not recreated
}

// extentKey names a file's run of extents; files with equal keys hold the
// same bytes of the image.
func extentKey(e *Entry) string {
	var b strings.Builder
	for _, x := range e.extents {
		fmt.Fprintf(&b, "%d+%d,", x.off, x.length)
	}
	return b.String()
}

func (x *extractor) file(e Entry, rel string) error {
	key := extentKey(&e)
	if first, ok := x.linked[key]; ok && e.Size > 0 {
		x.root.Remove(rel) // extracting again: replace the old entry
		if x.root.Link(first, rel) == nil {
			return nil
		}
	}
	if e.Size > x.budget {
		return formats.Limitf(x.f.name, "directory record of "+e.Path, -1,
			"extracting its %d bytes would write more than the %d bytes the image holds (files overlap: a crafted image?)", e.Size, x.f.size)
	}
	x.budget -= e.Size
	if e.Size > 0 {
		x.linked[key] = rel
	}
	out, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, e.Mode.Perm()|0o200)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(out, ctxReader{x.ctx, x.f.contents(&e)}, x.buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != e.Size {
		err = fmt.Errorf("%s: %s: copied %d of %d bytes", x.f.name, e.Path, n, e.Size)
	}
	if err != nil {
		x.root.Remove(rel)
		return err
	}
	if perm := e.Mode.Perm(); perm&0o200 == 0 {
		x.root.Chmod(rel, perm)
	}
	if !e.ModTime.IsZero() {
		x.root.Chtimes(rel, e.ModTime, e.ModTime)
	}
	return nil
}

func dirPerm(m fs.FileMode) fs.FileMode { return m.Perm() | 0o700 }

// ctxReader stops with ctx's error at the next Read once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
