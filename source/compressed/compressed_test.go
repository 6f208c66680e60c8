package compressed

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// compressTool compresses path with the real tool into path+ext.
func compressTool(t *testing.T, path string, kind Kind) string {
	t.Helper()
	tool := map[Kind]string{Xz: "xz", Zstd: "zstd", Gzip: "gzip", Bzip2: "bzip2"}[kind]
	ext := map[Kind]string{Xz: ".xz", Zstd: ".zst", Gzip: ".gz", Bzip2: ".bz2"}[kind]
	qemutest.Tool(t, tool)
	out := path + ext
	r := qemutest.Exec(t, tool, "-k", "-f", "-q", path)
	if r.Code != 0 {
		t.Fatalf("%s %s: %s", tool, path, r.Stderr)
	}
	return out
}

// spoolDir lists the files a spooler left in dir.
func spoolLeft(t *testing.T, dir string) []string {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(dir, ".vdisk-spool-*"))
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// TestSpoolMatchesTools decompresses what each real tool compressed and
// compares the spool with the original bytes; the spool leaves no file.
func TestSpoolMatchesTools(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "disk.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", orig, "8M")
	qemutest.IO(t, "raw", orig, "write -P 0x5a 0 64k", "write -P 0xa5 3M 1M", "write -P 0x11 8100k 3k")
	want, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []Kind{Xz, Zstd, Gzip, Bzip2} {
		t.Run(string(kind), func(t *testing.T) {
			path := compressTool(t, orig, kind)
			s := &Spooler{Dir: dir}
			f, err := s.OpenPath(path, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := CompressionOf(f); got != kind {
				t.Errorf("compression %q, want %q", got, kind)
			}
			if f.Name() != path {
				t.Errorf("name %q, want %q", f.Name(), path)
			}
			got := make([]byte, len(want)+1)
			n, _ := f.ReadAt(got, 0)
			if !bytes.Equal(got[:n], want) {
				t.Errorf("spool of %s differs from the original (%d bytes, want %d)", path, n, len(want))
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if left := spoolLeft(t, dir); len(left) != 0 {
				t.Errorf("spool files left: %v", left)
			}
		})
	}
}

// TestPlainFileIsNotSpooled: a file without a compression magic opens as is.
func TestPlainFileIsNotSpooled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.raw.gz") // the name says gzip, the content does not
	if err := os.WriteFile(path, []byte("not compressed at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := (&Spooler{}).OpenPath(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if CompressionOf(f) != None {
		t.Errorf("a plain file named .gz was taken for %q", CompressionOf(f))
	}
}

// TestBombStops: gzip of 64 MiB of zeros under a 16 MiB limit is an
// ErrLimit naming the file, and no spool is left.
func TestBombStops(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bomb.gz")
	gz := exec.Command(qemutest.Tool(t, "gzip"), "-c")
	gz.Stdin = io.LimitReader(zeroReader{}, 64<<20)
	out, err := gz.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = (&Spooler{Dir: dir, LimitBytes: 16 << 20}).OpenPath(path, false)
	if !errors.Is(err, formats.ErrLimit) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Fatalf("bomb: %v; want ErrLimit naming %s", err, path)
	}
	if left := spoolLeft(t, dir); len(left) != 0 {
		t.Errorf("spool files left after the bomb: %v", left)
	}
}

// TestTruncatedStream: a stream cut short is ErrCorrupt, no spool left.
func TestTruncatedStream(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("vdisk "), 100000))
	zw.Close()
	path := filepath.Join(dir, "cut.gz")
	if err := os.WriteFile(path, buf.Bytes()[:buf.Len()/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := (&Spooler{Dir: dir}).OpenPath(path, false)
	if !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("truncated: %v; want ErrCorrupt", err)
	}
	if left := spoolLeft(t, dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// TestCancelled: a cancelled context stops the spool.
func TestCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Spooler{Ctx: ctx, Dir: dir, Stdin: bytes.NewReader(make([]byte, 1<<20))}).OpenPath(StdinName, false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if left := spoolLeft(t, dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// TestStdinPlainAndCompressed: stdin is spooled whether compressed or not,
// and refused for writing.
func TestStdinPlainAndCompressed(t *testing.T) {
	data := bytes.Repeat([]byte{1, 2, 3, 0, 0, 0, 0, 0}, 40000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	for name, in := range map[string][]byte{"plain": data, "gzip": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := (&Spooler{Dir: dir, Stdin: bytes.NewReader(in)}).OpenPath(StdinName, false)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if size, _ := f.Size(); size != int64(len(data)) {
				t.Fatalf("size %d, want %d", size, len(data))
			}
			got := make([]byte, len(data))
			if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				t.Errorf("stdin spool differs (%v)", err)
			}
		})
	}
	if _, err := (&Spooler{Stdin: bytes.NewReader(data)}).OpenPath(StdinName, true); !errors.Is(err, formats.ErrReadOnly) {
		t.Errorf("writable stdin: %v, want ErrReadOnly", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// FuzzSpool: any bytes on stdin spool or fail, never panic, within the limit.
func FuzzSpool(f *testing.F) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("abc"), 1000))
	zw.Close()
	f.Add(gz.Bytes())
	f.Add([]byte{0xFD, '7', 'z', 'X', 'Z', 0, 0, 4})
	f.Add([]byte{0x28, 0xB5, 0x2F, 0xFD, 0, 0})
	f.Add([]byte("BZh91AY&SY"))
	// One directory for every input (not a directory made and removed per
	// input): each spool must be gone from it once the input is done.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		defer func() {
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("%s left in the spool directory", left[0].Name())
			}
		}()
		file, err := (&Spooler{Dir: dir, LimitBytes: 1 << 20, Stdin: bytes.NewReader(in)}).OpenPath(StdinName, false)
		if err != nil {
			return
		}
		if size, _ := file.Size(); size > 1<<20 {
			t.Errorf("spool of %d bytes past the 1 MiB limit", size)
		}
		file.Close()
	})
}
