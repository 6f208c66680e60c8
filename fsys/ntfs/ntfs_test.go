package ntfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/ntfs"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(qemutest.Tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// mount mounts img with ntfs-3g (FUSE), skipping when the machine has no
// FUSE; the returned function unmounts.
func mount(t *testing.T, img string, opts ...string) (string, func()) {
	dir := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(dir, 0o755)
	args := []string{img, dir}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	if out, err := exec.Command(qemutest.Tool(t, "ntfs-3g"), args...).CombinedOutput(); err != nil {
		t.Skipf("ntfs-3g cannot mount here (FUSE): %v %s", err, out)
	}
	done := false
	unmount := func() {
		if !done {
			done = true
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v %s", err, out)
			}
		}
	}
	t.Cleanup(unmount)
	return dir, unmount
}

// makeNTFS formats a volume and fills it through ntfs-3g: resident and
// non-resident files, a sparse file, a compressed directory, an alternate
// data stream, a symbolic link, a directory big enough for index records.
func makeNTFS(t *testing.T) string {
	img := filepath.Join(t.TempDir(), "ntfs.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 48<<20)
	tool(t, "mkntfs", "-q", "-F", "-f", "-L", "vdiskntfs", img)
	dir, unmount := mount(t, img)
	rng := rand.New(rand.NewPCG(5, 6))
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 700_001)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	write("small.txt", []byte("resident data\n"))
	write("dir/big.bin", big)
	write("Ünïcode ñame.txt", []byte("unicode\n"))
	write("empty", nil)
	for i := 0; i < 120; i++ {
		write(fmt.Sprintf("many/file number %03d", i), []byte(fmt.Sprint(i)))
	}
	sparse, _ := os.Create(filepath.Join(dir, "sparse"))
	sparse.WriteAt([]byte("middle of nowhere"), 5<<20)
	sparse.Truncate(9 << 20)
	sparse.Close()
	os.Mkdir(filepath.Join(dir, "comp"), 0o755)
	tool(t, "setfattr", "-h", "-v", "0x00000800", "-n", "system.ntfs_attrib_be", filepath.Join(dir, "comp"))
	text := bytes.Repeat([]byte("compressible text, line after line\n"), 20000)
	text = append(text, big[:50000]...) // an incompressible tail
	write("comp/text.txt", text)
	tool(t, "setfattr", "-n", "user.stream1", "-v", "alternate data", filepath.Join(dir, "small.txt"))
	os.Symlink("small.txt", filepath.Join(dir, "link"))
	unmount()
	return img
}

type entry struct {
	Dir  bool
	Data string
}

func listing(t *testing.T, fsys fs.FS) map[string]entry {
	out := map[string]entry{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		e := entry{Dir: d.IsDir()}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.Data, err = fs.ReadLink(fsys, p)
			e.Data = "-> " + e.Data
		case !d.IsDir():
			var b []byte
			b, err = fs.ReadFile(fsys, p)
			e.Data = string(b)
		}
		out[p] = e
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t *testing.T, img string) *ntfs.Volume {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ntfs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMatchesNTFS3G(t *testing.T) {
	img := makeNTFS(t)
	v := open(t, img)
	if v.Label != "vdiskntfs" {
		t.Errorf("label %q", v.Label)
	}
	dir, unmount := mount(t, img, "ro")
	want := listing(t, os.DirFS(dir))
	unmount()
	delete(want, "System Volume Information") // ntfs-3g shows it; vdisk hides nothing else
	got := listing(t, v)
	delete(got, "System Volume Information")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree differs from ntfs-3g's (-ntfs-3g +vdisk):\n%.3000s", diff)
	}
	if len(want) < 120 {
		t.Fatalf("ntfs-3g shows only %d entries", len(want))
	}
	// ntfscat (no FUSE) agrees on the compressed file and the stream.
	if b, _ := fs.ReadFile(v, "comp/text.txt"); tool(t, "ntfscat", img, "comp/text.txt") != string(b) {
		t.Error("comp/text.txt differs from ntfscat's")
	}
	info, err := fs.Stat(v, "small.txt")
	if err != nil {
		t.Fatal(err)
	}
	if streams := info.Sys().(*ntfs.Stat).Streams; !slices.Equal(streams, []string{"stream1"}) {
		t.Errorf("streams of small.txt: %q", streams)
	}
	stream := tool(t, "ntfscat", "-a", "0x80", "-n", "stream1", img, "small.txt")
	if stream != "alternate data" {
		t.Fatalf("ntfscat stream1 = %q", stream)
	}
	r, err := v.OpenStream("small.txt", "stream1")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != stream {
		t.Errorf("stream1 = %q, ntfscat says %q", b, stream)
	}
	if err := fstest.TestFS(v, "small.txt", "dir/big.bin", "comp/text.txt", "many/file number 119"); err != nil {
		t.Error(err)
	}
}

// The compressed directory really holds compressed clusters: ntfsinfo says
// so, else the LZNT1 path would go untested.
func TestCompressedAttribute(t *testing.T) {
	img := makeNTFS(t)
	out := tool(t, "ntfsinfo", "-F", "/comp/text.txt", img)
	if !strings.Contains(out, "COMPRESSED") && !strings.Contains(out, "Compressed") {
		t.Skipf("ntfs-3g did not compress the file:\n%s", out)
	}
	v := open(t, img)
	b, err := fs.ReadFile(v, "comp/text.txt")
	if err != nil || !bytes.HasPrefix(b, []byte("compressible text, line after line\n")) {
		t.Fatalf("%q %v", b[:min(40, len(b))], err)
	}
}

// The free space $Bitmap gives is what ntfsinfo counts.
func TestFreeSpans(t *testing.T) {
	img := makeNTFS(t)
	v := open(t, img)
	spans, err := v.FreeSpans()
	if err != nil {
		t.Fatal(err)
	}
	var free int64
	for _, s := range spans {
		free += s.End - s.Start
	}
	out := tool(t, "ntfsinfo", "-m", img)
	i := strings.Index(out, "Free Clusters: ")
	var clusters int64
	if i < 0 {
		t.Fatalf("ntfsinfo -m: %s", out)
	}
	fmt.Sscanf(out[i:], "Free Clusters: %d", &clusters)
	if clusters == 0 || free != clusters*v.ClusterBytes {
		t.Errorf("free %d bytes, ntfsinfo says %d clusters of %d", free, clusters, v.ClusterBytes)
	}
}

func TestHostile(t *testing.T) {
	img := makeNTFS(t)
	good, _ := os.ReadFile(img)
	for name, patch := range map[string]func([]byte){
		"MFT past the volume": func(b []byte) { b[0x30+6] = 0x7f },
		"record size":         func(b []byte) { b[0x40] = 0x7f },
		"cluster size":        func(b []byte) { b[0x0D] = 3 },
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(good)
			patch(b)
			if _, err := ntfs.Open(bytes.NewReader(b), int64(len(b))); !errors.Is(err, formats.ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
		})
	}
	if _, err := ntfs.Open(bytes.NewReader(make([]byte, 4096)), 4096); !errors.Is(err, ntfs.ErrNotNTFS) {
		t.Errorf("zeros: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	// Inputs are patches (fuzzpatch) over the first 64 KiB of a volume
	// mkntfs makes (the boot sector and the MFT's first records) when
	// present, and a bare boot sector: a whole 64 KiB volume as the input
	// is minimised for a minute each time the fuzzer finds new coverage.
	bases := [][]byte{append([]byte{0xEB, 0x52, 0x90}, []byte("NTFS    ")...)}
	if mk, err := exec.LookPath("mkntfs"); err == nil {
		p := filepath.Join(f.TempDir(), "seed.img")
		os.WriteFile(p, make([]byte, 1<<20), 0o644)
		if out, err := exec.Command(mk, "-q", "-F", "-f", "-c", "512", p).CombinedOutput(); err == nil {
			seed, _ := os.ReadFile(p)
			bases = append(bases, seed[:64<<10])
		} else {
			f.Logf("mkntfs: %v %s", err, out)
		}
	}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		d := fuzzpatch.Apply(bases, input)
		v, err := ntfs.Open(bytes.NewReader(d), int64(len(d)))
		if err != nil {
			return
		}
		fs.WalkDir(v, ".", func(p string, e fs.DirEntry, err error) error {
			if err != nil || strings.Count(p, "/") > 32 {
				return fs.SkipDir
			}
			if e.Type().IsRegular() {
				fs.ReadFile(v, p)
			}
			return nil
		})
	})
}
