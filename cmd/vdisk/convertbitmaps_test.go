package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestConvertBitmapExport is the changed-block-tracking workflow: a full
// copy, a bitmap qemu marks as the disk is written, then `convert --bitmap
// NAME -B FULL`: the increment over the full copy reads as the disk
// (qemu-img compare), and it holds data only inside the ranges the bitmap
// marks (qemu-img map), even where the full copy differs from the disk
// outside them (a change made while the bitmap was disabled).
func TestConvertBitmapExport(t *testing.T) {
	t.Parallel()
	qemutest.Tool(t, "nbdinfo")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "qcow2", p("disk.qcow2"), "8M")
	qemutest.IO(t, "qcow2", p("disk.qcow2"), "write -P 1 0 3M")
	qemutest.Img(t, "bitmap", "--add", p("disk.qcow2"), "b1")
	if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", p("disk.qcow2"), p("full.qcow2")); code != 0 {
		t.Fatal(stderr)
	}
	qemutest.IO(t, "qcow2", p("disk.qcow2"), "write -P 2 1M 100k", "write -P 3 6M 64k", "write -z 0 64k")
	qemutest.Img(t, "bitmap", "--disable", p("disk.qcow2"), "b1")
	qemutest.IO(t, "qcow2", p("disk.qcow2"), "write -P 4 4M 64k") // not marked
	marked := qemutest.DirtyRanges(t, p("disk.qcow2"), "b1")
	if _, stderr, code := vdisk(t, "convert", "--bitmap", "b1", "-B", "full.qcow2", "-F", "qcow2", "-O", "qcow2", p("disk.qcow2"), p("inc.qcow2")); code != 0 {
		t.Fatal(stderr)
	}
	qemutest.RequireClean(t, "qcow2", p("inc.qcow2"))
	var m []struct {
		Start, Length int64
		Depth         int
	}
	if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "--output=json", p("inc.qcow2"))), &m); err != nil {
		t.Fatal(err)
	}
	var own [][2]int64
	for _, e := range m {
		if e.Depth == 0 {
			own = append(own, [2]int64{e.Start, e.Length})
		}
	}
	if d := cmp.Diff(marked, own); d != "" {
		t.Fatalf("the increment's own ranges vs the bitmap's (-bitmap +increment):\n%s", d)
	}
	// Outside the marks the increment reads the full copy: the unmarked
	// change is not in it, the marked ones are.
	if r := qemutest.Compare(t, "qcow2", p("inc.qcow2"), "qcow2", p("disk.qcow2")); r.Code != 1 {
		t.Fatalf("the unmarked change reached the increment: compare exit %d %s", r.Code, r.Stdout)
	}
	qemutest.IO(t, "qcow2", p("inc.qcow2"), "write -P 4 4M 64k")
	qemutest.RequireSame(t, "qcow2", p("inc.qcow2"), "qcow2", p("disk.qcow2"))

	// --bitmaps carries the bitmap (name, granularity, flags, marks).
	if _, stderr, code := vdisk(t, "convert", "--bitmaps", "-O", "qcow2", p("disk.qcow2"), p("copy.qcow2")); code != 0 {
		t.Fatal(stderr)
	}
	qemutest.RequireClean(t, "qcow2", p("copy.qcow2"))
	bms := func(path string) any {
		return qemutest.Info(t, "qcow2", path)["format-specific"].(map[string]any)["data"].(map[string]any)["bitmaps"]
	}
	if d := cmp.Diff(bms(p("disk.qcow2")), bms(p("copy.qcow2"))); d != "" {
		t.Fatalf("bitmaps after convert --bitmaps (-source +copy):\n%s", d)
	}
	if d := cmp.Diff(marked, qemutest.DirtyRanges(t, p("copy.qcow2"), "b1")); d != "" {
		t.Fatalf("copied bitmap's marks (-source +copy):\n%s", d)
	}
	if _, _, code := vdisk(t, "convert", "--bitmap", "nope", "-B", "full.qcow2", "-O", "qcow2", p("disk.qcow2"), p("x.qcow2")); code != 1 {
		t.Fatalf("--bitmap of a missing bitmap: exit %d", code)
	}
}
