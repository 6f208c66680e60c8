package fat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys"
	"github.com/vdiskio/vdisk/fsys/fat"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// sourceTree writes the files every FAT test image holds.
func sourceTree(t *testing.T) string {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"readme.txt":                       []byte("hello, FAT\n"),
		"A long file name with spaces.txt": bytes.Repeat([]byte("long name content "), 700),
		"Ünïcode ñame.txt":                 []byte("unicode\n"),
		"empty.dat":                        nil,
		"UPPER.TXT":                        []byte("upper\n"),
		"sub/deeper/file.bin":              random(100_000),
	}
	for i := 0; i < 150; i++ {
		files[fmt.Sprintf("many/file number %03d.txt", i)] = []byte(fmt.Sprint(i))
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(qemutest.Tool(t, name), args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// makeFAT formats a FAT volume of the given width and copies the tree in
// with mcopy.
func makeFAT(t *testing.T, bits int, size int64, src string) string {
	img := filepath.Join(t.TempDir(), "fat.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.fat", "-F", fmt.Sprint(bits), "-n", "VDISKTEST", img)
	ents, _ := os.ReadDir(src)
	args := []string{"-s", "-i", img}
	for _, e := range ents {
		args = append(args, filepath.Join(src, e.Name()))
	}
	run(t, "mcopy", append(args, "::")...)
	return img
}

// tree lists path -> content ("dir" for directories) of a file system.
func tree(t *testing.T, fsys fs.FS) map[string]string {
	out := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if d.IsDir() {
			out[p] = "dir"
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// openVolume reads the image into memory (fstest reads a few bytes at a
// time) and opens it.
func openVolume(t *testing.T, img string) *fat.Volume {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fat.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMatchesMtools(t *testing.T) {
	src := sourceTree(t)
	for _, c := range []struct {
		bits int
		size int64
	}{{12, 4 << 20}, {16, 32 << 20}, {32, 64 << 20}} {
		t.Run(fmt.Sprintf("FAT%d", c.bits), func(t *testing.T) {
			img := makeFAT(t, c.bits, c.size, src)
			v := openVolume(t, img)
			if int(v.Type) != c.bits || v.Label != "VDISKTEST" {
				t.Errorf("type %s label %q", v.Type, v.Label)
			}
			// mtools extracts the tree; vdisk must list and read the same.
			out := filepath.Join(t.TempDir(), "out")
			os.Mkdir(out, 0o755)
			run(t, "mcopy", "-s", "-n", "-i", img, "::*", out)
			want := tree(t, os.DirFS(out))
			if diff := cmp.Diff(want, tree(t, v)); diff != "" {
				t.Errorf("tree differs from mcopy's extraction (-mtools +vdisk):\n%.2000s", diff)
			}
			if len(want) < 150 {
				t.Fatalf("mcopy extracted only %d entries", len(want))
			}
			if err := fstest.TestFS(v, "readme.txt", "sub/deeper/file.bin", "many/file number 149.txt"); err != nil {
				t.Error(err)
			}
			// Case-insensitive lookup, as FAT names are.
			if b, err := fs.ReadFile(v, "README.TXT"); err != nil || string(b) != "hello, FAT\n" {
				t.Errorf("README.TXT: %q %v", b, err)
			}
		})
	}
}

// A FAT chain that loops, and one that leaves the volume, are errors.
func TestHostileChains(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "big.bin"), bytes.Repeat([]byte{7}, 64<<10), 0o644)
	img := makeFAT(t, 16, 32<<20, src)
	v := openVolume(t, img)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// Find big.bin's first cluster, then make its second entry point back.
	if _, err := fs.Stat(v, "big.bin"); err != nil {
		t.Fatal(err)
	}
	fatOff := int64(b[14]) | int64(b[15])<<8
	fatOff *= 512
	first := firstCluster(t, b, v)
	patch := func(c uint32, val uint16) []byte {
		d := bytes.Clone(b)
		d[fatOff+int64(2*c)] = byte(val)
		d[fatOff+int64(2*c)+1] = byte(val >> 8)
		return d
	}
	for name, d := range map[string][]byte{
		"loop":         patch(first+1, uint16(first)),
		"out of range": patch(first+1, 0xFFF0),
		"free":         patch(first+1, 0),
	} {
		t.Run(name, func(t *testing.T) {
			vv, err := fat.Open(bytes.NewReader(d), int64(len(d)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fs.ReadFile(vv, "big.bin"); !errors.Is(err, formats.ErrCorrupt) {
				t.Errorf("read: %v, want ErrCorrupt", err)
			}
		})
	}
	// A BPB claiming more sectors than the volume has.
	d := bytes.Clone(b)
	d[19], d[20] = 0, 0
	d[32], d[33], d[34], d[35] = 0, 0, 0, 0x10
	if _, err := fat.Open(bytes.NewReader(d), int64(len(d))); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("oversized BPB: %v", err)
	}
	if _, err := fat.Open(bytes.NewReader(make([]byte, 4096)), 4096); !errors.Is(err, fat.ErrNotFAT) {
		t.Errorf("zeros: %v", err)
	}
}

// firstCluster finds the root entry BIG.BIN in a FAT16 image's fixed root.
func firstCluster(t *testing.T, b []byte, v *fat.Volume) uint32 {
	idx := bytes.Index(b, []byte("BIG     BIN"))
	if idx < 0 {
		t.Fatal("no BIG.BIN entry")
	}
	return uint32(b[idx+26]) | uint32(b[idx+27])<<8
}

func FuzzOpen(f *testing.F) {
	// Inputs are patches (fuzzpatch) over small FAT12 volumes made in code
	// by mkfs.fat when present, and a hand-made boot sector: a whole
	// 64 KiB volume as the input is minimised for a minute each time the
	// fuzzer finds new coverage.
	boot := make([]byte, 64<<10)
	copy(boot, []byte{0xEB, 0x3C, 0x90})
	boot[11], boot[12], boot[13], boot[14], boot[16], boot[17], boot[19], boot[20], boot[22] = 0, 2, 1, 1, 2, 16, 128, 0, 1
	boot[510], boot[511] = 0x55, 0xAA
	bases := [][]byte{boot}
	if mk, err := exec.LookPath("mkfs.fat"); err == nil {
		p := filepath.Join(f.TempDir(), "seed.img")
		os.WriteFile(p, make([]byte, 64<<10), 0o644)
		if out, err := exec.Command(mk, "-F", "12", p).CombinedOutput(); err != nil {
			f.Fatalf("mkfs.fat: %v %s", err, out)
		}
		seed, _ := os.ReadFile(p)
		bases = append(bases, seed)
	}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		d := fuzzpatch.Apply(bases, input)
		v, err := fat.Open(bytes.NewReader(d), int64(len(d)))
		if err != nil {
			return
		}
		fs.WalkDir(v, ".", func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				fs.ReadFile(v, p)
			}
			if strings.Count(p, "/") > 64 {
				return fs.SkipAll
			}
			return nil
		})
	})
}

// A subdirectory whose cluster is its parent's makes a loop: walking it
// with fsys.Walk ends in an error, not an endless (or exponential) descent.
func TestDirectoryLoop(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.MkdirAll(filepath.Join(src, "a", "c"), 0o755)
	img := makeFAT(t, 16, 32<<20, src)
	b, _ := os.ReadFile(img)
	// Point A's subdirectories B and C at A's own cluster.
	aEntry := bytes.Index(b, []byte("A          \x10"))
	if aEntry < 0 {
		t.Fatal("no entry for A")
	}
	aCluster := b[aEntry+26 : aEntry+28]
	for _, name := range []string{"B          \x10", "C          \x10"} {
		i := bytes.Index(b, []byte(name))
		if i < 0 {
			t.Fatalf("no entry %q", name)
		}
		copy(b[i+26:i+28], aCluster)
	}
	v, err := fat.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	err = fsys.Walk(context.Background(), v, ".", func(fsys.Entry) error { return nil })
	if !errors.Is(err, fsys.ErrLoop) {
		t.Errorf("walk of a looping tree: %v", err)
	}
}
