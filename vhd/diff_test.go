package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/internal/zero"
)

// createChild makes a differencing disk at path over backing (a name
// relative to path's directory, or absolute).
func createChild(t testing.TB, path, backing string, size int64, opts string) (*Image, error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Set("backing_file", backing); err != nil {
		t.Fatal(err)
	}
	img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o})
	if err != nil {
		f.Close()
	}
	return img, err
}

// childWrites exercise whole and partial sectors, in allocated and new
// blocks, across a block boundary.
var childWrites = []write{
	{100, []byte("partial sector over the parent")},
	{2<<20 - 10, bytes.Repeat([]byte{0xC1}, 20)}, // across blocks 0/1
	{3 << 20, bytes.Repeat([]byte{0xC2}, 8192)},  // whole sectors
	{5<<20 + 1000, []byte{0xC3}},                 // one byte in an unallocated block
	{6 << 20, bytes.Repeat([]byte{0xC4}, 1<<20)}, // large
}

// diffSetup makes base.vhd (with patternFor data) and child.vhd over it
// with childWrites, and returns the directory and the expected content.
func diffSetup(t *testing.T, baseOpts string) (dir string, want []byte) {
	t.Helper()
	dir = t.TempDir()
	const size = 8 << 20
	base := create(t, filepath.Join(dir, "base.vhd"), size, baseOpts)
	ws := patternFor(size, 7)
	apply(t, base, ws)
	finish(t, base)
	want = make([]byte, size)
	for _, w := range append(ws, childWrites...) {
		copy(want[w.off:], w.data)
	}
	child, err := createChild(t, filepath.Join(dir, "child.vhd"), "base.vhd", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if child.Size() != size {
		t.Fatalf("child size %d", child.Size())
	}
	apply(t, child, childWrites)
	// Reads through the open writer see base+changes too.
	if got := readAll(t, child, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("open child differs at %d", firstDiff(got, want))
	}
	finish(t, child)
	return dir, want
}

func TestDifferencing(t *testing.T) {
	for _, baseOpts := range []string{"force_size=on", "subformat=fixed,force_size=on"} {
		t.Run(baseOpts, func(t *testing.T) {
			dir, want := diffSetup(t, baseOpts)
			child := openPath(t, filepath.Join(dir, "child.vhd"), formats.OpenOptions{})
			if got := readAll(t, child, 65536+3); !bytes.Equal(got, want) {
				t.Fatalf("child differs at %d", firstDiff(got, want))
			}
			if child.Backing() == nil || child.BackingName() != "base.vhd" || child.BackingFormat() != "vpc" {
				t.Errorf("backing %v %q", child.Backing(), child.BackingName())
			}
			// BlockSHA walks ChainExtents: sector-granular extents must
			// send each range to the right layer.
			raw := filepath.Join(dir, "want.raw")
			os.WriteFile(raw, want, 0o644)
			if qemutest.BlockSHA(t, child) != qemutest.FileBlockSHA(t, raw) {
				t.Errorf("chain digest differs")
			}
			exts, err := child.Extents(0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			// The first 4 KiB (the unit of a bitmap byte) is in the child,
			// the rest of the first MiB is not.
			if len(exts) != 2 || exts[0].Kind != formats.Data || exts[0].Length != diffUnitBytes || exts[1].Kind != formats.Unallocated {
				t.Errorf("extents %+v", exts)
			}
			info := child.Info()
			if v := fieldOf(info.Details, "parent-timestamp-match"); v != true {
				t.Errorf("parent timestamp match %v", v)
			}
			requireVhdiinfo(t, filepath.Join(dir, "child.vhd"))
		})
	}
}

// fieldOf is the value of key in the info details d, as info reports it.
func fieldOf(d any, key string) any {
	for _, f := range imageinfo.Ordered(d).(imageinfo.Object) {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

func TestDifferencingOverQemuBase(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vhd")
	qemutest.Img(t, "create", "-q", "-f", "vpc", base, "10M")
	qemutest.IO(t, "vpc", base, "write -P 0x5a 0 10M")
	child, err := createChild(t, filepath.Join(dir, "c.vhd"), "base.vhd", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if child.Size() != 10514432 {
		t.Errorf("child size %d", child.Size())
	}
	apply(t, child, []write{{4096, []byte("changed")}})
	finish(t, child)
	img := openPath(t, filepath.Join(dir, "c.vhd"), formats.OpenOptions{})
	got := readAll(t, img, 1<<20)
	want := bytes.Repeat([]byte{0x5a}, 10<<20)
	want = append(want, make([]byte, 10514432-10<<20)...)
	copy(want[4096:], "changed")
	if !bytes.Equal(got, want) {
		t.Fatalf("differs at %d", firstDiff(got, want))
	}
	// The child's own sectors, alone.
	alone := openPath(t, filepath.Join(dir, "c.vhd"), formats.OpenOptions{NoBacking: true})
	buf := make([]byte, 8192)
	alone.ReadAt(buf, 0)
	// The written unit (4 KiB) was completed with the parent's bytes.
	if !zero.Is(buf[:4096]) || string(buf[4096:4103]) != "changed" ||
		!bytes.Equal(buf[4103:], bytes.Repeat([]byte{0x5a}, 8192-4103)) {
		t.Errorf("NoBacking read %q", buf[4090:4110])
	}
}

func TestDifferencingChain(t *testing.T) {
	dir, want := diffSetup(t, "force_size=on")
	gc, err := createChild(t, filepath.Join(dir, "gc.vhd"), "child.vhd", 0, "block_size=512K")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, gc, []write{{0, []byte("grandchild")}})
	finish(t, gc)
	copy(want, "grandchild")
	img := openPath(t, filepath.Join(dir, "gc.vhd"), formats.OpenOptions{})
	if got := readAll(t, img, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("differs at %d", firstDiff(got, want))
	}
	exts, _ := formats.ChainExtents(img, 0, 1<<20)
	// The first unit: the grandchild; the rest of the first MiB: the base
	// (the child only holds the first unit there).
	if len(exts) != 2 || exts[0].Depth != 0 || exts[0].Length != diffUnitBytes || exts[1].Depth != 2 {
		t.Errorf("chain extents %+v", exts)
	}
	_, err = formats.Open(context.Background(), filepath.Join(dir, "gc.vhd"), formats.OpenOptions{Limits: formats.Limits{MaxChainDepth: 1}})
	if !errors.Is(err, formats.ErrLimit) {
		t.Errorf("chain depth limit: %v", err)
	}
}

// editHeader rewrites the dynamic header of the VHD at path (and its
// checksum).
func editHeader(t testing.TB, path string, fn func(h *dynHeader)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, headerSize)
	f.ReadAt(b, footerSize)
	h := decodeHeader(b)
	fn(&h)
	f.WriteAt(h.encode(), footerSize)
}

// locatorPaths returns the decoded locator paths of a differencing disk.
func locatorPaths(t *testing.T, path string) map[string]string {
	t.Helper()
	img := openPath(t, path, formats.OpenOptions{NoBacking: true})
	out := map[string]string{}
	for i, l := range img.hdr.Locators {
		if l.PlatformCode == platNone {
			continue
		}
		b := make([]byte, l.DataLength)
		img.f.ReadAt(b, int64(l.DataOffset))
		out[platformName(l.PlatformCode)] = decodeUTF16(b, binary.LittleEndian)
		if l.DataSpace < l.DataLength || l.DataOffset%sectorSize != 0 {
			t.Errorf("locator %d: %+v", i, l)
		}
	}
	return out
}

func TestParentLocators(t *testing.T) {
	dir, _ := diffSetup(t, "force_size=on")
	child := filepath.Join(dir, "child.vhd")
	locs := locatorPaths(t, child)
	abs, _ := filepath.Abs(filepath.Join(dir, "base.vhd"))
	if locs["W2ru"] != `.\base.vhd` || locs["W2ku"] != strings.ReplaceAll(abs, "/", `\`) {
		t.Errorf("locators %q", locs)
	}

	// Without the relative locator, the absolute one is refused by the
	// default policy, with the flag named; --references=any opens it.
	editHeader(t, child, func(h *dynHeader) { h.Locators[0].PlatformCode = platNone; h.setParentName("") })
	_, err := formats.Open(context.Background(), child, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrReferenceDenied) || !strings.Contains(err.Error(), "--references=any") {
		t.Fatalf("absolute locator: %v", err)
	}
	openPath(t, child, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicyAny}})
	// Strict refuses every parent.
	_, err = formats.Open(context.Background(), child, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicyStrict}})
	if !errors.Is(err, formats.ErrReferenceDenied) {
		t.Fatalf("strict: %v", err)
	}
}

func TestParentLocatorEscapes(t *testing.T) {
	dir, _ := diffSetup(t, "force_size=on")
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	child := filepath.Join(sub, "child.vhd")
	os.Rename(filepath.Join(dir, "child.vhd"), child)
	// The W2ru locator still says .\base.vhd: missing. Point it at
	// ..\base.vhd, which leaves the directory.
	img := openPath(t, child, formats.OpenOptions{NoBacking: true})
	l := img.hdr.Locators[0]
	f, _ := os.OpenFile(child, os.O_RDWR, 0)
	data := encodeUTF16(`..\base.vhd`, binary.LittleEndian)
	f.WriteAt(data, int64(l.DataOffset))
	f.Close()
	editHeader(t, child, func(h *dynHeader) {
		h.Locators[0].DataLength = uint32(len(data))
		h.Locators[1].PlatformCode = platNone
		h.setParentName("")
	})
	_, err := formats.Open(context.Background(), child, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrReferenceDenied) || !strings.Contains(err.Error(), "--references=any") {
		t.Fatalf("..: %v", err)
	}
	openPath(t, child, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicyAny}})
}

func TestParentMismatch(t *testing.T) {
	dir, _ := diffSetup(t, "force_size=on")
	child := filepath.Join(dir, "child.vhd")
	// Timestamp mismatch: opens, and info says so.
	editHeader(t, child, func(h *dynHeader) { h.ParentTimestamp -= 1e6 })
	img := openPath(t, child, formats.OpenOptions{})
	if v := fieldOf(img.Info().Details, "parent-timestamp-match"); v != false {
		t.Errorf("timestamp mismatch not reported: %v", v)
	}
	// A different parent (another UUID) is refused.
	other := create(t, filepath.Join(dir, "base.vhd"), 8<<20, "force_size=on")
	finish(t, other)
	_, err := formats.Open(context.Background(), child, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrCorrupt) || !strings.Contains(err.Error(), "UUID") {
		t.Fatalf("UUID mismatch: %v", err)
	}
	// A parent that is not a VHD.
	os.WriteFile(filepath.Join(dir, "base.vhd"), make([]byte, 8<<20), 0o644)
	if _, err := formats.Open(context.Background(), child, formats.OpenOptions{}); err == nil {
		t.Fatal("raw parent accepted")
	}
}

func TestCreateDifferencingErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := createChild(t, filepath.Join(dir, "c.vhd"), "/etc/passwd", 0, ""); !errors.Is(err, formats.ErrReferenceDenied) {
		t.Errorf("absolute backing: %v", err)
	}
	raw := filepath.Join(dir, "r.raw")
	os.WriteFile(raw, make([]byte, 1<<20), 0o644)
	if _, err := createChild(t, filepath.Join(dir, "c.vhd"), "r.raw", 0, ""); err == nil {
		t.Errorf("raw backing accepted")
	}
	if _, err := createChild(t, filepath.Join(dir, "c.vhd"), "r.raw", 0, "backing_fmt=raw"); !errors.Is(err, formats.ErrUnsupported) {
		t.Errorf("backing_fmt=raw: %v", err)
	}
}

// mountVhdi mounts path with libvhdi's vhdimount (FUSE) and returns the
// file holding the disk as libvhdi reads it (parent included). It skips when
// FUSE or the tool is missing.
func mountVhdi(t *testing.T, path string) string {
	t.Helper()
	bin, err := exec.LookPath("vhdimount")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("vhdimount (libvhdi-utils) or root missing")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command(bin, path, mnt).CombinedOutput(); err != nil {
		t.Skipf("vhdimount: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", mnt, err, out)
		}
	})
	return filepath.Join(mnt, "vhdi2") // vhdi1 is the parent
}

// TestDifferencingLibvhdi: libvhdi, an independent reader, sees the same
// disk through vdisk's differencing VHD (bitmaps, locators, parent UUID).
func TestDifferencingLibvhdi(t *testing.T) {
	dir, want := diffSetup(t, "force_size=on")
	got, err := os.ReadFile(mountVhdi(t, filepath.Join(dir, "child.vhd")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("libvhdi reads the child differently at offset %d (len %d/%d)", firstDiff(got, want), len(got), len(want))
	}
}

// TestDifferencingConcurrentWrites: unaligned, disjoint writes from many
// goroutines into a differencing disk, sharing sectors and bitmap bytes.
func TestDifferencingConcurrentWrites(t *testing.T) {
	dir, want := diffSetup(t, "force_size=on")
	child, err := createChild(t, filepath.Join(dir, "c2.vhd"), "child.vhd", 0, "block_size=64K")
	if err != nil {
		t.Fatal(err)
	}
	const piece = 1234
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for off := w * piece; off+piece <= 3<<20; off += 12 * piece { // every other piece
				b := bytes.Repeat([]byte{byte(w + 1)}, piece)
				if _, err := child.WriteAt(b, int64(off)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for w := 0; w < 6; w++ {
		for off := w * piece; off+piece <= 3<<20; off += 12 * piece {
			copy(want[off:off+piece], bytes.Repeat([]byte{byte(w + 1)}, piece))
		}
	}
	finish(t, child)
	img := openPath(t, filepath.Join(dir, "c2.vhd"), formats.OpenOptions{})
	if got := readAll(t, img, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("differs at %d", firstDiff(got, want))
	}
}
