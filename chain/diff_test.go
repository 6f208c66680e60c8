package chain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

func openRO(t *testing.T, path string) formats.Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// ownGrains is the bytes of path's own layer by qemu-img map, each extent
// widened to 64 KiB grains.
func ownGrains(t *testing.T, path string) int64 {
	var exts []struct {
		Start, Length int64
		Depth         int
	}
	if err := json.Unmarshal([]byte(mapJSON(t, path)), &exts); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range exts {
		if e.Depth == 0 {
			lo, hi := e.Start/(64<<10)*(64<<10), (e.Start+e.Length+64<<10-1)/(64<<10)*(64<<10)
			n += hi - lo
		}
	}
	return n
}

// requireDifference checks the view's extents against the bytes: a grain
// reported Unallocated reads the same in src and base, any other differs.
func requireDifference(t *testing.T, d *chain.Difference, src, base formats.Image) {
	t.Helper()
	exts, err := d.Extents(0, src.Size())
	if err != nil {
		t.Fatal(err)
	}
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	for _, e := range exts {
		for off := e.Offset; off < e.End(); off += int64(len(a)) {
			n := min(int64(len(a)), e.End()-off)
			src.ReadAt(a[:n], off)
			base.ReadAt(b[:n], off)
			if same := bytes.Equal(a[:n], b[:n]); same != (e.Kind == formats.Unallocated) {
				t.Fatalf("grain at %d: reported %v but src and base equal=%v", off, e.Kind, same)
			}
		}
	}
}

// TestDifferenceSkipsTheBaseLayer: with base a layer of src's own chain
// (top.qcow2 over old.qcow2), the view reads only the grains top.qcow2
// allocates (qemu-img map), in both images, and reports exactly the
// grains that differ.
func TestDifferenceSkipsTheBaseLayer(t *testing.T) {
	dir := chainFixture(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	top, old := openRO(t, p("top.qcow2")), openRO(t, p("old.qcow2"))
	d := chain.NewDifference(top, old, p("old.qcow2"), 0)
	requireDifference(t, d, top, old)
	own := ownGrains(t, p("top.qcow2"))
	if got := d.ReadBytes(); got == 0 || got > 2*own {
		t.Fatalf("read %d bytes to compare; top.qcow2 allocates %d bytes of grains (at most twice that may be read)", got, own)
	}
}

// TestDifferenceSkipsZerosInBoth: two sparse raw files that hold data only
// in their first 64 KiB: the view reads only the first 2 MiB chunk of each.
func TestDifferenceSkipsZerosInBoth(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	for i, name := range []string{"a.raw", "b.raw"} {
		qemutest.Img(t, "create", "-f", "raw", p(name), "64M")
		qemutest.IO(t, "raw", p(name), "write -P 0x11 0 64k", "write -P "+string(rune('1'+i))+" 8k 4k")
	}
	a, b := openRO(t, p("a.raw")), openRO(t, p("b.raw"))
	d := chain.NewDifference(a, b, "", 0)
	requireDifference(t, d, a, b)
	if got := d.ReadBytes(); got != 2*(2<<20) {
		t.Fatalf("read %d bytes to compare, want only the first chunk of each (%d)", got, 2*(2<<20))
	}
}
