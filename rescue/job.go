package rescue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
)

// Job is a file-to-file rescue, `vdisk rescue SRC DST`.
type Job struct {
	Source string // a block device or file, opened read-only
	Direct bool   // read the source with O_DIRECT
	Target string // the output image
	// Format and CreateOptions make a new output (-O, -o); default raw.
	Format, CreateOptions string
	// Mapfile is the ddrescue mapfile. When it exists the rescue resumes
	// into the existing Target; when it does not, a new Target is made and
	// kept (with the mapfile) even if the rescue is interrupted. Without a
	// mapfile the output is atomic: it appears only when the rescue ends.
	Mapfile string
	Command string              // recorded in the mapfile's heading
	Open    formats.OpenOptions // references of the output (backing files)
	Options Options
	// OpenRemote, when set, opens a Source that is not a local path (an
	// NBD URL) read-only: it returns the File, or nil to open a local file.
	OpenRemote func(name string, writable bool) (formats.File, error)
}

// openSource opens the job's source, through OpenRemote when it claims it.
func (job Job) openSource() (*Source, error) {
	if job.OpenRemote != nil {
		f, err := job.OpenRemote(job.Source, false)
		if err != nil {
			return nil, err
		}
		if f != nil {
			size, err := f.Size()
			if err != nil {
				f.Close()
				return nil, err
			}
			return RemoteSource(f, size), nil
		}
	}
	return OpenSource(job.Source, job.Direct)
}

// ErrNoMapfile: a target exists to resume into, but no mapfile says what
// it holds.
var ErrNoMapfile = errors.New("no mapfile")

// RunJob performs the rescue and returns its final map (also when
// interrupted: then with ctx's error).
func RunJob(ctx context.Context, job Job) (*Map, error) {
	src, err := job.openSource()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if err := checkNotSame(job.Source, job.Target, job.Mapfile); err != nil {
		return nil, err
	}
	if job.Mapfile != "" {
		job.Options.Save = func(m *Map) error { return saveMap(job.Mapfile, m) }
		if _, err := os.Stat(job.Mapfile); err == nil {
			return resume(ctx, job, src)
		}
	}
	m := NewMap(src.Size())
	m.Command = job.Command
	dst, out, err := create(ctx, job, src.Size())
	if err != nil {
		return nil, err
	}
	if job.Mapfile == "" {
		err := Run(ctx, src, dst, m, job.Options)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			out.Abort()
			return m, err
		}
		return m, out.Commit(false)
	}
	// A mapfile makes the output durable from the start: it is put in
	// place empty, with a map saying nothing is tried yet, then written in
	// place.
	err = dst.Flush()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = out.Commit(false)
	}
	if err != nil {
		out.Abort()
		return nil, err
	}
	if err := saveMap(job.Mapfile, m); err != nil {
		return nil, err
	}
	return runInto(ctx, job, src, m)
}

// resume continues the rescue a mapfile describes.
func resume(ctx context.Context, job Job, src *Source) (*Map, error) {
	f, err := os.Open(job.Mapfile)
	if err != nil {
		return nil, err
	}
	m, err := ParseMap(f, job.Mapfile, src.Size())
	f.Close()
	if err != nil {
		return nil, err
	}
	m.Command = job.Command
	if _, err := os.Stat(job.Target); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: the mapfile %s describes a rescue into it, but it does not exist (remove the mapfile to start over)", job.Target, job.Mapfile)
	}
	return runInto(ctx, job, src, m)
}

// runInto opens the existing target for writing and rescues into it.
func runInto(ctx context.Context, job Job, src *Source, m *Map) (*Map, error) {
	open := job.Open
	open.Writable, open.Format = true, job.Format
	img, err := formats.Open(ctx, job.Target, open)
	if err != nil {
		return nil, fmt.Errorf("opening the output to resume into: %w", err)
	}
	dst, ok := img.(formats.Writable)
	if !ok {
		img.Close()
		return nil, fmt.Errorf("%s: %w: %s images cannot be reopened for writing, so a rescue into one with a mapfile cannot go on (use raw, qcow2, vpc or vdi, then convert)", job.Target, formats.ErrReadOnly, img.Format())
	}
	// ddrescue's output grows as it is written: one it left shorter than
	// the source is extended (with zeros) to finish the rescue.
	if rs, ok := img.(formats.Resizer); ok && dst.Size() < m.Size {
		if err := rs.Resize(ctx, m.Size, false); err != nil {
			dst.Close()
			return nil, fmt.Errorf("%s: extending to the source's %d bytes: %w", job.Target, m.Size, err)
		}
	}
	err = Run(ctx, src, dst, m, job.Options)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return m, err
}

// create makes the new output image.
func create(ctx context.Context, job Job, size int64) (formats.Writable, *imagefile.Output, error) {
	format := job.Format
	if format == "" {
		format = "raw"
	}
	drv, err := formats.Lookup(format)
	if err != nil {
		return nil, nil, err
	}
	opts, err := formats.ParseOptions(drv.CreateOptions, job.CreateOptions)
	if err != nil {
		return nil, nil, err
	}
	if err := opts.Set("size", fmt.Sprint(size)); err != nil {
		return nil, nil, err
	}
	// No output file (extra files of a multi-file format included) may be
	// the source.
	sources := &imagefile.FileSet{}
	sources.Add(job.Source)
	dst, out, err := imagefile.Create(ctx, job.Target, drv, size, opts, job.Open, imagefile.Options{Sources: sources})
	if err != nil {
		return nil, nil, err
	}
	if sw, ok := dst.(formats.SequentialWriter); ok && sw.Sequential() {
		dst.Close()
		out.Abort()
		return nil, nil, fmt.Errorf("%w: a rescue writes out of order (trimming, scraping, retrying); this %s subformat is written only in order: rescue into another, then convert", formats.ErrUnsupported, drv.Name)
	}
	return dst, out, nil
}

// saveMap writes the mapfile through a temporary renamed into place, so an
// interruption leaves the previous map whole.
func saveMap(path string, m *Map) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := m.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing mapfile %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing mapfile %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// checkNotSame refuses a target or mapfile that is the source.
func checkNotSame(src string, others ...string) error {
	a, err := os.Stat(src)
	if err != nil {
		return nil
	}
	for _, o := range others {
		if o == "" {
			continue
		}
		if b, err := os.Stat(o); err == nil && os.SameFile(a, b) {
			return fmt.Errorf("%w: %s and %s", convert.ErrSameFile, src, o)
		}
	}
	return nil
}
