package qcow2

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// qemuBitmaps is the "bitmaps" of qemu-img info's format-specific data.
func qemuBitmaps(t *testing.T, path string, extra ...string) []any {
	t.Helper()
	out := qemutest.Img(t, append(append([]string{"info", "--output=json", "-f", "qcow2"}, extra...), path)...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("qemu-img info: %v: %s", err, out)
	}
	bms, _ := m["format-specific"].(map[string]any)["data"].(map[string]any)["bitmaps"].([]any)
	return bms
}

func ranges(rs ...int64) [][2]int64 {
	var out [][2]int64
	for i := 0; i+1 < len(rs); i += 2 {
		out = append(out, [2]int64{rs[i], rs[i+1]})
	}
	return out
}

// TestBitmapsJudgedByQemu: vdisk reads the bitmaps qemu marks, and qemu
// (qemu-nbd's dirty-bitmap export, read by nbdinfo) reads the bitmaps vdisk
// adds, marks by writing, merges and clears; qemu-img info lists names,
// granularities and flags (in-use while vdisk has the image open for
// writing) and check stays clean.
func TestBitmapsJudgedByQemu(t *testing.T) {
	qemutest.Tool(t, "nbdinfo")
	dir := t.TempDir()
	path := filepath.Join(dir, "b.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "4M")
	qemutest.Img(t, "bitmap", "--add", path, "q1")
	qemutest.IO(t, "qcow2", path, "write -P 1 100k 8k", "write -P 2 1M 200k")
	qemuQ1 := qemutest.DirtyRanges(t, path, "q1")

	f, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open(context.Background(), f, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	list, err := img.ReadBitmaps()
	if err != nil || len(list) != 1 || list[0].Granularity != 65536 || !list[0].Enabled {
		t.Fatalf("bitmaps qemu made: %v %+v", err, list)
	}
	if d := cmp.Diff(qemuQ1, list[0].Marked(img.Size())); d != "" {
		t.Fatalf("q1 as vdisk reads it vs qemu (-qemu +vdisk):\n%s", d)
	}
	if err := img.AddBitmap("v1", 0, true); err != nil {
		t.Fatal(err)
	}
	if err := img.AddBitmap("v2", 4096, false); err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt(bytes.Repeat([]byte{7}, 5000), 2<<20+100); err != nil {
		t.Fatal(err)
	}
	if err := img.WriteZeroes(3<<20, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := img.Flush(); err != nil {
		t.Fatal(err)
	}
	// Open for writing and written: qemu sees the enabled bitmaps in use.
	open := fmt.Sprint(qemuBitmaps(t, path, "-U"))
	if want := "[map[flags:[in-use auto] granularity:65536 name:q1] map[flags:[in-use auto] granularity:65536 name:v1] map[flags:[] granularity:4096 name:v2]]"; open != want {
		t.Fatalf("qemu-img info while open:\n got %s\nwant %s", open, want)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "vdisk writes with bitmaps", path)
	closed := fmt.Sprint(qemuBitmaps(t, path))
	if want := "[map[flags:[auto] granularity:65536 name:q1] map[flags:[auto] granularity:65536 name:v1] map[flags:[] granularity:4096 name:v2]]"; closed != want {
		t.Fatalf("qemu-img info after close:\n got %s\nwant %s", closed, want)
	}
	vdiskWrites := ranges(2<<20, 64<<10, 3<<20, 64<<10)
	if d := cmp.Diff(vdiskWrites, qemutest.DirtyRanges(t, path, "v1")); d != "" {
		t.Fatalf("v1 as qemu reads it (-want +qemu):\n%s", d)
	}
	if d := cmp.Diff(ranges(64<<10, 64<<10, 1<<20, 256<<10, 2<<20, 64<<10, 3<<20, 64<<10), qemutest.DirtyRanges(t, path, "q1")); d != "" {
		t.Fatalf("q1 after vdisk's writes (-want +qemu):\n%s", d)
	}
	if got := qemutest.DirtyRanges(t, path, "v2"); len(got) != 0 {
		t.Fatalf("disabled v2 was marked: %v", got)
	}

	// Merge q1 into v2 (64 KiB ranges into a 4 KiB bitmap), clear v1,
	// remove q1.
	err = withWritable(t, path, func(img *Image) error {
		list, err := img.ReadBitmaps()
		if err != nil {
			return err
		}
		if err := img.MergeBitmap("v2", list[0], img.Size()); err != nil {
			return err
		}
		if err := img.ClearBitmap("v1"); err != nil {
			return err
		}
		return img.RemoveBitmap("q1")
	})
	if err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "merge, clear, remove", path)
	if d := cmp.Diff(ranges(64<<10, 64<<10, 1<<20, 256<<10, 2<<20, 64<<10, 3<<20, 64<<10), qemutest.DirtyRanges(t, path, "v2")); d != "" {
		t.Fatalf("v2 after merge (-want +qemu):\n%s", d)
	}
	if got := qemutest.DirtyRanges(t, path, "v1"); len(got) != 0 {
		t.Fatalf("cleared v1: %v", got)
	}
	if got := fmt.Sprint(qemuBitmaps(t, path)); got != "[map[flags:[auto] granularity:65536 name:v1] map[flags:[] granularity:4096 name:v2]]" {
		t.Fatalf("after remove: %s", got)
	}
	// Removing the last bitmaps leaves an image without the extension.
	err = withWritable(t, path, func(img *Image) error {
		if err := img.RemoveBitmap("v1"); err != nil {
			return err
		}
		return img.RemoveBitmap("v2")
	})
	if err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "removing every bitmap", path)
	if got := qemuBitmaps(t, path); got != nil {
		t.Fatalf("bitmaps left: %v", got)
	}
}

// FuzzBitmapDirectory parses hostile bitmap directories: no panic, and a
// directory that parses encodes and parses back to the same entries.
func FuzzBitmapDirectory(f *testing.F) {
	var seed []byte
	seed = encodeBitmapEntry(seed, 0x30000, 1, bitmapAuto, 16, "b1")
	seed = encodeBitmapEntry(seed, 0x40000, 2, 0, 12, "second bitmap")
	f.Add(seed, uint32(2))
	f.Add(seed[:24], uint32(1))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, dir []byte, n uint32) {
		if n > 256 {
			return
		}
		ents, err := parseBitmapDirectory("fuzz", dir, 0, n)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range ents {
			again = encodeBitmapEntry(again, e.tableOff, e.tableSize, e.flags, e.granBits, e.name)
		}
		back, err := parseBitmapDirectory("fuzz", again, 0, n)
		if err != nil {
			t.Fatalf("re-encoded directory does not parse: %v", err)
		}
		for i := range ents {
			a, b := ents[i], back[i]
			if a.name != b.name || a.tableOff != b.tableOff || a.tableSize != b.tableSize || a.flags != b.flags || a.granBits != b.granBits {
				t.Fatalf("entry %d changed: %+v -> %+v", i, a, b)
			}
		}
	})
}
