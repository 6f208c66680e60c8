package imagefile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/hostfile"
	"github.com/vdiskio/vdisk/source/compressed"
	"github.com/vdiskio/vdisk/source/split"
)

// Options say how a new image is written to its destination.
type Options struct {
	// TargetIsZero: an existing block device destination already reads as
	// zeros (--target-is-zero), so a raw image's zero ranges are not
	// written and a container format's growth is not zeroed.
	TargetIsZero bool
	// Sources are the files the input uses (image, extents, chain): an
	// output file (the image or an extra file of a multi-file format) that
	// is one of them is refused before anything is renamed into place.
	Sources *FileSet
	// Direct opens write-through destinations with O_DIRECT where the OS
	// allows it (-t none, directsync), else buffered, as qemu falls back.
	Direct bool
	// Warn, when set, is told of temporaries of killed runs removed.
	Warn func(msg string)
	// Locks, when set, takes a writer's qemu image locks on an existing
	// destination (a file being replaced, a device) and holds them: a
	// destination a running qemu uses is refused.
	Locks *Locks
	// SplitBytes, when positive, writes the image as a split set (see
	// package source/split): path.001, path.002, ... of this size and the
	// manifest path.split, every one a temporary until Commit.
	SplitBytes int64
	// Compression, when set, writes the (raw) image as one compressed
	// stream into the destination (see convert/compressout.go).
	Compression compressed.Kind
	// Provisional: the size is an upper bound the image is finished
	// below (formats.CreateRequest.Provisional).
	Provisional bool
}

// Output is a new image being written: to temporary files renamed into
// place by Commit (a new or regular-file destination), or through to a
// device, pipe or descriptor. Abort removes the temporaries; what was
// written through to a device stays written.
type Output struct {
	dest   destination
	temps  *output // nil when written through
	zeroed bool    // the image reads as zeros where it is not written
}

// TargetIsZero reports whether the new image reads as zeros where nothing
// is written (so a copy may skip zero ranges): true for files and streams,
// false for a raw image on a device unless Options.TargetIsZero.
func (p *Output) TargetIsZero() bool { return p.zeroed }

// Commit renames the output files into place (fsyncing first when sync);
// for a written-through destination it fsyncs when sync.
func (p *Output) Commit(sync bool) error {
	if p.temps == nil {
		if sync && p.dest.kind == destInPlace {
			return FsyncPath(p.dest.path)
		}
		return nil
	}
	return p.temps.commit(sync)
}

// Abort removes the temporary files.
func (p *Output) Abort() {
	if p.temps != nil {
		p.temps.remove()
	}
}

// CreateImage creates a new image of size bytes at path with default output
// options. The caller writes it, Closes it, then Commits or Aborts.
func CreateImage(ctx context.Context, path string, drv *formats.Driver, size int64, opts formats.Options, open formats.OpenOptions) (formats.Writable, *Output, error) {
	return Create(ctx, path, drv, size, opts, open, Options{})
}

// Create creates a new image of size bytes for path. A missing path
// or a regular file gets temporary files beside it (a symlink's target's
// directory), renamed into place by Commit; a block device is written
// through (it must be large enough: qemu's "Cannot grow device files");
// a character device, FIFO or descriptor of this process is written in
// order (sequential formats only). A directory or socket is refused.
func Create(ctx context.Context, path string, drv *formats.Driver, size int64, opts formats.Options, open formats.OpenOptions, oo Options) (formats.Writable, *Output, error) {
	if drv.Create == nil {
		return nil, nil, fmt.Errorf("%w: format %s cannot be created", formats.ErrUnsupported, drv.Name)
	}
	d, err := resolveDest(path)
	if err != nil {
		return nil, nil, err
	}
	if err := oo.Sources.Check(path); err != nil {
		return nil, nil, err
	}
	if oo.SplitBytes > 0 && d.kind != destNew && d.kind != destReplace {
		return nil, nil, fmt.Errorf("%w: %s is not a regular file; a split set is written as files", formats.ErrUnsupported, path)
	}
	if d.kind != destNew && d.kind != destStream && oo.Locks != nil && oo.SplitBytes == 0 {
		if err := oo.Locks.LockPath(path, drv.Name); err != nil {
			return nil, nil, err
		}
	}
	out := &Output{dest: d, zeroed: true}
	var file formats.File
	siblings := func(name string) (formats.File, error) {
		return nil, fmt.Errorf("%w: format %s needs an extra file (%s) beside its image; %s is not a regular file", formats.ErrUnsupported, drv.Name, name, path)
	}
	switch d.kind {
	case destNew, destReplace:
		o := &output{dir: filepath.Dir(d.real), sources: oo.Sources, warn: oo.Warn}
		if oo.SplitBytes > 0 {
			if file, err = split.NewWriter(d.real, oo.SplitBytes, splitCreator{o}); err != nil {
				o.remove()
				return nil, nil, err
			}
			out.temps, siblings = o, o.sibling
			break
		}
		main, err := o.create(d.real)
		if err != nil {
			return nil, nil, err
		}
		out.temps, file, siblings = o, formats.NewOSFile(main.f), o.sibling
	default:
		if file, err = openThrough(d, drv, size, oo); err != nil {
			return nil, nil, err
		}
		if oo.Compression != compressed.None && d.kind == destDevice {
			file.Close()
			return nil, nil, fmt.Errorf("%w: %s is a block device; a compressed output goes to a file or a stream", formats.ErrUnsupported, path)
		}
		out.zeroed = !(d.kind == destDevice && drv.Name == "raw") || oo.TargetIsZero
	}
	if oo.Compression != compressed.None {
		if file, err = compressInto(file, oo.Compression, path); err != nil {
			out.Abort()
			return nil, nil, err
		}
	}
	open.Writable, open.Snapshot, open.Format = false, "", ""
	img, err := drv.Create(ctx, formats.CreateRequest{File: file, Name: path, Size: size,
		Options: opts, Siblings: siblings, Open: open, Provisional: oo.Provisional})
	if err == nil && d.kind == destStream {
		if sw, ok := img.(formats.SequentialWriter); !ok || !sw.Sequential() {
			img.Close()
			img, err = nil, fmt.Errorf("%w: %s is a pipe or character device, written in order; this %s subformat cannot be (write it to a file)", formats.ErrUnsupported, path, drv.Name)
		}
	}
	if err != nil {
		if img == nil {
			file.Close()
		}
		out.Abort()
		return nil, nil, err
	}
	return img, out, nil
}

// openThrough opens a destination that is written where it is.
func openThrough(d destination, drv *formats.Driver, size int64, oo Options) (formats.File, error) {
	switch d.kind {
	case destInPlace:
		f, err := os.OpenFile(d.path, os.O_RDWR|os.O_TRUNC, 0)
		if err != nil {
			return nil, err
		}
		return formats.NewOSFile(f), nil
	case destStream:
		f, err := os.OpenFile(d.path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return newStreamFile(f), nil
	}
	raw := drv.Name == "raw"
	dev, err := openDevice(d.path, oo.Direct, !raw && !oo.TargetIsZero)
	if err != nil {
		return nil, err
	}
	if raw && size > dev.capacity {
		dev.f.Close()
		return nil, fmt.Errorf("%s: %s (the device has %d bytes, the image needs %d)", d.path, errCannotGrow, dev.capacity, size)
	}
	return dev, nil
}

// openDevice opens a block device for writing, refusing a read-only one
// with qemu's wording.
func openDevice(path string, direct, zeroGrow bool) (*deviceFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, os.ErrPermission) || isEROFS(err) {
		return nil, fmt.Errorf("%s: The device is not writable: Permission denied", path)
	}
	if err != nil {
		return nil, err
	}
	if ro, err := hostfile.DeviceReadOnly(f); err != nil || ro {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: The device is not writable: Permission denied", path)
	}
	capacity, err := hostfile.DeviceSize(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	dev := &deviceFile{f: f, capacity: capacity, zeroGrow: zeroGrow}
	if direct && hostfile.DirectFlag != 0 {
		// Aligned writes bypass the page cache; where O_DIRECT cannot be
		// had, everything stays buffered, as qemu falls back.
		if df, err := os.OpenFile(path, os.O_RDWR|hostfile.DirectFlag, 0); err == nil {
			dev.direct = df
		}
	}
	return dev, nil
}

func isEROFS(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "read-only file system")
}

// output is the set of temporary files of one new image, renamed into
// place together on success and removed on failure.
type output struct {
	dir     string
	files   []*tempFile
	sources *FileSet
	warn    func(string)
}

type tempFile struct {
	f         *os.File
	lock      *os.File // a second descriptor holding the flock that marks the temporary in use
	tmp, dest string
	keep      os.FileInfo // the file the temporary replaces, or nil
}

// tempPattern is the glob of the temporary files of a conversion to dest.
func tempPattern(dest string) string {
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".vdisk-*.tmp")
}

// StaleTemporaries lists temporary files that a killed run writing dest
// left behind and no running vdisk holds (a run that fails or is
// interrupted removes its own). CreateOutput removes them.
func StaleTemporaries(dest string) []string {
	matches, _ := filepath.Glob(tempPattern(dest))
	var stale []string
	for _, m := range matches {
		if f := lockStale(m); f != nil {
			f.Close()
			stale = append(stale, m)
		}
	}
	return stale
}

// lockStale opens the temporary at path and takes its lock, returning the
// open file when nobody held it (nil otherwise, or when it is not a regular
// file: only vdisk's own temporaries are touched).
func lockStale(path string) *os.File {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	if ok, _ := hostfile.TryLock(f); !ok {
		f.Close()
		return nil
	}
	if fst, err := f.Stat(); err != nil || !os.SameFile(st, fst) {
		f.Close()
		return nil
	}
	return f
}

// removeStale removes the temporaries a killed run left for dest: the
// names vdisk gives them (.NAME.vdisk-*.tmp), regular files, that no live
// run holds locked.
func (o *output) removeStale(dest string) {
	matches, _ := filepath.Glob(tempPattern(dest))
	for _, m := range matches {
		f := lockStale(m)
		if f == nil {
			continue
		}
		if os.Remove(m) == nil && o.warn != nil {
			o.warn(fmt.Sprintf("removed %s, left by an interrupted run writing %s", m, dest))
		}
		f.Close()
	}
}

// create makes a temporary file for dest (a path in o.dir), exclusively,
// locked as in use, with the owner and mode of the file it will replace.
func (o *output) create(dest string) (*tempFile, error) {
	if err := o.sources.Check(dest); err != nil {
		return nil, err
	}
	var keep os.FileInfo
	if st, err := os.Stat(dest); err == nil {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: exists and is not a regular file; an extra output file is never written through", dest)
		}
		keep = st
	}
	o.removeStale(dest)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tmp := strings.Replace(tempPattern(dest), "*", hex.EncodeToString(rnd[:]), 1)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	t := &tempFile{f: f, tmp: tmp, dest: dest, keep: keep}
	o.files = append(o.files, t)
	if lock, err := os.Open(tmp); err == nil {
		if ok, _ := hostfile.TryLock(lock); ok {
			t.lock = lock
		} else {
			lock.Close()
		}
	}
	if keep != nil {
		if err := hostfile.KeepOwner(f, keep); err != nil {
			return nil, fmt.Errorf("%s: %w", dest, err)
		}
	}
	return t, nil
}

// sibling creates an extra output file named relative to the output's
// directory; names that leave it are refused.
func (o *output) sibling(name string) (formats.File, error) {
	if name == "" || filepath.IsAbs(name) || strings.Contains(name, "..") || strings.ContainsRune(name, filepath.Separator) {
		return nil, fmt.Errorf("%w: extra output file %q must be a plain name", formats.ErrInvalidOption, name)
	}
	t, err := o.create(filepath.Join(o.dir, name))
	if err != nil {
		return nil, err
	}
	return formats.NewOSFile(t.f), nil
}

// splitCreator makes the pieces of a split output as temporaries of o.
type splitCreator struct{ o *output }

func (c splitCreator) Create(path string) (formats.File, error) {
	t, err := c.o.create(path)
	if err != nil {
		return nil, err
	}
	return formats.NewOSFile(t.f), nil
}

// Discard removes the temporary for path and forgets it.
func (c splitCreator) Discard(path string) {
	for i, t := range c.o.files {
		if t.dest == path {
			os.Remove(t.tmp)
			t.unlock()
			c.o.files = append(c.o.files[:i], c.o.files[i+1:]...)
			return
		}
	}
}

// remove deletes every temporary file.
func (o *output) remove() {
	for _, t := range o.files {
		os.Remove(t.tmp)
		t.unlock()
	}
}

func (t *tempFile) unlock() {
	if t.lock != nil {
		t.lock.Close()
		t.lock = nil
	}
}

// commit checks again that no output file is a source (a backing file the
// driver opened while creating), fsyncs (when asked) and renames the files
// into place, the main file (the first) last, then fsyncs the directory.
func (o *output) commit(sync bool) error {
	for _, t := range o.files {
		if err := o.sources.Check(t.dest); err != nil {
			o.remove() // nothing is renamed: the output never appears
			return err
		}
	}
	if sync {
		for _, t := range o.files {
			if err := FsyncPath(t.tmp); err != nil {
				return fmt.Errorf("%s: %w", t.dest, err)
			}
		}
	}
	for i := len(o.files) - 1; i >= 0; i-- {
		t := o.files[i]
		if err := os.Rename(t.tmp, t.dest); err != nil {
			return err
		}
		t.unlock()
	}
	if !sync {
		return nil
	}
	return FsyncPath(o.dir)
}
