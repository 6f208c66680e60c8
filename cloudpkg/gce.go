package cloudpkg

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/scratch"
	"github.com/vdiskio/vdisk/source/compressed"
)

// GCEName is the output format name of a Google Compute Engine image
// package (`-O gce`): disk.raw in a gzip-compressed oldgnu sparse tar.
const GCEName = "gce"

// gceMember is the member name Compute Engine's image import requires.
const gceMember = "disk.raw"

// GCEDriver is the (unregistered) driver of `-O gce`: Create returns a raw
// writer into a sparse temporary file; Close writes the tar.gz.
func GCEDriver() *formats.Driver {
	return &formats.Driver{Name: GCEName, Create: createGCE}
}

func createGCE(ctx context.Context, req formats.CreateRequest) (formats.Writable, error) {
	if req.Size%formats.SectorBytes != 0 {
		return nil, fmt.Errorf("%w: a GCE disk is a whole number of 512-byte sectors (size %d)", formats.ErrInvalidOption, req.Size)
	}
	disk, err := createDisk(ctx, req, member{format: "raw", name: gceMember, temp: ".vdisk-gce-*", what: "disk.raw"})
	if err != nil {
		return nil, err
	}
	return &gceWriter{diskImage: disk, size: req.Size}, nil
}

// gceWriter is the raw disk being written; Close packages it.
type gceWriter struct {
	*diskImage
	size int64
}

// Format names the output format.
func (w *gceWriter) Format() string { return GCEName }

// ConcurrentWrites: the raw temporary takes positional writes from every
// worker.
func (w *gceWriter) ConcurrentWrites() bool { return true }

// Close finishes disk.raw and writes the tar.gz.
func (w *gceWriter) Close() error { return w.finish(w.pack) }

// pack writes the tar.gz of the finished disk.raw.
func (w *gceWriter) pack() error {
	frags, err := dataFragments(w.tmp, w.size)
	if err != nil {
		return fmt.Errorf("%s: mapping disk.raw's holes: %w", w.name, err)
	}
	zw, err := compressed.NewWriter(&offsetWriter{f: w.out}, compressed.Gzip, compressed.WriterOptions{})
	if err != nil {
		return err
	}
	if err := writeSparseTar(zw, w.tmp, w.size, frags, time.Now()); err != nil {
		zw.Close()
		return fmt.Errorf("%s: writing the tar: %w", w.name, err)
	}
	return zw.Close()
}

// dataFragments are the data runs of f, on 512-byte boundaries (holes of
// the file system are whole blocks; the edges are rounded outwards).
func dataFragments(f *scratch.File, size int64) ([]fragment, error) {
	runs, err := f.Runs(0, size)
	if err != nil {
		return nil, err
	}
	var frags []fragment
	for _, r := range runs {
		if r.Hole || r.Length == 0 {
			continue
		}
		start := r.Offset / blockBytes * blockBytes
		end := min((r.Offset+r.Length+blockBytes-1)/blockBytes*blockBytes, size)
		if n := len(frags); n > 0 && frags[n-1].Offset+frags[n-1].Length >= start {
			frags[n-1].Length = end - frags[n-1].Offset
			continue
		}
		frags = append(frags, fragment{Offset: start, Length: end - start})
	}
	return frags, nil
}

// writeSparseTar writes disk.raw as an oldgnu sparse member ('S': the map
// in the header and its extension blocks, then only the data runs) and
// the end of the archive. A map that ends before the file does gets GNU
// tar's closing empty fragment at the file's size.
func writeSparseTar(w io.Writer, src io.ReaderAt, size int64, frags []fragment, now time.Time) error {
	var stored int64
	for _, f := range frags {
		stored += f.Length
	}
	mapped := append([]fragment(nil), frags...)
	if n := len(mapped); n == 0 || mapped[n-1].Offset+mapped[n-1].Length < size {
		mapped = append(mapped, fragment{Offset: size, Length: 0})
	}
	hdr, err := tarHeader{Name: gceMember, Size: stored, ModTime: now, GNU: true, Sparse: mapped, RealSize: size}.encode()
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, f := range frags {
		if _, err := io.CopyBuffer(w, io.NewSectionReader(src, f.Offset, f.Length), buf); err != nil {
			return err
		}
	}
	if err := padding(w, stored); err != nil {
		return err
	}
	return endOfArchive(w)
}
