package convert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// Job is a file-to-file conversion, `vdisk convert`.
type Job struct {
	Source     string              // input path
	SourceOpen formats.OpenOptions // how to open it (format, references, snapshot)
	Target     string              // output path; "-" writes to Stdout
	Format     string              // output format (-O); default raw
	// CreateOptions is the -o text (k=v,...).
	CreateOptions string
	// Backing and BackingFormat make the output an overlay (-B/-F): only
	// the source's top layer is copied.
	Backing, BackingFormat string
	Existing               bool // -n: write into an existing image
	Sync                   bool // --sync: fsync the output and its directory
	Stdout                 io.Writer
	Copy                   Options
	// Warn, when set, receives warnings (temporary files left beside the
	// target by an earlier conversion that was killed).
	Warn func(msg string)
}

// ErrSameFile: the output would overwrite the input.
var ErrSameFile = errors.New("input and output are the same file")

// Run performs the conversion. On any failure (or cancellation) nothing is
// left at the target path that was not there before.
func Run(ctx context.Context, job Job) error {
	if job.Format == "" {
		job.Format = "raw"
	}
	drv, err := formats.Lookup(job.Format)
	if err != nil {
		return err
	}
	if err := checkNotSame(job.Source, job.Target); err != nil {
		return err
	}
	src, err := formats.Open(job.Source, job.SourceOpen)
	if err != nil {
		return err
	}
	defer src.Close()
	if job.Backing != "" {
		job.Copy.TopLayerOnly = true
	}
	if job.Existing {
		return runExisting(ctx, job, src)
	}
	opts, err := job.createOptions(drv, src.Size())
	if err != nil {
		return err
	}
	if job.Target == "-" {
		return runStream(ctx, job, drv, opts, src)
	}
	return runAtomic(ctx, job, drv, opts, src)
}

// createOptions parses -o and folds in the size and -B/-F.
func (job Job) createOptions(drv *formats.Driver, size int64) (formats.Options, error) {
	opts, err := formats.ParseOptions(drv.CreateOptions, job.CreateOptions)
	if err != nil {
		return opts, err
	}
	if job.Backing != "" {
		if err := opts.Set("backing_file", job.Backing); err != nil {
			return opts, fmt.Errorf("%w (format %s has no backing files)", err, drv.Name)
		}
		if job.BackingFormat != "" {
			if err := opts.Set("backing_fmt", job.BackingFormat); err != nil {
				return opts, err
			}
		}
	}
	if p := opts.String("preallocation"); job.Copy.Compress && p != "" && p != "off" {
		return opts, fmt.Errorf("%w: compression and preallocation not supported at the same time", formats.ErrInvalidOption)
	}
	return opts, opts.Set("size", fmt.Sprint(size))
}

func runExisting(ctx context.Context, job Job, src formats.Image) error {
	if job.CreateOptions != "" {
		return fmt.Errorf("%w: -o has no effect when skipping image creation", formats.ErrInvalidOption)
	}
	open := job.SourceOpen
	open.Format, open.Writable, open.Snapshot = job.Format, true, ""
	img, err := formats.Open(job.Target, open)
	if err != nil {
		return err
	}
	dst, ok := img.(formats.Writable)
	if !ok {
		img.Close()
		return fmt.Errorf("%s: %w: format %s cannot be written", job.Target, formats.ErrReadOnly, img.Format())
	}
	if err := copyAndFlush(ctx, dst, src, job.Copy); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if job.Sync {
		return fsyncPath(job.Target)
	}
	return nil
}

func copyAndFlush(ctx context.Context, dst formats.Writable, src formats.Image, opts Options) error {
	if err := Copy(ctx, dst, src, opts); err != nil {
		return err
	}
	return dst.Flush()
}

func runStream(ctx context.Context, job Job, drv *formats.Driver, opts formats.Options, src formats.Image) error {
	if drv.Create == nil {
		return fmt.Errorf("%w: format %s cannot be created", formats.ErrUnsupported, drv.Name)
	}
	out := fileio.NewStream(job.Stdout, "-")
	dst, err := drv.Create(formats.CreateRequest{File: out, Name: "-", Size: src.Size(), Options: opts,
		Siblings: func(name string) (formats.File, error) {
			return nil, fmt.Errorf("%w: format %s needs extra files (%s); it cannot go to a stream", formats.ErrUnsupported, drv.Name, name)
		},
		Open: job.SourceOpen})
	if err != nil {
		return err
	}
	if sw, ok := dst.(formats.SequentialWriter); !ok || !sw.Sequential() {
		dst.Close()
		return fmt.Errorf("%w: this %s subformat cannot be written to a stream (use a file)", formats.ErrUnsupported, drv.Name)
	}
	job.Copy.TargetIsZero = true
	if err := copyAndFlush(ctx, dst, src, job.Copy); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// output is the set of temporary files of one conversion, renamed into place
// together on success and removed on failure.
type output struct {
	dir   string
	files []*tempFile
}

type tempFile struct {
	f         *os.File
	tmp, dest string
}

// tempPattern is the glob of the temporary files of a conversion to dest.
func tempPattern(dest string) string {
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".vdisk-*.tmp")
}

// StaleTemporaries lists temporary files that a killed conversion to dest
// left behind (a conversion that fails or is interrupted removes its own).
func StaleTemporaries(dest string) []string {
	matches, _ := filepath.Glob(tempPattern(dest))
	return matches
}

// create makes a temporary file for dest (a path in o.dir), exclusively.
func (o *output) create(dest string) (*tempFile, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tmp := strings.Replace(tempPattern(dest), "*", hex.EncodeToString(rnd[:]), 1)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	t := &tempFile{f: f, tmp: tmp, dest: dest}
	o.files = append(o.files, t)
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

// remove deletes every temporary file.
func (o *output) remove() {
	for _, t := range o.files {
		os.Remove(t.tmp)
	}
}

// commit fsyncs (when asked) and renames the files into place, the main file
// (the first) last, then fsyncs the directory.
func (o *output) commit(sync bool) error {
	if sync {
		for _, t := range o.files {
			if err := fsyncPath(t.tmp); err != nil {
				return fmt.Errorf("%s: %w", t.dest, err)
			}
		}
	}
	for i := len(o.files) - 1; i >= 0; i-- {
		t := o.files[i]
		if err := os.Rename(t.tmp, t.dest); err != nil {
			return err
		}
	}
	if !sync {
		return nil
	}
	return fsyncPath(o.dir)
}

// fsyncPath fsyncs a file or directory by path (the image has closed its
// own descriptors by then).
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

func runAtomic(ctx context.Context, job Job, drv *formats.Driver, opts formats.Options, src formats.Image) (err error) {
	if job.Warn != nil {
		for _, stale := range StaleTemporaries(job.Target) {
			job.Warn(fmt.Sprintf("%s is left from an interrupted conversion to %s; remove it", stale, job.Target))
		}
	}
	dst, out, err := CreateImage(job.Target, drv, src.Size(), opts, job.SourceOpen)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			out.Abort()
		}
	}()
	job.Copy.TargetIsZero = true
	if err := copyAndFlush(ctx, dst, src, job.Copy); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := out.Commit(job.Sync); err != nil {
		return err
	}
	committed = true
	return nil
}

// Output is a new image being written to temporary files; Commit renames
// them into place, Abort removes them.
type Output struct{ o *output }

// Commit renames the output files into place (fsyncing first when sync).
func (p *Output) Commit(sync bool) error { return p.o.commit(sync) }

// Abort removes the temporary files.
func (p *Output) Abort() { p.o.remove() }

// CreateImage creates a new image of size bytes for path in temporary files
// next to it. The caller writes it, Closes it, then Commits or Aborts.
func CreateImage(path string, drv *formats.Driver, size int64, opts formats.Options, open formats.OpenOptions) (formats.Writable, *Output, error) {
	if drv.Create == nil {
		return nil, nil, fmt.Errorf("%w: format %s cannot be created", formats.ErrUnsupported, drv.Name)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, nil, fmt.Errorf("%s: is a directory", path)
	}
	o := &output{dir: filepath.Dir(path)}
	main, err := o.create(path)
	if err != nil {
		return nil, nil, err
	}
	open.Writable, open.Snapshot, open.Format = false, "", ""
	img, err := drv.Create(formats.CreateRequest{File: formats.NewOSFile(main.f), Name: path, Size: size,
		Options: opts, Siblings: o.sibling, Open: open})
	if err != nil {
		main.f.Close()
		o.remove()
		return nil, nil, err
	}
	return img, &Output{o: o}, nil
}

// checkNotSame refuses an output that is the input (also through symlinks
// or hard links).
func checkNotSame(src, dst string) error {
	if dst == "-" {
		return nil
	}
	a, err := os.Stat(src)
	if err != nil {
		return nil // the open reports it
	}
	b, err := os.Stat(dst)
	if err != nil {
		return nil
	}
	if os.SameFile(a, b) {
		return fmt.Errorf("%w: %s and %s", ErrSameFile, src, dst)
	}
	return nil
}
