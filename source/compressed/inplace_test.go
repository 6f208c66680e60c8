package compressed

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// noSpoolDir is a spool directory that does not exist: a source that
// opens with it was not spooled.
func noSpoolDir(t *testing.T) string { return filepath.Join(t.TempDir(), "no-such-dir") }

// sampleRaw writes an 8 MiB raw image with qemu-io patterns and returns
// its path and bytes.
func sampleRaw(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	orig := filepath.Join(dir, "disk.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", orig, "8M")
	qemutest.IO(t, "raw", orig, "write -P 0x5a 0 64k", "write -P 0xa5 3M 1M", "write -P 0x11 8100k 3k")
	want, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	return orig, want
}

// sh runs a shell script with $0 set to arg.
func sh(t *testing.T, script, arg string) {
	t.Helper()
	qemutest.Tool(t, "sh")
	if b, err := exec.Command("sh", "-c", script, arg).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, b)
	}
}

// readRandomly reads f in chunks of random sizes at random offsets, all
// of it in the end, and compares with want.
func readRandomly(t *testing.T, f formats.File, want []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 60 {
		off := rng.Int64N(int64(len(want)))
		n := 1 + rng.IntN(700<<10)
		got := make([]byte, n)
		m, err := f.ReadAt(got, off)
		end := min(off+int64(n), int64(len(want)))
		if int64(m) != end-off || (err != nil && err != io.EOF) || !bytes.Equal(got[:m], want[off:end]) {
			t.Fatalf("ReadAt(%d bytes at %d): %d, %v; bytes differ: %v", n, off, m, err, !bytes.Equal(got[:m], want[off:end]))
		}
	}
	all := make([]byte, len(want))
	if _, err := f.ReadAt(all, 0); err != nil || !bytes.Equal(all, want) {
		t.Fatalf("whole read: %v, equal %v", err, bytes.Equal(all, want))
	}
}

// TestXzMultiBlockInPlace: an xz file made by `xz -T2 --block-size` (and
// two such streams concatenated) reads in place, without a spool (the
// spool directory does not exist), through a cache smaller than the file;
// every random read equals the original.
func TestXzMultiBlockInPlace(t *testing.T) {
	dir := t.TempDir()
	orig, want := sampleRaw(t, dir)
	qemutest.Tool(t, "xz")
	sh(t, `xz -c -T2 --block-size=256KiB "$0" > "$0.mb.xz"`, orig)
	sh(t, `{ head -c 3000000 "$0" | xz -c -T2 --block-size=300000; tail -c +3000001 "$0" | xz -c -T2 --block-size=1MiB; } > "$0.ms.xz"`, orig)
	for _, path := range []string{orig + ".mb.xz", orig + ".ms.xz"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			heard := Kind("?")
			s := &Spooler{Dir: noSpoolDir(t), CacheBytes: 1 << 20, OnSpool: func(_ string, k Kind) { heard = k }}
			f, err := s.OpenPath(path, false)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			in, ok := f.(*InPlace)
			if !ok || in.Blocks() < 2 || CompressionOf(f) != Xz || heard != Xz || f.Name() != path {
				t.Fatalf("opened as %T (in place %v, compression %q, heard %q)", f, ok, CompressionOf(f), heard)
			}
			if size, _ := f.Size(); size != int64(len(want)) {
				t.Fatalf("size %d, want %d", size, len(want))
			}
			readRandomly(t, f, want)
			if _, err := f.WriteAt([]byte{1}, 0); !errors.Is(err, formats.ErrReadOnly) {
				t.Errorf("WriteAt: %v", err)
			}
		})
	}
}

// TestZstdFramesInPlace: concatenated zstd frames made by the zstd tool
// (each with its content size) read in place; a frame from a pipe, with
// no content size, is spooled.
func TestZstdFramesInPlace(t *testing.T) {
	dir := t.TempDir()
	orig, want := sampleRaw(t, dir)
	qemutest.Tool(t, "zstd")
	sh(t, `head -c 3000000 "$0" > "$0.a" && tail -c +3000001 "$0" > "$0.b" && zstd -q -c "$0.a" > "$0.zst" && zstd -q -c "$0.b" >> "$0.zst"`, orig)
	f, err := (&Spooler{Dir: noSpoolDir(t)}).OpenPath(orig+".zst", false)
	if err != nil {
		t.Fatal(err)
	}
	if in, ok := f.(*InPlace); !ok || in.Blocks() != 2 {
		t.Fatalf("opened as %T", f)
	}
	readRandomly(t, f, want)
	f.Close()
	sh(t, `cat "$0" | zstd -q -c > "$0.pipe.zst"`, orig)
	f, err = (&Spooler{Dir: dir}).OpenPath(orig+".pipe.zst", false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*File); !ok {
		t.Fatalf("a frame without its content size opened as %T, want a spool", f)
	}
	readRandomly(t, f, want)
}

// TestSingleBlockXzIsSpooled: a single block larger than MaxBlockBytes is
// spooled, not decoded whole into memory.
func TestSingleBlockXzIsSpooled(t *testing.T) {
	dir := t.TempDir()
	orig, want := sampleRaw(t, dir)
	sh(t, `xz -c -T1 "$0" > "$0.xz"`, orig)
	f, err := (&Spooler{Dir: dir, MaxBlockBytes: 1 << 20}).OpenPath(orig+".xz", false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*File); !ok {
		t.Fatalf("opened as %T, want a spool", f)
	}
	readRandomly(t, f, want)
}

// TestInPlaceBombAndCorruption: an index declaring more than the limit is
// ErrLimit before anything is decoded; a block whose bytes are damaged is
// ErrCorrupt naming the file and the block when read; a damaged index
// falls back to the stream decoder, which says the stream is corrupt.
func TestInPlaceBombAndCorruption(t *testing.T) {
	dir := t.TempDir()
	bomb := filepath.Join(dir, "zeros.xz")
	sh(t, `head -c 16M /dev/zero | xz -c -T2 --block-size=1MiB > "$0"`, bomb)
	_, err := (&Spooler{Dir: noSpoolDir(t), LimitBytes: 4 << 20}).OpenPath(bomb, false)
	if !errors.Is(err, formats.ErrLimit) || !strings.Contains(err.Error(), bomb) {
		t.Fatalf("bomb: %v", err)
	}
	orig, _ := sampleRaw(t, dir)
	sh(t, `xz -c -T2 --block-size=1MiB "$0" > "$0.xz"`, orig)
	data, err := os.ReadFile(orig + ".xz")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := xzBlocks(bytes.NewReader(data), int64(len(data)), "x")
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(data)
	b := blocks[3]
	damaged[b.fileOff+b.fileBytes/2] ^= 0x55
	path := filepath.Join(dir, "damaged.xz")
	os.WriteFile(path, damaged, 0o644)
	f, err := (&Spooler{Dir: noSpoolDir(t)}).OpenPath(path, false)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, b.virtOff); !errors.Is(err, formats.ErrCorrupt) || !strings.Contains(err.Error(), "block 3") {
		t.Errorf("damaged block: %v", err)
	}
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Errorf("an intact block: %v", err)
	}
	f.Close()
	damaged = bytes.Clone(data)
	damaged[len(damaged)-8] ^= 1 // the footer's backward size
	os.WriteFile(path, damaged, 0o644)
	if _, err := (&Spooler{Dir: dir}).OpenPath(path, false); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("damaged index: %v", err)
	}
}

// TestDeclaredSizeBoundsTheSpool: a qcow2 header declaring 1 MiB followed
// by 96 MiB of zeros, gzipped, stops at the declared size plus the
// metadata room, without --spool-limit; with an explicit limit that limit
// rules.
func TestDeclaredSizeBoundsTheSpool(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", small, "1M")
	bomb := small + ".gz"
	sh(t, `{ cat "$0"; head -c 96M /dev/zero; } | gzip -1 -c > "$0.gz"`, small)
	_, err := (&Spooler{Dir: dir}).OpenPath(bomb, false)
	if !errors.Is(err, formats.ErrLimit) || !strings.Contains(err.Error(), "qcow2 image declares 1048576 bytes") {
		t.Fatalf("bomb: %v", err)
	}
	f, err := (&Spooler{Dir: dir, LimitBytes: 200 << 20}).OpenPath(bomb, false)
	if err != nil {
		t.Fatalf("explicit limit: %v", err)
	}
	f.Close()
	if left := spoolLeft(t, dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// FuzzXzIndex: any bytes index or fail, never panic; what indexes stays
// inside the file.
func FuzzXzIndex(f *testing.F) {
	var buf bytes.Buffer
	w, _ := xz.WriterConfig{BlockSize: 1000}.NewWriter(&buf)
	w.Write(bytes.Repeat([]byte("vdisk xz index "), 100)) // two blocks, 144 bytes: each block decoded costs 0.1 ms
	w.Close()
	f.Add(buf.Bytes())
	f.Add(append(bytes.Clone(buf.Bytes()), 0, 0, 0, 0))
	f.Add(xzBlockStream(block{fileBytes: 13, virtBytes: 5, streamFlag: [2]byte{0, 1}}, make([]byte, 16)))
	f.Fuzz(func(t *testing.T, in []byte) {
		blocks, err := xzBlocks(bytes.NewReader(in), int64(len(in)), "fuzz")
		if err != nil {
			return
		}
		for _, b := range blocks {
			if b.fileOff < 0 || b.fileOff+pad4(b.fileBytes) > int64(len(in)) || b.virtBytes < 0 {
				t.Fatalf("block %+v outside a %d-byte file", b, len(in))
			}
		}
		s := &Spooler{LimitBytes: 1 << 20}
		file, err := s.openInPlace(formats.ReaderAtFile(bytes.NewReader(in), int64(len(in)), "fuzz"), "fuzz", Xz, int64(len(in)), 1<<20)
		if err == nil {
			io.Copy(io.Discard, io.NewSectionReader(file, 0, 1<<20))
			file.Close()
		}
	})
}
