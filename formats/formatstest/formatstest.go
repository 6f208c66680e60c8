// Package formatstest checks that a format driver keeps the formats
// contract, in the spirit of testing/fstest: one suite every driver and
// subformat runs.
//
// Test creates an image with the driver (the zero formats.Options{} when
// Case.Options is empty, so the zero value must mean the defaults), writes
// a pattern with WriteAt and Closes it without Flush, then reopens it and
// checks:
//
//   - the content equals the reference, read by 16 goroutines at once at
//     random offsets (ReadAt is safe for concurrent use);
//   - Extents cover the disk in order, every written byte lies in a Data
//     extent and Zero and Unallocated ranges read as zeros;
//   - reads at and past the end return io.EOF with the bytes that exist, a
//     negative offset is an error;
//   - a failed Open (an empty file, a truncated image, a size over the
//     limit) returns a nil Image interface and an error matching one of the
//     formats sentinels with errors.Is; a write to an image opened
//     read-only matches ErrReadOnly; a failed Create returns a nil interface;
//   - with Case.Backing, readers running while a child image (backing_file)
//     is written see the parent's bytes or the new ones, never zeros from an
//     allocation published before its data.
//
// Case.Judge lets the real tool (qemu-img compare, a libyal reader) judge
// every image the suite wrote against the reference raw file.
package formatstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// Case is one driver and subformat.
type Case struct {
	Format string // driver name
	// Options is the -o text for Create; "" creates with formats.Options{}.
	Options string
	// Size is the virtual size asked for; 0 means 3 MiB + 4 KiB. The driver
	// may round it up (VHD geometry); the image's Size is the truth.
	Size int64
	// Backing also tests a child image (backing_file=) over a parent of the
	// same format and options.
	Backing bool
	// Judge, when set, is called with each image written (its format and
	// path) and a raw file of the content it must hold.
	Judge func(t *testing.T, path, rawPath string)
	// Skip names checks (subtest names: "ReadDuringChildWrite", ...) to
	// skip, with the reason: a known defect whose fix has not landed.
	Skip map[string]string
}

func (c Case) size() int64 {
	if c.Size > 0 {
		return c.Size
	}
	return 3<<20 + 4096
}

// writes are the ranges the suite writes, in increasing offset order (so
// sequential formats take them too): sector-aligned, unaligned, across a
// 64 KiB boundary, and the last sector.
func writes(size int64) [][2]int64 {
	return [][2]int64{{0, 512}, {4096 + 7, 3000}, {65536 - 100, 300}, {1<<20 + 13, 70000}, {2<<20 + 4096, 65536}, {size - 512, 512}}
}

// pattern fills p with nonzero bytes that depend on the offset and seed.
func pattern(p []byte, off int64, seed byte) {
	for i := range p {
		p[i] = byte((off+int64(i))*7/512+int64(seed))%251 + 1
	}
}

// Test runs the suite on c.
func Test(t *testing.T, c Case) {
	t.Helper()
	drv, err := formats.Lookup(c.Format)
	if err != nil {
		t.Fatal(err)
	}
	if drv.Create == nil {
		t.Fatalf("driver %s cannot create images; test it with TestReadOnly", c.Format)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "image."+c.Format)
	ref := writeImage(t, drv, c, path, "")
	run := func(name string, check func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			if why, ok := c.Skip[name]; ok {
				t.Skip(why)
			}
			check(t)
		})
	}
	run("ReopenEqualsReference", func(t *testing.T) { checkContent(t, path, ref) })
	run("ConcurrentReadAt", func(t *testing.T) { checkConcurrent(t, path, ref) })
	run("Extents", func(t *testing.T) { checkExtents(t, path, ref) })
	run("PastEnd", func(t *testing.T) { checkPastEnd(t, path, int64(len(ref))) })
	run("FailedOpen", func(t *testing.T) { checkFailedOpen(t, drv, path) })
	run("FailedCreate", func(t *testing.T) { checkFailedCreate(t, drv, c, dir) })
	run("ReadOnly", func(t *testing.T) { checkReadOnly(t, path) })
	if c.Judge != nil {
		run("Judge", func(t *testing.T) { c.Judge(t, path, rawFile(t, ref)) })
	}
	if c.Backing {
		run("ReadDuringChildWrite", func(t *testing.T) { checkChildWrite(t, drv, c, dir, ref) })
	}
}

// TestReadOnly runs the reading half of the suite on an existing image
// (a read-only format, or one made by another tool) whose content is ref.
func TestReadOnly(t *testing.T, path string, ref []byte) {
	t.Helper()
	t.Run("ReopenEqualsReference", func(t *testing.T) { checkContent(t, path, ref) })
	t.Run("ConcurrentReadAt", func(t *testing.T) { checkConcurrent(t, path, ref) })
	t.Run("Extents", func(t *testing.T) { checkExtents(t, path, ref) })
	t.Run("PastEnd", func(t *testing.T) { checkPastEnd(t, path, int64(len(ref))) })
}

// createRequest is a CreateRequest for an OS file at path with extra files
// (extents) beside it.
func createRequest(t *testing.T, drv *formats.Driver, c Case, path, extra string) (formats.CreateRequest, *os.File) {
	t.Helper()
	opts := formats.Options{}
	if text := joinOptions(c.Options, extra); text != "" {
		var err error
		if opts, err = formats.ParseOptions(drv.CreateOptions, text); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	return formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: c.size(), Options: opts,
		Siblings: func(name string) (formats.File, error) {
			g, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return nil, err
			}
			return formats.NewOSFile(g), nil
		}}, f
}

func joinOptions(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "," + b
}

// writeImage creates the image, writes the pattern (seed 0) and Closes it
// without Flush. It returns the reference content.
func writeImage(t *testing.T, drv *formats.Driver, c Case, path, extra string) []byte {
	t.Helper()
	req, _ := createRequest(t, drv, c, path, extra)
	img, err := drv.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("Create %s -o %q: %v", c.Format, joinOptions(c.Options, extra), err)
	}
	ref := make([]byte, img.Size())
	for _, w := range writes(img.Size()) {
		buf := make([]byte, w[1])
		pattern(buf, w[0], 0)
		if _, err := img.WriteAt(buf, w[0]); err != nil {
			img.Close()
			t.Fatalf("WriteAt(%d bytes at %d): %v", w[1], w[0], err)
		}
		copy(ref[w[0]:], buf)
	}
	// No Flush: Close alone must leave a complete image.
	if err := img.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return ref
}

func open(t *testing.T, path string, opts formats.OpenOptions) formats.Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("reopening %s: %v", path, err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func checkContent(t *testing.T, path string, ref []byte) {
	img := open(t, path, formats.OpenOptions{})
	if img.Size() != int64(len(ref)) {
		t.Fatalf("Size = %d, want %d", img.Size(), len(ref))
	}
	got := make([]byte, len(ref))
	if n, err := img.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt whole disk = %d, %v", n, err)
	}
	if off := firstDiff(got, ref); off >= 0 {
		t.Fatalf("content differs from what was written (then Closed without Flush) at offset %d: %#x, want %#x", off, got[off], ref[off])
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) { // fast, and not instrumented under -race
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func checkConcurrent(t *testing.T, path string, ref []byte) {
	img := open(t, path, formats.OpenOptions{})
	size := int64(len(ref))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 80000)
			for range 50 {
				off := r.Int63n(size)
				n := min(int64(1+r.Intn(len(buf))), size-off)
				if _, err := img.ReadAt(buf[:n], off); err != nil && err != io.EOF {
					errs <- fmt.Errorf("ReadAt(%d, %d): %w", n, off, err)
					return
				}
				if d := firstDiff(buf[:n], ref[off:off+n]); d >= 0 {
					errs <- fmt.Errorf("goroutine %d: ReadAt(%d bytes at %d) differs at disk offset %d", g, n, off, off+int64(d))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func checkExtents(t *testing.T, path string, ref []byte) {
	img := open(t, path, formats.OpenOptions{})
	size := int64(len(ref))
	exts, err := img.Extents(0, size)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for _, e := range exts {
		if e.Offset != next || e.Length <= 0 {
			t.Fatalf("extent %+v: want one starting at %d", e, next)
		}
		next = e.End()
		if e.Kind == formats.Data {
			continue
		}
		if !bytes.Equal(ref[e.Offset:e.End()], make([]byte, e.Length)) {
			t.Errorf("extent %+v is %v but holds written data", e, e.Kind)
		}
		got := make([]byte, e.Length)
		if _, err := img.ReadAt(got, e.Offset); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, make([]byte, e.Length)) {
			t.Errorf("extent %+v is %v but does not read as zeros", e, e.Kind)
		}
	}
	if next != size {
		t.Errorf("extents end at %d, the disk at %d", next, size)
	}
	// A window inside the disk is answered for exactly that window.
	sub, err := img.Extents(4096+100, 70000)
	if err != nil {
		t.Fatal(err)
	}
	if len(sub) == 0 || sub[0].Offset != 4096+100 || sub[len(sub)-1].End() != 4096+100+70000 {
		t.Errorf("Extents(4196, 70000) = %+v, not the window", sub)
	}
}

func checkPastEnd(t *testing.T, path string, size int64) {
	img := open(t, path, formats.OpenOptions{})
	p := make([]byte, 1024)
	if n, err := img.ReadAt(p, size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := img.ReadAt(p, size+1<<20); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := img.ReadAt(p, size-512); n != 512 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v; want 512, io.EOF", n, err)
	}
	if _, err := img.ReadAt(p, -1); err == nil {
		t.Error("ReadAt at offset -1 succeeded")
	}
}

// sentinels are the errors a failed Open may match.
var sentinels = []error{formats.ErrCorrupt, formats.ErrUnsupported, formats.ErrLimit, formats.ErrFormatMismatch, fs.ErrNotExist}

func checkFailedOpen(t *testing.T, drv *formats.Driver, path string) {
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		opts formats.OpenOptions
	}{
		{"empty file", nil, formats.OpenOptions{}},
		{"first 512 bytes", whole[:min(512, len(whole))], formats.OpenOptions{}},
		{"virtual size over the limit", whole, formats.OpenOptions{Limits: formats.Limits{MaxVirtualSize: 512}}},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), filepath.Base(path))
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := formats.OpenOSFile(p, false)
		if err != nil {
			t.Fatal(err)
		}
		img, err := drv.Open(context.Background(), f, c.opts)
		if err == nil {
			if !drv.RawCompatible && drv.Name != "raw" || c.opts.Limits.MaxVirtualSize > 0 {
				t.Errorf("%s: Open succeeded", c.name) // any bytes are a raw disk
			}
			img.Close()
			continue
		}
		f.Close()
		if img != nil {
			t.Errorf("%s: failed Open returned a non-nil Image (%T) with %v", c.name, img, err)
		}
		if !matchesSentinel(err) {
			t.Errorf("%s: error %q matches no formats sentinel", c.name, err)
		}
	}
}

// checkFailedCreate: a Create on storage that refuses writes fails with a
// nil Writable interface.
func checkFailedCreate(t *testing.T, drv *formats.Driver, c Case, dir string) {
	path := filepath.Join(dir, "refused."+c.Format)
	req, f := createRequest(t, drv, c, path, "")
	f.Close()
	ro, err := formats.OpenOSFile(path, false) // every write fails with ErrReadOnly
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	req.File = ro
	img, err := drv.Create(context.Background(), req)
	if err == nil {
		img.Close()
		t.Skip("the driver wrote nothing at Create (nothing to refuse)")
	}
	if img != nil {
		t.Errorf("failed Create returned a non-nil Writable (%T) with %v", img, err)
	}
}

func matchesSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func checkReadOnly(t *testing.T, path string) {
	img := open(t, path, formats.OpenOptions{})
	w, ok := img.(io.WriterAt)
	if !ok {
		return // not writable at all: nothing to refuse
	}
	if _, err := w.WriteAt([]byte{1}, 0); !errors.Is(err, formats.ErrReadOnly) {
		t.Errorf("WriteAt on an image opened read-only: %v, want ErrReadOnly", err)
	}
}

// rawFile writes ref to a raw file for Judge.
func rawFile(t *testing.T, ref []byte) string {
	p := filepath.Join(t.TempDir(), "reference.raw")
	if err := os.WriteFile(p, ref, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkChildWrite writes a child over a full parent while readers read the
// grain being written: each sector must be the parent's or the child's.
func checkChildWrite(t *testing.T, drv *formats.Driver, c Case, dir string, _ []byte) {
	parent := filepath.Join(dir, "parent."+c.Format)
	pc := c
	req, _ := createRequest(t, drv, pc, parent, "")
	pimg, err := drv.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	size := pimg.Size()
	const span = 2 << 20 // the parent holds data here; the child writes in it
	buf := make([]byte, span)
	pattern(buf, 0, 1)
	if _, err := pimg.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := pimg.Close(); err != nil {
		t.Fatal(err)
	}
	child := filepath.Join(dir, "child."+c.Format)
	creq, _ := createRequest(t, drv, c, child, "backing_file="+filepath.Base(parent))
	creq.Size = size
	cimg, err := drv.Create(context.Background(), creq)
	if err != nil {
		t.Fatalf("creating a child: %v", err)
	}
	defer cimg.Close()
	const grain = 64 << 10
	var current atomic.Int64 // the grain being written
	var done atomic.Bool
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]byte, grain)
			for !done.Load() {
				off := current.Load()
				if _, err := cimg.ReadAt(got, off); err != nil && err != io.EOF {
					errs <- err
					return
				}
				if err := oldOrNew(got, off); err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
			}
		}()
	}
	sector := make([]byte, 512)
	for g := int64(0); g < span/grain; g++ {
		current.Store(g * grain)
		for _, s := range []int64{3, 77, 20} { // sectors inside the grain, out of order
			off := g*grain + s*512
			pattern(sector, off, 2)
			if _, err := cimg.WriteAt(sector, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Once the writes are done: the parent's bytes everywhere but in the
	// sectors written.
	got := make([]byte, span)
	if _, err := cimg.ReadAt(got, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if err := oldOrNew(got, 0); err != nil {
		t.Errorf("after the writes: %v", err)
	}
}

// oldOrNew checks that every sector of p (read at off) is the parent's
// pattern (seed 1) or the child's (seed 2).
func oldOrNew(p []byte, off int64) error {
	old, nw := make([]byte, 512), make([]byte, 512)
	for i := 0; i+512 <= len(p); i += 512 {
		at := off + int64(i)
		pattern(old, at, 1)
		pattern(nw, at, 2)
		if s := p[i : i+512]; !bytes.Equal(s, old) && !bytes.Equal(s, nw) {
			what := "other bytes"
			if bytes.Equal(s, make([]byte, 512)) {
				what = "zeros (an allocation published before its data)"
			}
			return fmt.Errorf("sector at %d read as %s, neither the parent's nor the new bytes", at, what)
		}
	}
	return nil
}
