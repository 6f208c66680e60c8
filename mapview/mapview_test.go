package mapview_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/mapview"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
)

const mib = 1 << 20

// chain makes base.qcow2 (data at 0-1M, a zero cluster run at 4-5M) under
// top.qcow2 (data at 8-9M), 16 MiB, with qemu-img and qemu-io.
func chain(t *testing.T) (string, string) {
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", base, "16M")
	qemutest.IO(t, "qcow2", base, "write -P 0x11 0 1M", "write -z 4M 1M")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	qemutest.IO(t, "qcow2", top, "write -P 0x22 8M 1M")
	return base, top
}

// qemuTotals sums qemu-img map's JSON per class, as mapview classifies.
func qemuTotals(t *testing.T, path string, layers int) []int64 {
	var ranges []struct {
		Length  int64 `json:"length"`
		Depth   int   `json:"depth"`
		Present bool  `json:"present"`
		Zero    bool  `json:"zero"`
		Data    bool  `json:"data"`
	}
	out := qemutest.Img(t, "map", "--output=json", path)
	if err := json.Unmarshal([]byte(out), &ranges); err != nil {
		t.Fatal(err)
	}
	totals := make([]int64, int(mapview.Data)+layers)
	for _, r := range ranges {
		switch {
		case r.Present && r.Data:
			totals[mapview.Layer(r.Depth)] += r.Length
		case r.Present && r.Zero:
			totals[mapview.Zero] += r.Length
		default:
			totals[mapview.Unallocated] += r.Length
		}
	}
	return totals
}

func open(t *testing.T, path string) formats.Image {
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func TestBuildMatchesQemuMap(t *testing.T) {
	_, top := chain(t)
	img := open(t, top)
	m, err := mapview.Build(context.Background(), img, []string{"top.qcow2", "base.qcow2"}, 4, 16)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(qemuTotals(t, top, 2), m.Totals); diff != "" {
		t.Errorf("totals differ from qemu-img map (-qemu +vdisk):\n%s", diff)
	}
	// 64 cells of 256 KiB: the written ranges, as qemu-io wrote them.
	want := func(off int64) mapview.Class {
		switch {
		case off < 1*mib:
			return mapview.Layer(1)
		case off >= 4*mib && off < 5*mib:
			return mapview.Zero
		case off >= 8*mib && off < 9*mib:
			return mapview.Layer(0)
		}
		return mapview.Unallocated
	}
	for i := 0; i < 64; i++ {
		lo, hi := m.CellRange(i)
		if hi-lo != 256<<10 {
			t.Fatalf("cell %d covers %d-%d", i, lo, hi)
		}
		if got := m.Cell(i); got != want(lo) {
			t.Errorf("cell %d (offset %d) shows class %d, want %d", i, lo, got, want(lo))
		}
	}
}

// A single written sector in a huge cell still shows as data.
func TestSmallDataVisible(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", p, "1G")
	qemutest.IO(t, "qcow2", p, "write -P 1 700M 512")
	m, err := mapview.Build(context.Background(), open(t, p), nil, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []mapview.Class
	for i := 0; i < 10; i++ {
		got = append(got, m.Cell(i))
	}
	u, d := mapview.Unallocated, mapview.Layer(0)
	if diff := cmp.Diff([]mapview.Class{u, u, u, u, u, u, d, u, u, u}, got); diff != "" {
		t.Errorf("cells (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(qemuTotals(t, p, 1), m.Totals); diff != "" {
		t.Errorf("totals differ from qemu-img map:\n%s", diff)
	}
}

// Cells tile an odd-sized disk exactly.
func TestCellsTile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "odd.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", p, "1000003")
	img := open(t, p)
	m, err := mapview.Build(context.Background(), img, nil, 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	for i := 0; i < 21; i++ {
		lo, hi := m.CellRange(i)
		if lo != next || hi <= lo {
			t.Fatalf("cell %d is %d-%d after %d", i, lo, hi, next)
		}
		next = hi
	}
	if next != img.Size() || next%7 == 0 {
		t.Fatalf("cells end at %d", next)
	}
	if _, err := mapview.Build(context.Background(), open(t, p), nil, 0, 7); err != mapview.ErrBadGeometry {
		t.Fatalf("0 rows: %v", err)
	}
}

func TestRenderings(t *testing.T) {
	_, top := chain(t)
	m, err := mapview.Build(context.Background(), open(t, top), []string{"top.qcow2", "base.qcow2"}, 4, 16)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := m.Render(&text, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(text.String(), "\n")
	// Row 0 covers 0-4M: 4 cells of base data, 12 unallocated; row 1 has the
	// zero run at 4-5M; row 2 the top layer's data at 8-9M.
	for i, want := range []string{"▓▓▓▓············", "░░░░············", "████············", "················"} {
		if !strings.Contains(lines[i], "│"+want+"│") {
			t.Errorf("row %d = %q, want cells %q", i, lines[i], want)
		}
	}
	for _, want := range []string{"data in layer 0 (top.qcow2)", "data in layer 1 (base.qcow2)", "1.0 MiB", "zero", "unallocated"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("legend lacks %q:\n%s", want, text.String())
		}
	}
	var svg bytes.Buffer
	if err := m.SVG(&svg, "top <chain>"); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil {
		t.Errorf("SVG is not well-formed XML: %v", err)
	}
	if n := strings.Count(svg.String(), "<rect "); n != 64+4 {
		t.Errorf("SVG has %d rects, want 64 cells + 4 legend keys", n)
	}
	var pic bytes.Buffer
	if err := m.PNG(&pic, 3); err != nil {
		t.Fatal(err)
	}
	decoded, err := png.Decode(&pic)
	if err != nil {
		t.Fatal(err)
	}
	if b := decoded.Bounds(); b.Dx() != 48 || b.Dy() != 12 {
		t.Errorf("PNG is %v, want 48x12", b)
	}
	// The top-left pixel is base data, the pixel of cell 32 (8M) is top data.
	if decoded.At(0, 0) == decoded.At(0, 6) {
		t.Errorf("layer 1 and layer 0 cells have the same colour")
	}
}
