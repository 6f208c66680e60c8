package formats

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vdiskio/vdisk/internal/fileid"
)

// ProbeInput is what a driver's probe sees: the start and the end of the file.
type ProbeInput struct {
	Header []byte // the first ProbeHeaderBytes (fewer if the file is shorter)
	Tail   []byte // the last 512 bytes (fewer if the file is shorter)
	Size   int64  // file size in bytes
}

// ProbeHeaderBytes is how much of a file's start probing reads (enough for
// the ISO 9660 volume descriptor at 32769).
const ProbeHeaderBytes = 64 << 10

// Confidence levels returned by probes.
const (
	ProbeNone    = 0   // not this format
	ProbeRaw     = 1   // anything is a raw disk
	ProbeWeak    = 50  // a plausible but unchecked signature
	ProbeCertain = 100 // magic and a consistent header
)

// OpenOptions control how an image is opened. The zero value opens read-only
// with the format probed, the safe reference policy and default limits.
type OpenOptions struct {
	Format      string // explicit format name or alias; "" probes
	ForceFormat bool   // open as Format even when the content says otherwise
	Writable    bool   // open for writing (default read-only)
	// Resolver opens the files the image names. nil means DirResolver{}
	// (the safe policy over OS files) for Open, an FSResolver over the same
	// FS for OpenFS, and no references at all for OpenReaderAt.
	Resolver  Resolver
	Limits    Limits
	NoBacking bool // do not open backing files (info without the chain)
	// Snapshot selects an internal snapshot to read instead of the active
	// layer: "snapshot.name=N", "snapshot.id=I" or a bare name/id (qemu -l).
	Snapshot string
	// Parents supplies parent images that cannot be found by name (VDI
	// differencing images link to their parent by UUID only).
	Parents []string
	// OpenFile, when set, opens the path given to Open instead of
	// OpenOSFile (the CLI's reads split sets: source/split.OpenPath).
	OpenFile func(path string, writable bool) (File, error)
	// Budget bounds the metadata memory of the image and its whole chain;
	// nil gives each top-level open a new Budget of Limits.MaxMetadataBytes.
	// Layers and extents opened for the image share it.
	Budget *Budget
	// Key is the passphrase of an encrypted image (a LUKS passphrase, or
	// the password of a legacy AES qcow2), qemu's encrypt.key-secret. It
	// unlocks this image only: backing images are opened without it. The
	// library never takes a key from anywhere else (no environment).
	Key []byte
	// Secrets are qemu's secret objects by id (--object secret,id=ID,...):
	// the create options encrypt.key-secret=ID (qcow2) and key-secret=ID
	// (luks) name the passphrase of a new image here.
	Secrets map[string][]byte
	// MetadataOnly opens an image only to describe it (info): an encrypted
	// image opens without its key and its reads fail with ErrKeyRequired.
	MetadataOnly bool
	depth        int
	layers       []chainLayer // the chain above and including the image being opened
	chain        *chainState  // shared by the whole open
}

// Depth is how many layers above this image are open (0 for the top image).
func (o OpenOptions) Depth() int { return o.depth }

// References is the Resolver in effect: o.Resolver, or DirResolver{} when
// nil. Drivers open every reference through it.
func (o OpenOptions) References() Resolver {
	if o.Resolver == nil {
		return &DirResolver{}
	}
	return o.Resolver
}

// CreateRequest is what a driver's Create receives.
type CreateRequest struct {
	File    File    // the main output file, empty and writable
	Name    string  // the path the image will have when complete
	Size    int64   // virtual size in bytes
	Options Options // parsed create options (backing_file etc. included)
	// Siblings creates an extra output file (a VMDK extent) named relative to
	// Name's directory; it is committed or removed together with File.
	Siblings func(name string) (File, error)
	// Open is how to open a backing image named in Options.
	Open OpenOptions
	// Provisional says Size is an upper bound, not the size: the image is
	// written below its real size, which it takes at the end through
	// SizeFinisher (a raw stream's, known at its end). A driver may lay
	// out its tables for growth rather than for Size (a sparse VMDK
	// allocates its grain tables as they fill).
	Provisional bool
}

// MeasureRequest asks a driver how big an image would be.
type MeasureRequest struct {
	Size    int64   // virtual size
	Source  Image   // the image to convert, or nil for --size
	Options Options // target create options
}

// Measurement is `measure`'s answer, in bytes.
type Measurement struct {
	Required       int64
	FullyAllocated int64
	Bitmaps        int64 // -1 when the target has no bitmaps
}

// Driver is one image format.
type Driver struct {
	Name    string
	Aliases []string
	// Probe returns a confidence (ProbeNone..ProbeCertain) that in is this format.
	Probe func(in ProbeInput) int
	// Open opens f as this format. The image owns f and closes it. ctx
	// bounds the opening (reading metadata, opening backing files), not the
	// image's later use.
	Open func(ctx context.Context, f File, opts OpenOptions) (Image, error)
	// Create makes a new image in req.File; nil for read-only formats. ctx
	// bounds the creation (preallocation writes).
	Create func(ctx context.Context, req CreateRequest) (Writable, error)
	// CreateOptions are the `-o` keys Create understands (besides "size").
	CreateOptions []OptionSpec
	// Measure estimates the size of a new image; nil when not supported.
	Measure func(ctx context.Context, req MeasureRequest) (Measurement, error)
	// RawCompatible marks formats whose raw view is harmless (no references,
	// same bytes, like ISO 9660): opening them with an explicit "raw" is not
	// a mismatch.
	RawCompatible bool
}

type registry struct {
	mu      sync.RWMutex
	drivers []*Driver
}

var drivers registry

// Register adds a driver; drivers call it from init. It panics on a duplicate
// name, which is a programming error. Create and Measure are called with
// req.Options bound to the driver's CreateOptions, so the zero
// formats.Options{} means every option's default.
func Register(d *Driver) {
	drivers.mu.Lock()
	defer drivers.mu.Unlock()
	for _, name := range append([]string{d.Name}, d.Aliases...) {
		for _, old := range drivers.drivers {
			if old.Name == name || slices.Contains(old.Aliases, name) {
				panic("formats: driver " + name + " registered twice")
			}
		}
	}
	if create := d.Create; create != nil {
		// The zero formats.Options{} (a library caller's "defaults") gets the
		// driver's option table, so every option reads as its default.
		specs := d.CreateOptions
		d.Create = func(ctx context.Context, req CreateRequest) (Writable, error) {
			req.Options = req.Options.bind(specs)
			return create(ctx, req)
		}
	}
	if measure := d.Measure; measure != nil {
		specs := d.CreateOptions
		d.Measure = func(ctx context.Context, req MeasureRequest) (Measurement, error) {
			req.Options = req.Options.bind(specs)
			return measure(ctx, req)
		}
	}
	drivers.drivers = append(drivers.drivers, d)
}

// Lookup returns the driver named name (or one of its aliases).
func Lookup(name string) (*Driver, error) {
	drivers.mu.RLock()
	defer drivers.mu.RUnlock()
	for _, d := range drivers.drivers {
		if d.Name == name || slices.Contains(d.Aliases, name) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownFormat, name, strings.Join(names(), " "))
}

// Drivers lists the registered drivers sorted by name.
func Drivers() []*Driver {
	drivers.mu.RLock()
	defer drivers.mu.RUnlock()
	ds := slices.Clone(drivers.drivers)
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
	return ds
}

func names() []string {
	var ns []string
	for _, d := range drivers.drivers {
		ns = append(ns, d.Name)
		ns = append(ns, d.Aliases...)
	}
	sort.Strings(ns)
	return ns
}

// readProbeInput reads the header and tail of f for probing.
func readProbeInput(f File) (ProbeInput, error) {
	size, err := f.Size()
	if err != nil {
		return ProbeInput{}, err
	}
	in := ProbeInput{Size: size}
	in.Header = make([]byte, min(size, ProbeHeaderBytes))
	if _, err := f.ReadAt(in.Header, 0); err != nil && err != io.EOF {
		return ProbeInput{}, fmt.Errorf("%s: reading header: %w", f.Name(), err)
	}
	tailLen := min(size, 512)
	in.Tail = make([]byte, tailLen)
	if _, err := f.ReadAt(in.Tail, size-tailLen); err != nil && err != io.EOF {
		return ProbeInput{}, fmt.Errorf("%s: reading tail: %w", f.Name(), err)
	}
	return in, nil
}

// Detect returns the driver whose probe is most confident about f. Two
// drivers equally and strongly confident is an ErrFormatMismatch (an image
// crafted to look like two formats).
func Detect(f File) (*Driver, error) {
	in, err := readProbeInput(f)
	if err != nil {
		return nil, err
	}
	return detect(f.Name(), in, Drivers())
}

func detect(name string, in ProbeInput, ds []*Driver) (*Driver, error) {
	bestScore, ties := 0, []*Driver{}
	for _, d := range ds {
		if d.Probe == nil {
			continue
		}
		score := d.Probe(in)
		switch {
		case score > bestScore:
			bestScore, ties = score, []*Driver{d}
		case score == bestScore && score >= ProbeWeak:
			ties = append(ties, d)
		}
	}
	if len(ties) == 0 {
		return nil, fmt.Errorf("%s: %w: no driver recognises the content", name, ErrUnknownFormat)
	}
	// A disk image holding an ISO 9660 file system matches both; the
	// container is the format, the file system its content.
	if containers := slices.DeleteFunc(slices.Clone(ties), func(d *Driver) bool { return d.RawCompatible }); len(containers) > 0 {
		ties = containers
	}
	if len(ties) > 1 {
		var names []string
		for _, d := range ties {
			names = append(names, d.Name)
		}
		return nil, &Error{File: name, Offset: -1, Kind: ErrFormatMismatch,
			Msg: "content matches several formats: " + strings.Join(names, ", ")}
	}
	return ties[0], nil
}

// Open opens the image at path (a regular file or, read-only, a block
// device). An empty file is a raw image of 0 bytes, as qemu opens it.
func Open(ctx context.Context, path string, opts OpenOptions) (Image, error) {
	open := OpenOSFile
	if opts.OpenFile != nil {
		open = opts.OpenFile
	}
	f, err := open(path, opts.Writable)
	if err != nil {
		return nil, err
	}
	return openOrClose(ctx, f, opts)
}

// openOrClose opens the image stored in f, closing f when that fails.
func openOrClose(ctx context.Context, f File, opts OpenOptions) (Image, error) {
	img, err := OpenFile(ctx, f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return img, nil
}

// OpenFile opens the image stored in f, any File implementation. On
// success the image owns f; on error the caller still does, and the Image
// is nil.
func OpenFile(ctx context.Context, f File, opts OpenOptions) (Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := chooseDriver(f, opts)
	if err != nil {
		return nil, err
	}
	if err := checkDepth(f.Name(), opts); err != nil {
		return nil, err
	}
	opts.EnsureBudget()
	if opts.chain == nil {
		opts.chain = &chainState{}
	}
	if len(opts.layers) == 0 {
		opts.layers = []chainLayer{{name: f.Name(), id: fileid.Of(f)}}
	}
	img, err := d.Open(ctx, f, opts)
	if err != nil {
		return nil, err // never a typed nil pointer in the interface
	}
	return img, nil
}

// OpenReaderAt opens the image held in the first size bytes of r, read-only
// (an object in a store, a memory buffer, a section of a file). name is
// used in messages. The image names no other file unless opts.Resolver
// says how to open it. Close closes r when it is an io.Closer.
func OpenReaderAt(ctx context.Context, r io.ReaderAt, size int64, name string, opts OpenOptions) (Image, error) {
	if opts.Writable {
		return nil, fmt.Errorf("%s: %w: an io.ReaderAt is opened read-only", name, ErrReadOnly)
	}
	if opts.Resolver == nil {
		opts.Resolver = noResolver{}
	}
	return OpenFile(ctx, ReaderAtFile(r, size, name), opts)
}

// OpenFS opens the image at name in fsys, read-only. References inside it
// (backing files, extents) are opened in the same fsys through an
// FSResolver with the safe policy unless opts.Resolver is set.
func OpenFS(ctx context.Context, fsys fs.FS, name string, opts OpenOptions) (Image, error) {
	if opts.Writable {
		return nil, fmt.Errorf("%s: %w: files of an fs.FS are read-only", name, ErrReadOnly)
	}
	if opts.Resolver == nil {
		opts.Resolver = FSResolver{FS: fsys}
	}
	f, err := OpenFSFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return openOrClose(ctx, f, opts)
}

func chooseDriver(f File, opts OpenOptions) (*Driver, error) {
	var want *Driver
	if opts.Format != "" {
		d, err := Lookup(opts.Format)
		if err != nil {
			return nil, err
		}
		if opts.ForceFormat {
			return d, nil
		}
		want = d
	}
	got, err := Detect(f)
	if err != nil {
		return nil, err
	}
	if want == nil || want == got {
		return got, nil
	}
	if want.Name == "raw" && got.RawCompatible {
		return want, nil
	}
	if got.Name == "raw" {
		// The content has no signature the probes trust; the explicit format's
		// own Open validates its structures.
		return want, nil
	}
	return nil, &Error{File: f.Name(), Offset: -1, Kind: ErrFormatMismatch,
		Msg: fmt.Sprintf("format %q was requested but the content is %s", want.Name, got.Name)}
}

func checkDepth(name string, opts OpenOptions) error {
	if limit := opts.Limits.WithDefaults().MaxChainDepth; opts.depth > limit {
		return Limitf(name, "backing chain", -1, "more than %d layers", limit)
	}
	return nil
}

// OpenReference opens an image named by the image at from (a backing file or
// parent), through the resolver and with the chain depth increased. format
// may be "" to probe. The child is opened read-only, shares opts' metadata
// Budget, and is refused before its tables load when its file is already in
// the chain (a loop) or the chain is too deep. An error from any layer below
// is returned as the deepest layer made it (one line, however deep).
func OpenReference(ctx context.Context, from, ref, format string, opts OpenOptions) (Image, error) {
	child := childOptions(opts, format)
	if err := checkDepth(from, child); err != nil {
		return nil, err
	}
	f, err := opts.References().Open(from, ref, false)
	if err != nil {
		return nil, err
	}
	return openLayer(ctx, from, ref, f, child)
}
