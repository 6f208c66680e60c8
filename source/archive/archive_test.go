package archive_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/source/archive"
)

// sparseFile writes a file of size bytes with data at the given offsets
// (pattern bytes, 4 KiB each) and holes elsewhere; it returns its bytes.
func sparseFile(t *testing.T, path string, size int64, at []int64) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := make([]byte, size)
	for i, off := range at {
		b := bytes.Repeat([]byte{byte(i + 1), byte(i*7 + 3)}, 2048)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], b)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return want
}

// gnuTar runs GNU tar in dir (skipped when tar is missing, failed under
// VDISK_REQUIRE_QEMU=1 as the other oracles).
func gnuTar(t *testing.T, dir string, args ...string) {
	t.Helper()
	r := qemutest.Exec(t, "tar", append([]string{"-C", dir}, args...)...)
	if r.Code != 0 {
		t.Fatalf("tar %v: exit %d: %s", args, r.Code, r.Stderr)
	}
}

func openArchive(t *testing.T, path string) (*archive.Archive, *os.File) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	a, err := archive.Read(f, st.Size(), path, archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return a, f
}

func readMember(t *testing.T, f *os.File, m archive.Member) []byte {
	t.Helper()
	mf := archive.NewMemberFile(formats.NewOSFile(f), m, "m", false)
	got := make([]byte, m.Size)
	if n, err := mf.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	// Unaligned reads across fragment edges agree with the whole read.
	for _, off := range []int64{0, 1, 4095, 4096, 100000, m.Size - 3} {
		if off < 0 || off >= m.Size {
			continue
		}
		p := make([]byte, min(9000, m.Size-off))
		if _, err := mf.ReadAt(p, off); err != nil && err != io.EOF {
			t.Fatalf("ReadAt %d: %v", off, err)
		}
		if !bytes.Equal(p, got[off:off+int64(len(p))]) {
			t.Fatalf("ReadAt %d differs from the whole read", off)
		}
	}
	return got
}

// TestGNUSparseMembers: GNU tar's sparse encodings (oldgnu with extension
// blocks, PAX 0.0, 0.1, 1.0) read back as the file tar was given, and the
// holes it recorded are reported as holes.
func TestGNUSparseMembers(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	// 30 data runs: more than the 4 an oldgnu header holds and the 21 of
	// one extension block.
	var at []int64
	for i := range 30 {
		at = append(at, int64(i)*1<<20+int64(i%3)*8192)
	}
	const size = 31<<20 + 12345 // ends in a hole, off a block boundary
	want := sparseFile(t, filepath.Join(src, "disk.raw"), size, at)
	for _, tc := range []struct {
		name   string
		args   []string
		sparse string
	}{
		{"oldgnu", []string{"--format=oldgnu"}, "oldgnu"},
		{"gnu", []string{"--format=gnu"}, "oldgnu"},
		{"pax-0.0", []string{"--format=posix", "--sparse-version=0.0"}, "pax-0.0"},
		{"pax-0.1", []string{"--format=posix", "--sparse-version=0.1"}, "pax-0.1"},
		{"pax-1.0", []string{"--format=posix", "--sparse-version=1.0"}, "pax-1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".tar")
			gnuTar(t, src, append(tc.args, "--sparse", "-cf", out, "disk.raw")...)
			a, f := openArchive(t, out)
			if a.Kind != archive.KindGCE {
				t.Errorf("kind %q, want gce", a.Kind)
			}
			m, err := a.Choose(0, "")
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "disk.raw" || m.Size != size || m.Sparse != tc.sparse {
				t.Fatalf("member %q size %d sparse %q; want disk.raw, %d, %s", m.Name, m.Size, m.Sparse, size, tc.sparse)
			}
			if got := readMember(t, f, *m); !bytes.Equal(got, want) {
				t.Fatal("member content differs from the file tar archived")
			}
			runs, err := archive.NewMemberFile(formats.NewOSFile(f), *m, "m", false).Runs(0, size)
			if err != nil {
				t.Fatal(err)
			}
			var data int64
			for _, r := range runs {
				if !r.Hole {
					data += r.Length
				} else if !bytes.Equal(want[r.Offset:r.Offset+r.Length], make([]byte, r.Length)) {
					t.Fatalf("hole at %d holds data", r.Offset)
				}
			}
			if data != 30*4096 {
				t.Errorf("%d data bytes reported, want %d", data, 30*4096)
			}
		})
	}
}

// TestGoTarMembers: archive/tar's PAX long names and ustar prefixes, GNU
// tar's long names, directories and links are indexed by their names.
func TestGoTarMembers(t *testing.T) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	long := strings.Repeat("d/", 80) + "disk.qcow2"
	files := map[string]string{"./a.txt": "hello", long: "qcow2 bytes", "dir/" + strings.Repeat("x", 120): "y"}
	w.WriteHeader(&tar.Header{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, name := range []string{"./a.txt", long, "dir/" + strings.Repeat("x", 120)} {
		w.WriteHeader(&tar.Header{Name: name, Size: int64(len(files[name])), Mode: 0o644, Format: tar.FormatPAX})
		w.Write([]byte(files[name]))
	}
	w.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "a.txt"})
	w.Close()
	data := buf.Bytes()
	if !archive.IsTar(data) {
		t.Fatal("IsTar false for archive/tar's output")
	}
	members, err := archive.Index(bytes.NewReader(data), int64(len(data)), "t.tar", archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range members {
		names = append(names, m.Name)
		if want, ok := files[m.Name]; ok || m.Name == "a.txt" {
			if m.Name == "a.txt" {
				want = files["./a.txt"]
			}
			if got := string(data[m.DataOff : m.DataOff+m.Size]); got != want {
				t.Errorf("%s: %q, want %q", m.Name, got, want)
			}
		}
	}
	if diff := cmp.Diff([]string{"dir", "a.txt", long, "dir/" + strings.Repeat("x", 120), "link"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	a, err := archive.Read(bytes.NewReader(data), int64(len(data)), "t.tar", archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Choose(0, ""); err == nil || !strings.Contains(err.Error(), "--member") {
		t.Errorf("several files, none chosen: %v; want a request for --member", err)
	}
	if m, err := a.Choose(0, "./"+long); err != nil || m.Name != long {
		t.Errorf("Choose by name: %v, %v", m, err)
	}
}

// TestGNUTarLongNames: GNU tar's own long-name ('L') headers.
func TestGNUTarLongNames(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("n", 150)
	os.WriteFile(filepath.Join(dir, long), []byte("long"), 0o644)
	out := filepath.Join(t.TempDir(), "l.tar")
	gnuTar(t, dir, "--format=gnu", "-cf", out, long)
	a, f := openArchive(t, out)
	m, err := a.Choose(0, "")
	if err != nil || m.Name != long {
		t.Fatalf("Choose: %v %v", m, err)
	}
	if got := readMember(t, f, *m); string(got) != "long" {
		t.Fatalf("content %q", got)
	}
}

func TestIsTarRefusesOthers(t *testing.T) {
	block := make([]byte, 512)
	if archive.IsTar(block) {
		t.Error("zeros are a tar")
	}
	copy(block[257:], "ustar\x00")
	if archive.IsTar(block) {
		t.Error("a magic without a checksum is a tar")
	}
	if archive.IsTar(block[:100]) {
		t.Error("a short block is a tar")
	}
}

func errIs(t *testing.T, err, kind error, words string) {
	t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), words) {
		t.Fatalf("error %v; want %v mentioning %q", err, kind, words)
	}
}
