package iso

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/raw" // "-f raw" on an ISO
)

// tool returns the path of an external tool or skips the test (fails it
// under VDISK_REQUIRE_QEMU=1, where CI installs the oracles).
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatalf("%s not found", name)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s%s", name, args, err, out.String(), errb.String())
	}
	return out.String()
}

// makeTree writes a small tree with the shapes that matter: nested
// directories, long and non-ASCII names, an empty file, a symlink and a
// file spanning several blocks.
func makeTree(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	files := map[string]string{
		"user-data":  "#cloud-config\n",
		"meta-data":  "instance-id: x\n",
		"README.TXT": "read me\n",
		"empty":      "",
		"sub/long name with spaces and-UPPER.data": "x",
		"sub/deeper/ünïcødé.txt":                   "unicode\n",
		"sub/deeper/big.bin":                       strings.Repeat("0123456789abcdef", 20000),
		"a/b/c/d/e/f/g/h/i/deep.txt":               "deep\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../README.TXT", filepath.Join(dir, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "emptydir"), 0o755)
	return dir
}

// xorrisoISO builds an image with xorriso -as mkisofs.
func xorrisoISO(t testing.TB, tree string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "x.iso")
	run(t, "xorriso", append(append([]string{"-as", "mkisofs", "-quiet", "-o", out}, args...), tree)...)
	return out
}

func openFS(t testing.TB, path string) *FS {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	fsys, err := Open(f, st.Size(), path)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// ourList lists every path below "/" with vdisk.
func ourList(t testing.TB, fsys *FS, skipLinks bool) []string {
	t.Helper()
	var out []string
	err := fsys.Walk("/", func(e Entry) error {
		if e.Path == "/" || (skipLinks && e.Mode&fs.ModeSymlink != 0) {
			return nil
		}
		out = append(out, e.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// xorrisoList is `xorriso -indev X -find /`.
func xorrisoList(t testing.TB, iso string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(run(t, "xorriso", "-indev", iso, "-find", "/"), "\n") {
		line = strings.Trim(line, "'")
		if line != "" && line != "/" {
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}

// sevenZipList is `7z l -slt`: path -> size (-1 for folders).
func sevenZipList(t testing.TB, iso string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	folders := map[string]bool{}
	var path string
	for _, line := range strings.Split(run(t, "7z", "l", "-slt", iso), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "Path = "):
			path = "/" + strings.TrimPrefix(line, "Path = ")
		case strings.HasPrefix(line, "Size = ") && path != "":
			n, _ := strconv.ParseInt(strings.TrimPrefix(line, "Size = "), 10, 64)
			out[path] = n
		case strings.HasPrefix(line, "Folder = +") && path != "":
			folders[path] = true
		}
	}
	for p := range folders {
		out[p] = -1
	}
	delete(out, "/"+filepath.Base(iso))
	return out
}

func ourSizes(t testing.TB, fsys *FS, skipLinks bool) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	fsys.Walk("/", func(e Entry) error {
		switch {
		case e.Path == "/" || (skipLinks && e.Mode&fs.ModeSymlink != 0):
		case e.IsDir():
			out[e.Path] = -1
		default:
			out[e.Path] = e.Size
		}
		return nil
	})
	return out
}

// treeDigest describes a directory on disk: path -> "dir", "link:TARGET"
// or the file's content.
func treeDigest(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == ".":
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link:" + target
		case info.IsDir():
			out[rel] = "dir"
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var xorrisoVariants = []struct {
	name   string
	args   []string
	joliet bool
	rr     bool
}{
	{"plain", []string{"--norock"}, false, false},
	{"joliet", []string{"--norock", "-J"}, true, false},
	{"rockridge", []string{"-R"}, false, true},
	{"joliet-rockridge", []string{"-R", "-J"}, true, true},
}

func TestXorrisoImages(t *testing.T) {
	tree := makeTree(t)
	for _, v := range xorrisoVariants {
		t.Run(v.name, func(t *testing.T) {
			iso := xorrisoISO(t, tree, append([]string{"-V", "CIDATA"}, v.args...)...)
			fsys := openFS(t, iso)
			if fsys.Joliet() != v.joliet || fsys.RockRidge() != v.rr {
				t.Fatalf("joliet %v rock ridge %v", fsys.Joliet(), fsys.RockRidge())
			}
			if diff := cmp.Diff(xorrisoList(t, iso), ourList(t, fsys, false)); diff != "" {
				t.Errorf("listing vs xorriso -find (-xorriso +vdisk):\n%s", diff)
			}
			// 7z reads Joliet when present, which has no symlinks.
			if diff := cmp.Diff(sevenZipList(t, iso), ourSizes(t, fsys, v.joliet)); diff != "" {
				t.Errorf("listing vs 7z (-7z +vdisk):\n%s", diff)
			}
			ours := filepath.Join(t.TempDir(), "ours")
			if err := fsys.Extract(context.Background(), "/", ours); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Extract(context.Background(), "/", ours); err != nil { // again, over the first copy
				t.Fatal(err)
			}
			theirs := filepath.Join(t.TempDir(), "theirs")
			run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", theirs)
			if diff := cmp.Diff(treeDigest(t, theirs), treeDigest(t, ours)); diff != "" {
				t.Errorf("extracted tree (-xorriso +vdisk):\n%s", diff)
			}
			if v.rr {
				if diff := cmp.Diff(treeDigest(t, tree), treeDigest(t, ours)); diff != "" {
					t.Errorf("extracted tree vs source (-source +vdisk):\n%s", diff)
				}
			}
			img, err := formats.Open(context.Background(), iso, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Format() != "iso" {
				t.Fatalf("probed as %s", img.Format())
			}
			d := specific(t, img)
			if d.VolumeID != "CIDATA" || d.Joliet != v.joliet || d.RockRidge != v.rr {
				t.Errorf("info %v", d)
			}
		})
	}
}

func specific(t testing.TB, img formats.Image) *Details {
	t.Helper()
	inf, ok := img.(formats.Informer)
	if !ok {
		t.Fatal("no Info")
	}
	return inf.Info().Details.(*Details)
}

func TestExtractOneFile(t *testing.T) {
	tree := makeTree(t)
	iso := xorrisoISO(t, tree, "-R", "-J")
	fsys := openFS(t, iso)
	dest := t.TempDir()
	if err := fsys.Extract(context.Background(), "/sub/deeper/big.bin", dest); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dest, "big.bin"))
	want, _ := os.ReadFile(filepath.Join(tree, "sub/deeper/big.bin"))
	if !bytes.Equal(got, want) {
		t.Fatal("extracted file differs")
	}
	if err := fsys.Extract(context.Background(), "/nope", dest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	list, err := fsys.List("/sub")
	if err != nil || len(list) != 5 || list[0].Path != "/sub/deeper" {
		t.Fatalf("List: %v %v", err, list)
	}
	opened, err := OpenPath(iso)
	if err != nil {
		t.Fatal(err)
	}
	if err := opened.Close(); err != nil {
		t.Fatal(err)
	}
	r, e, err := fsys.OpenFile("/README.TXT")
	if err != nil || e.Size != 8 {
		t.Fatal(err, e)
	}
	data, _ := io.ReadAll(r)
	if string(data) != "read me\n" {
		t.Fatalf("%q", data)
	}
}

func TestElToritoAndHybrid(t *testing.T) {
	tree := makeTree(t)
	boot := filepath.Join(tree, "boot.img")
	os.WriteFile(boot, bytes.Repeat([]byte{0xb0}, 4096), 0o644)
	mbr := filepath.Join(t.TempDir(), "mbr.bin")
	// xorriso accepts any 432-byte MBR boot code as an isohybrid template;
	// the partition table it writes is what matters here.
	os.WriteFile(mbr, make([]byte, 432), 0o644)
	cases := []struct {
		name      string
		args      []string
		mbr, gpt  bool
		emulation string
		platforms []string
	}{
		{"bios", []string{"-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4"}, false, false, "none", []string{"x86"}},
		{"isohybrid", []string{"-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4", "-isohybrid-mbr", mbr}, true, false, "none", []string{"x86"}},
		{"isohybrid-gpt-efi", []string{"-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4", "-isohybrid-mbr", mbr,
			"-eltorito-alt-boot", "-e", "boot.img", "-no-emul-boot", "-isohybrid-gpt-basdat"}, true, true, "none", []string{"x86", "UEFI"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iso := xorrisoISO(t, tree, append([]string{"-R", "-J", "-V", "BOOTME"}, c.args...)...)
			img, err := formats.Open(context.Background(), iso, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Format() != "iso" {
				t.Fatalf("probed as %s", img.Format())
			}
			d := specific(t, img)
			if d.VolumeID != "BOOTME" || d.HybridMBR != c.mbr || d.HybridGPT != c.gpt {
				t.Fatalf("info %+v", d)
			}
			var platforms []string
			for _, b := range d.ElTorito {
				platforms = append(platforms, b.Platform)
				if b.Emulation != c.emulation || !b.Bootable {
					t.Errorf("boot entry %+v", b)
				}
				if b.Platform == "x86" && b.LoadSectors != 4 {
					t.Errorf("load size %v", b.LoadSectors)
				}
			}
			if diff := cmp.Diff(c.platforms, platforms); diff != "" {
				t.Errorf("platforms (-want +got):\n%s", diff)
			}
			// As a disk it reads the file's bytes.
			want, _ := os.ReadFile(iso)
			got := make([]byte, len(want))
			if _, err := img.ReadAt(got, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("bytes differ")
			}
		})
	}
}

// TestRawCompatible: "-f raw" on an ISO is allowed; "iso" on a raw-looking
// file is refused by Open. As a disk, an ISO (here with a hole after the
// volume) has the size, map and bytes qemu-img gives it as a raw file.
func TestRawCompatible(t *testing.T) {
	iso := xorrisoISO(t, makeTree(t), "-R")
	st, err := os.Stat(iso)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(iso, st.Size()+1<<20); err != nil {
		t.Fatal(err)
	}
	d, err := formats.Lookup("iso")
	if err != nil || !d.RawCompatible {
		t.Fatal("iso driver not raw-compatible")
	}
	if _, err := OpenImage(context.Background(), fileio.NewMem("zeros", make([]byte, 64<<10)), formats.OpenOptions{}); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("zeros opened as ISO: %v", err)
	}
	asRaw, err := formats.Open(context.Background(), iso, formats.OpenOptions{Format: "raw"})
	if err != nil {
		t.Fatalf("-f raw on an ISO: %v", err)
	}
	if asRaw.Format() != "raw" {
		t.Fatalf("-f raw opened %s", asRaw.Format())
	}
	asRaw.Close()
	img, err := formats.Open(context.Background(), iso, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "iso" {
		t.Fatalf("probed as %s", img.Format())
	}
	info := qemutest.Info(t, "raw", iso)
	if info["virtual-size"] != float64(img.Size()) {
		t.Errorf("qemu-img virtual-size %v, vdisk %d", info["virtual-size"], img.Size())
	}
	var qemuMap []struct {
		Start, Length int64
		Data          bool
	}
	if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "--output=json", "-f", "raw", iso)), &qemuMap); err != nil {
		t.Fatal(err)
	}
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != len(qemuMap) || len(exts) < 2 {
		t.Fatalf("vdisk has %d extents, qemu %d: %+v vs %+v", len(exts), len(qemuMap), exts, qemuMap)
	}
	for i, e := range exts {
		if q := qemuMap[i]; e.Offset != q.Start || e.Length != q.Length || (e.Kind == formats.Data) != q.Data {
			t.Errorf("extent %d: vdisk %+v, qemu %+v", i, e, q)
		}
	}
	if got, want := qemutest.BlockSHA(t, img), qemutest.FileBlockSHA(t, qemutest.ToRaw(t, "raw", iso)); got != want {
		t.Errorf("content digest %s, qemu-img convert %s", got, want)
	}
}

// TestRelocatedDirectory: xorriso without deep paths moves a directory
// nested deeper than 8 levels to the root (Rock Ridge RE there, CL where it
// belongs); the listing and extraction show it in its place, as xorriso does.
func TestRelocatedDirectory(t *testing.T) {
	src := filepath.Join(t.TempDir(), "deep")
	deep := filepath.Join(src, "a/b/c/d/e/f/g/h/i")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(deep, "deep.txt"), []byte("deep\n"), 0o644)
	iso := filepath.Join(t.TempDir(), "deep.iso")
	run(t, "xorriso", "-compliance", "deep_paths_off", "-outdev", iso, "-map", src, "/")
	fsys := openFS(t, iso)
	// Without Rock Ridge the moved directory is at the root.
	plain := *fsys
	plain.rockRidge = false
	top, err := plain.Entries("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range top {
		names = append(names, strings.ToLower(e.Name))
	}
	if !slices.Contains(names, "h") {
		t.Fatalf("no relocated directory at the root: %v", names)
	}
	if diff := cmp.Diff(xorrisoList(t, iso), ourList(t, fsys, false)); diff != "" {
		t.Errorf("listing vs xorriso -find (-xorriso +vdisk):\n%s", diff)
	}
	ours := filepath.Join(t.TempDir(), "ours")
	if err := fsys.Extract(context.Background(), "/", ours); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(treeDigest(t, src), treeDigest(t, ours)); diff != "" {
		t.Errorf("extracted tree vs source (-source +vdisk):\n%s", diff)
	}
}
