package convert

import (
	"context"
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/partition"
	"github.com/vdiskio/vdisk/source/compressed"
)

// Job is a file-to-file conversion, `vdisk convert`.
type Job struct {
	Source string // input path
	// SourceImage, when set, is the input, already open (a stream read
	// once, package source/stream); Source names it in messages. Run
	// closes it. An input whose size is known only at its end (a
	// StreamSizer) is written into an output created at the provisional
	// size and shrunk to the real one at the end.
	SourceImage formats.Image
	SourceOpen  formats.OpenOptions // how to open it (format, references, snapshot)
	// Partition, when > 0, converts only that partition of the source
	// (its number in the MBR or GPT; see package partition).
	Partition int
	// SourceFilter, when set, replaces the opened source (after Partition)
	// with the image it returns, which then owns the source: a view that
	// hides free file-system blocks (fsys.UsedOnly), say.
	SourceFilter func(formats.Image) (formats.Image, error)
	Target       string // output path; "-" writes to Stdout
	Format       string // output format (-O); default raw
	// CreateOptions is the -o text (k=v,...).
	CreateOptions string
	// Backing and BackingFormat make the output an overlay (-B/-F): only
	// the source's top layer is copied.
	Backing, BackingFormat string
	// OverlayFilter, when set with Backing, replaces the view that is
	// written into the overlay (the source seen against the backing) with
	// the image it returns: convert --bitmap keeps the ranges a dirty
	// bitmap marks.
	OverlayFilter func(formats.Image) formats.Image
	Existing      bool // -n: write into an existing image
	Sync          bool // --sync: fsync the output and its directory
	// Direct (-t none, directsync) writes a device destination with
	// O_DIRECT where the OS allows it.
	Direct bool
	// ForceShare (-U) takes no image locks on the input (qemu's
	// force-share): reading an image a running VM writes.
	ForceShare bool
	// SplitBytes, when positive, writes the output as a split set of
	// pieces of this size: TARGET.001, TARGET.002, ... and the manifest
	// TARGET.split (package source/split), all committed together.
	SplitBytes int64
	Stdout     io.Writer
	// Compression, when set (xz, zstd or gzip), writes the raw output as
	// one compressed stream, compressed in parallel (see compressout.go).
	Compression compressed.Kind
	// Driver, when set, writes the output instead of the registered
	// driver Format names: a package that is not an image format (package
	// cloudpkg's ova and gce), written atomically like any output.
	Driver *formats.Driver
	Copy   Options
	// Warn, when set, receives warnings (temporary files of an earlier
	// conversion that was killed, removed).
	Warn func(msg string)
	// OpenRemote, when set, opens a Source or existing Target that is not
	// a local path (an NBD URL): it returns the File, or nil to open name
	// as a local file.
	OpenRemote func(name string, writable bool) (formats.File, error)
}

// open opens name as an image, through OpenRemote when it claims the name.
func (job Job) open(ctx context.Context, name string, opts formats.OpenOptions) (formats.Image, bool, error) {
	if job.OpenRemote == nil {
		return nil, false, nil
	}
	f, err := job.OpenRemote(name, opts.Writable)
	if err != nil || f == nil {
		return nil, err != nil, err
	}
	img, err := formats.OpenFile(ctx, f, opts)
	if err != nil {
		f.Close()
		return nil, true, err
	}
	return img, true, nil
}

// ErrSameFile: the output would overwrite the input.
var ErrSameFile = imagefile.ErrSameFile

// Run performs the conversion. On any failure (or cancellation) nothing is
// left at the target path that was not there before.
func Run(ctx context.Context, job Job) error {
	if job.Format == "" {
		job.Format = "raw"
	}
	drv, err := job.driver()
	if err != nil {
		return err
	}
	if err := job.checkCompression(); err != nil {
		return err
	}
	// Every file the input opens (extents, backing chain) is recorded: no
	// output file may be one of them.
	sources := &imagefile.FileSet{}
	sources.Add(job.Source)
	sources.Watch(&job.SourceOpen)
	if err := sources.Check(job.Target); err != nil {
		return err
	}
	src, remote, err := job.SourceImage, job.SourceImage != nil, error(nil)
	if !remote {
		src, remote, err = job.open(ctx, job.Source, job.SourceOpen)
	}
	if !remote && err == nil {
		src, err = formats.Open(ctx, job.Source, job.SourceOpen)
	}
	if err != nil {
		return imagefile.CouldNotOpen(job.Source, err)
	}
	if job.Partition > 0 {
		view, _, err := partition.Open(src, job.Partition, true)
		if err != nil {
			src.Close()
			return imagefile.CouldNotOpen(job.Source, err)
		}
		src = view
	}
	if job.SourceFilter != nil {
		filtered, err := job.SourceFilter(src)
		if err != nil {
			src.Close()
			return imagefile.CouldNotOpen(job.Source, err)
		}
		src = filtered
	}
	defer src.Close()
	// qemu's image locks: nobody writes the input meanwhile, and a running
	// qemu writing it makes this fail.
	locks := &imagefile.Locks{}
	defer locks.Release()
	if !job.ForceShare && !remote { // a remote export has no local file to lock
		if err := locks.Lock(job.Source, src, imagefile.LockSource); err != nil {
			return imagefile.CouldNotOpen(job.Source, err)
		}
	}
	if err := sources.Check(job.Target); err != nil {
		return err
	}
	if job.Backing != "" {
		job.Copy.TopLayerOnly = true
	}
	if job.Existing {
		return runExisting(ctx, job, src, sources, locks)
	}
	opts, err := job.createOptions(drv, src.Size())
	if err != nil {
		return err
	}
	if job.Target == "-" {
		return runStream(ctx, job, drv, opts, src)
	}
	return runAtomic(ctx, job, drv, opts, src, sources, locks)
}

// driver is the output's driver: Driver, else the registered Format.
func (job Job) driver() (*formats.Driver, error) {
	if job.Driver != nil {
		return job.Driver, nil
	}
	return formats.Lookup(job.Format)
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
	if job.Copy.Compress && (opts.String("encrypt.format") != "" || opts.Bool("encryption") || opts.IsSet("key-secret")) {
		return opts, fmt.Errorf("%w: Compression and encryption not supported at the same time", formats.ErrInvalidOption)
	}
	if p := opts.String("preallocation"); job.Copy.Compress && p != "" && p != "off" {
		return opts, fmt.Errorf("%w: compression and preallocation not supported at the same time", formats.ErrInvalidOption)
	}
	return opts, opts.Set("size", fmt.Sprint(size))
}

func runExisting(ctx context.Context, job Job, src formats.Image, sources *imagefile.FileSet, locks *imagefile.Locks) error {
	if job.CreateOptions != "" {
		return fmt.Errorf("%w: -o has no effect when skipping image creation", formats.ErrInvalidOption)
	}
	open := job.SourceOpen
	open.Format, open.Writable, open.Snapshot = job.Format, true, ""
	img, remote, err := job.open(ctx, job.Target, open)
	if !remote && err == nil {
		img, err = imagefile.OpenExisting(ctx, job.Target, open, job.Direct)
	}
	if err != nil {
		return err
	}
	// The target's own backing files were opened too: it may not write
	// into one of the input's files that way either.
	if err := sources.Check(job.Target); err != nil {
		img.Close()
		return err
	}
	if err := lockTarget(locks, job.Target, img, remote); err != nil {
		img.Close()
		return imagefile.CouldNotOpen(job.Target, err)
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
	if job.Sync && !remote {
		return imagefile.FsyncPath(job.Target)
	}
	return nil
}

func copyAndFlush(ctx context.Context, dst formats.Writable, src formats.Image, opts Options) error {
	if err := Copy(ctx, dst, src, opts); err != nil {
		return err
	}
	if err := finishSize(ctx, dst, src); err != nil {
		return err
	}
	return dst.Flush()
}

// StreamSizer is an input whose size is known only once it has been read
// to its end (a raw disk on a pipe): Size is then a provisional upper
// bound, and End the real size.
type StreamSizer interface {
	SizeKnown() bool
	// End reports the size once the stream has ended, without waiting.
	End() (int64, bool)
	// Wait waits for the stream's end: its size, or what went wrong in it
	// (truncation, a limit), also when every byte needed was read already.
	Wait() (int64, error)
}

// streamEnd is where a StreamSizer input has ended, if it has.
func streamEnd(src formats.Image) (int64, bool) {
	if s, ok := src.(StreamSizer); ok && !s.SizeKnown() {
		return s.End()
	}
	return 0, false
}

// provisional says src's size is a stream's provisional bound.
func provisional(src formats.Image) bool {
	s, ok := src.(StreamSizer)
	return ok && !s.SizeKnown()
}

// finishSize gives an output created at a stream's provisional size the
// size the stream turned out to have (finalSize): formats.SizeFinisher
// where the output has it, else a shrinking Resize (raw, qcow2, fixed VHD).
func finishSize(ctx context.Context, dst formats.Writable, src formats.Image) error {
	s, ok := src.(StreamSizer)
	if !ok {
		return nil
	}
	end, err := s.Wait()
	if err != nil {
		return fmt.Errorf("reading input: %w", err)
	}
	if s.SizeKnown() {
		return nil
	}
	end = finalSize(dst, end)
	if end == dst.Size() {
		return nil
	}
	if f, ok := dst.(formats.SizeFinisher); ok {
		return f.FinishSize(ctx, end)
	}
	r, ok := dst.(formats.Resizer)
	if !ok {
		return fmt.Errorf("%w: a %s output cannot take its size at the end of a stream (spool the input)", formats.ErrUnsupported, dst.Format())
	}
	return r.Resize(ctx, end, true)
}

// finalSize is the size an output takes from a stream of end bytes:
// exactly end for raw, rounded up to whole sectors for the formats that
// count in them (as qemu-img sizes an image made from a raw file).
func finalSize(dst formats.Image, end int64) int64 {
	if dst.Format() == "raw" {
		return end
	}
	return (end + formats.SectorBytes - 1) / formats.SectorBytes * formats.SectorBytes
}

// CanFinishSize says whether an output of this format (and -o text) can be
// created before its input's size is known, at a provisional size, and
// take the real size at the end (finishSize), without writing or
// allocating anything for the provisional size: raw and qcow2 (without
// preallocation), VHD (fixed and dynamic), VDI (not static), dynamic
// VHDX, and monolithicSparse and streamOptimized VMDK. A stream output
// (stdout) cannot go back to its header: there only raw can.
func CanFinishSize(format, createOptions string, toStream bool) bool {
	drv, err := formats.Lookup(format)
	if err != nil {
		return false
	}
	opts, err := formats.ParseOptions(drv.CreateOptions, createOptions)
	if err != nil || opts.String("backing_file") != "" {
		return false
	}
	if p := opts.String("preallocation"); p != "" && p != "off" {
		return false
	}
	if toStream {
		return drv.Name == "raw"
	}
	switch drv.Name {
	case "raw", "qcow2":
		return true
	case "vpc":
		return !opts.Bool("azure") // Azure's whole MiB is known only at the end
	case "vdi":
		return !opts.Bool("static")
	case "vhdx":
		return opts.String("subformat") != "fixed"
	case "vmdk":
		sub := opts.String("subformat")
		return sub == "" || sub == "monolithicSparse" || sub == "streamOptimized"
	}
	return false
}

func runStream(ctx context.Context, job Job, drv *formats.Driver, opts formats.Options, src formats.Image) error {
	if drv.Create == nil {
		return fmt.Errorf("%w: format %s cannot be created", formats.ErrUnsupported, drv.Name)
	}
	// Nothing reaches the writer until the new image says it is written
	// in order: a format that is not fails with the writer untouched.
	gate := &gateWriter{w: job.Stdout}
	var out formats.File = fileio.NewStream(gate, "-")
	if job.Compression != compressed.None {
		c, err := imagefile.NewCompressingFile(gate, nil, job.Compression, "-")
		if err != nil {
			return err
		}
		out = c
	}
	dst, err := drv.Create(ctx, formats.CreateRequest{File: out, Name: "-", Size: src.Size(), Options: opts,
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
	if err := gate.open(); err != nil {
		dst.Close()
		return err
	}
	job.Copy.TargetIsZero = true
	if err := copyAndFlush(ctx, dst, src, job.Copy); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return out.Close() // a compressed stream's end; nothing for a plain one
}

func runAtomic(ctx context.Context, job Job, drv *formats.Driver, opts formats.Options, src formats.Image, sources *imagefile.FileSet, locks *imagefile.Locks) (err error) {
	dst, out, err := imagefile.Create(ctx, job.Target, drv, src.Size(), opts, job.SourceOpen,
		imagefile.Options{TargetIsZero: job.Copy.TargetIsZero, Sources: sources, Warn: job.Warn, Direct: job.Direct, Locks: locks,
			SplitBytes: job.SplitBytes, Compression: job.Compression, Provisional: provisional(src)})
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			out.Abort()
		}
	}()
	job.Copy.TargetIsZero = out.TargetIsZero() && readsZeroWhenNew(dst)
	if job.Backing != "" {
		view, closeBase, err := differenceFromBacking(ctx, job, dst, src)
		if err != nil {
			dst.Close()
			return err
		}
		defer closeBase()
		src = view
		if job.OverlayFilter != nil {
			src = job.OverlayFilter(src)
		}
	}
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

// differenceFromBacking is src seen against the new overlay's backing
// file (-B): only what differs from it is copied (chain.Difference). The
// backing is the one the overlay opened, or opened here when the overlay
// does not show it; closeBase closes what was opened here.
func differenceFromBacking(ctx context.Context, job Job, dst formats.Writable, src formats.Image) (formats.Image, func(), error) {
	grain := int64(chain.DefaultGrainBytes)
	if cs, ok := dst.(formats.ClusterSizer); ok && cs.ClusterSize() >= formats.SectorBytes && cs.ClusterSize() < grain {
		grain = cs.ClusterSize()
	}
	if b, ok := dst.(formats.Backer); ok && b.Backing() != nil {
		return chain.NewDifference(src, b.Backing(), b.BackingPath(), grain), func() {}, nil
	}
	open := job.SourceOpen
	open.Writable, open.Snapshot = false, ""
	base, err := formats.OpenReference(ctx, job.Target, job.Backing, job.BackingFormat, open)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the backing file %q to compare with: %w", job.Backing, err)
	}
	path, _ := open.References().Resolve(job.Target, job.Backing)
	return chain.NewDifference(src, base, path, grain), func() { base.Close() }, nil
}

// lockTarget takes the writer's locks of an existing local target (a
// remote one has no local file to lock).
func lockTarget(locks *imagefile.Locks, target string, img formats.Image, remote bool) error {
	if remote {
		return nil
	}
	return locks.Lock(target, img, imagefile.LockWrite)
}

// gateWriter holds what is written (up to gateBytes) until open: the
// headers a driver writes at Create never reach the output when the
// driver then turns out not to write in order.
type gateWriter struct {
	w      io.Writer
	held   []byte
	opened bool
}

const gateBytes = 8 << 20

func (g *gateWriter) Write(p []byte) (int, error) {
	if !g.opened && len(g.held)+len(p) <= gateBytes {
		g.held = append(g.held, p...)
		return len(p), nil
	}
	if err := g.open(); err != nil {
		return 0, err
	}
	return g.w.Write(p)
}

// open writes what was held and lets later writes through.
func (g *gateWriter) open() error {
	if g.opened {
		return nil
	}
	g.opened = true
	_, err := g.w.Write(g.held)
	g.held = nil
	return err
}

// readsZeroWhenNew reports whether the unwritten ranges of img, a newly
// created image, read as zeros (a raw LUKS volume's do not: zero bytes on
// disk decrypt to noise).
func readsZeroWhenNew(img formats.Image) bool {
	if z, ok := img.(formats.ZeroIniter); ok {
		return z.ZeroInit()
	}
	return true
}
