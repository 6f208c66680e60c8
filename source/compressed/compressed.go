package compressed

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/scratch"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Kind names a compression ("" for none).
type Kind string

// The compressions recognised.
const (
	None  Kind = ""
	Xz    Kind = "xz"
	Zstd  Kind = "zstd"
	Gzip  Kind = "gzip"
	Bzip2 Kind = "bzip2"
)

// MagicBytes is how many leading bytes Detect needs at most.
const MagicBytes = 6

// DefaultLimitBytes bounds a spool when Spooler.LimitBytes is zero: 1 TiB
// of decompressed stream.
const DefaultLimitBytes int64 = 1 << 40

// StdinName is the source name that means standard input.
const StdinName = "-"

// Detect names the compression whose magic starts head, or None.
func Detect(head []byte) Kind {
	switch {
	case bytes.HasPrefix(head, []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}):
		return Xz
	case bytes.HasPrefix(head, []byte{0x28, 0xB5, 0x2F, 0xFD}):
		return Zstd
	case bytes.HasPrefix(head, []byte{0x1F, 0x8B}):
		return Gzip
	case len(head) >= 4 && string(head[:3]) == "BZh" && head[3] >= '1' && head[3] <= '9':
		return Bzip2
	}
	return None
}

// Reader returns a reader of the decompressed stream r; close it when done.
func Reader(kind Kind, r io.Reader) (io.ReadCloser, error) {
	switch kind {
	case Xz:
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(zr), nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(1<<31))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case Gzip:
		return gzip.NewReader(r)
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("%w: compression %q", formats.ErrUnsupported, kind)
}

// Spooler opens sources that may be compressed or stdin, decompressing
// them into a sparse temporary file.
type Spooler struct {
	// Ctx stops a decompression in progress; nil means context.Background.
	Ctx context.Context
	// Dir is where spools are created; "" means the directory of the
	// input (the OS temporary directory for stdin).
	Dir string
	// LimitBytes bounds the decompressed size; 0 means DefaultLimitBytes.
	LimitBytes int64
	// Open opens a path that is not stdin; nil means formats.OpenOSFile.
	Open func(path string, writable bool) (formats.File, error)
	// Stdin is read for StdinName; nil means os.Stdin.
	Stdin io.Reader
	// OnSpool, when set, hears of each source spooled or read in place and
	// its compression (None for plain stdin): `info` names the compression
	// so.
	OnSpool func(name string, kind Kind)
	// MaxBlockBytes is the largest decompressed block a seekable file (xz
	// with a block index, zstd frames) may have to be read in place
	// without a spool; 0 means DefaultMaxBlockBytes.
	MaxBlockBytes int64
	// CacheBytes bounds the decoded blocks an in-place file keeps; 0 means
	// DefaultCacheBytes.
	CacheBytes int64
	// NoInPlace spools every compressed file, seekable or not.
	NoInPlace bool
}

// File is a decompressed spool: a formats.File named as its source.
type File struct {
	formats.File
	name string
	kind Kind
}

// Name is the source's name (references resolve beside it).
func (f *File) Name() string { return f.name }

// Runs reports the spool's holes (the zero blocks of the stream), so that
// a raw image inside converts sparsely.
func (f *File) Runs(off, length int64) ([]formats.FileRun, error) { return runs(f.File, off, length) }

// Compression names the compression of the source (None for plain stdin).
func (f *File) Compression() Kind { return f.kind }

// CompressionOf names the compression f was decompressed from, or None.
func CompressionOf(f formats.File) Kind {
	if s, ok := f.(interface{ Compression() Kind }); ok {
		return s.Compression()
	}
	return None
}

// OpenPath opens path: stdin and compressed files are spooled, anything
// else is opened as s.Open does. It suits formats.OpenOptions.OpenFile.
func (s *Spooler) OpenPath(path string, writable bool) (formats.File, error) {
	if path == StdinName {
		if writable {
			return nil, fmt.Errorf("%s: %w: stdin is read-only", path, formats.ErrReadOnly)
		}
		in := s.Stdin
		if in == nil {
			in = os.Stdin
		}
		br := bufio.NewReaderSize(in, 1<<16)
		head, _ := br.Peek(MagicBytes)
		return s.spool(path, Detect(head), br)
	}
	open := s.Open
	if open == nil {
		open = formats.OpenOSFile
	}
	f, err := open(path, writable)
	if err != nil {
		return nil, err
	}
	name := f.Name() // a URL's, redacted: what messages show
	if st, ok := f.(StreamSource); ok {
		defer f.Close()
		body, _ := st.Stream()
		defer body.Close()
		br := bufio.NewReaderSize(body, 1<<16)
		head, _ := br.Peek(MagicBytes)
		kind := Detect(head)
		file, err := s.spool(name, kind, br)
		if err == nil && s.OnSpool != nil && path != name {
			s.OnSpool(path, kind)
		}
		return file, err
	}
	head := make([]byte, MagicBytes)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	kind := Detect(head[:n])
	if kind == None {
		return f, nil
	}
	if writable {
		f.Close()
		return nil, fmt.Errorf("%s: %w: a %s-compressed image is read-only (convert it to a new image)", name, formats.ErrReadOnly, kind)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !s.NoInPlace {
		in, err := s.openInPlace(f, name, kind, size, s.limit())
		if err == nil {
			if s.OnSpool != nil {
				s.OnSpool(path, kind)
			}
			return in, nil
		}
		if !errors.Is(err, errNotIndexable) {
			f.Close()
			return nil, err
		}
	}
	defer f.Close()
	file, err := s.spool(name, kind, bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20))
	if err == nil && s.OnSpool != nil && path != name {
		s.OnSpool(path, kind)
	}
	return file, err
}

// StreamSource is a File that can only be read once, in order (an HTTP
// server that ignores Range requests): OpenPath spools what Stream
// returns (its size, -1 when unknown, is the stream's to check).
type StreamSource interface {
	Stream() (io.ReadCloser, int64)
}

// limit is the most a source may decompress to.
func (s *Spooler) limit() int64 {
	if s.LimitBytes > 0 {
		return s.LimitBytes
	}
	return DefaultLimitBytes
}

// spool decompresses r (kind None: copies it) into a new spool.
func (s *Spooler) spool(name string, kind Kind, r io.Reader) (formats.File, error) {
	ctx := s.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	tmp, err := s.create(name)
	if err != nil {
		return nil, err
	}
	limit := s.limit()
	// The copy runs apart so that a cancellation ends the open even while
	// a read of stdin blocks; once tmp is closed the copy fails at its next
	// write and ends.
	done := make(chan error, 1)
	go func() { done <- decompress(ctx, tmp, r, limit, s.LimitBytes > 0, name, kind) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		tmp.Close()
		return nil, err
	}
	if s.OnSpool != nil {
		s.OnSpool(name, kind)
	}
	return &File{File: tmp, name: name, kind: kind}, nil
}

// decompress copies the stream r, decompressed as kind says, into dst.
// Unless the limit is explicit it is tightened to what the image inside
// declares (declaredSize).
func decompress(ctx context.Context, dst formats.File, r io.Reader, limit int64, explicit bool, name string, kind Kind) error {
	why := fmt.Sprintf("the spool limit of %d bytes (raise it with --spool-limit)", limit)
	src := io.NopCloser(r)
	if kind != None {
		zr, err := Reader(kind, r)
		if err != nil {
			return fmt.Errorf("%s: %s stream at offset 0: %w: %v", name, kind, formats.ErrCorrupt, err)
		}
		src = zr
	}
	defer src.Close()
	if !explicit {
		br := bufio.NewReaderSize(src, 64<<10)
		head, _ := br.Peek(declaredHeadBytes)
		if virtual, format, ok := declaredSize(head); ok && virtual+declaredSlackBytes(virtual) < limit {
			limit = virtual + declaredSlackBytes(virtual)
			why = fmt.Sprintf("its %s image declares %d bytes; with room for metadata the limit is %d bytes (raise it with --spool-limit)", format, virtual, limit)
		}
		return copySparse(ctx, dst, br, limit, name, kind, why)
	}
	return copySparse(ctx, dst, src, limit, name, kind, why)
}

func runs(f formats.File, off, length int64) ([]formats.FileRun, error) {
	if h, ok := f.(formats.HoleFinder); ok {
		return h.Runs(off, length)
	}
	return []formats.FileRun{{Offset: off, Length: length}}, nil
}

// create makes the spool file for the source name.
func (s *Spooler) create(name string) (*scratch.File, error) {
	dir := s.Dir
	if dir == "" {
		dir = filepath.Dir(name)
		if name == StdinName || strings.Contains(name, "://") {
			dir = os.TempDir() // stdin and URLs have no directory here
		}
	}
	f, err := scratch.Create(dir, ".vdisk-spool-*")
	if err != nil {
		return nil, fmt.Errorf("%s: creating the decompression spool: %w", name, err)
	}
	return f, nil
}

// blockBytes is the unit of the sparse copy's reads.
const blockBytes = 64 << 10

// copySparse copies src into dst, leaving all-zero blocks as holes, and
// fails once more than limit bytes come out.
func copySparse(ctx context.Context, dst formats.File, src io.Reader, limit int64, name string, kind Kind, why string) error {
	buf := make([]byte, blockBytes)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := readBlock(src, buf)
		if n > 0 {
			if off+int64(n) > limit {
				return formats.Limitf(name, streamName(kind)+" stream", off, "decompresses past %s", why)
			}
			if werr := writeNonZero(dst, buf[:n], off); werr != nil {
				return fmt.Errorf("%s: writing the decompression spool at offset %d: %w", name, off, werr)
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %s stream: decompressed offset %d: %w: %v", name, streamName(kind), off, formats.ErrCorrupt, err)
		}
	}
	if err := dst.Truncate(off); err != nil {
		return fmt.Errorf("%s: sizing the decompression spool to %d bytes: %w", name, off, err)
	}
	return nil
}

// holeBytes is the granularity of the spool's holes: a file system's
// block, as the holes of a sparse raw file made by qemu-img or cp.
const holeBytes = 4 << 10

// writeNonZero writes the runs of b that are not all-zero holeBytes units
// at off, leaving the zero units as holes.
func writeNonZero(dst formats.File, b []byte, off int64) error {
	start := -1 // start of the pending data run in b
	for i := 0; i < len(b); i += holeBytes {
		end := min(i+holeBytes, len(b))
		if zero.Is(b[i:end]) {
			if start >= 0 {
				if _, err := dst.WriteAt(b[start:i], off+int64(start)); err != nil {
					return err
				}
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		_, err := dst.WriteAt(b[start:], off+int64(start))
		return err
	}
	return nil
}

// readBlock fills buf as io.ReadFull does, but reports only the stream's
// own errors: io.EOF at its clean end, io.ErrUnexpectedEOF only when the
// decompressor says the stream is truncated.
func readBlock(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			if err == io.EOF && n == len(buf) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

func streamName(kind Kind) string {
	if kind == None {
		return "input"
	}
	return string(kind)
}
