package qcow2

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// withWritable opens path writable, runs fn and closes it.
func withWritable(t *testing.T, path string, fn func(img *Image) error) error {
	t.Helper()
	f, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open(context.Background(), f, formats.OpenOptions{Writable: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	err = fn(img)
	if cerr := img.Close(); err == nil {
		err = cerr
	}
	return err
}

// qemuSnapshots returns the "snapshots" of qemu-img info.
func qemuSnapshots(t *testing.T, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	if s, ok := qemutest.Info(t, "qcow2", path)["snapshots"].([]any); ok {
		for _, v := range s {
			out = append(out, v.(map[string]any))
		}
	}
	return out
}

// snapshotRaw is qemu-img convert -l spec of path, as bytes.
func snapshotRaw(t *testing.T, path, spec string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "snap.raw")
	qemutest.Img(t, "convert", "-l", spec, "-O", "raw", path, out)
	return readBytes(t, out)
}

func requireCheckClean(t *testing.T, step, path string) {
	t.Helper()
	if r := qemutest.Check(t, "qcow2", path); r.Code != 0 {
		t.Fatalf("after %s: qemu-img check exit %d: %s%s", step, r.Code, r.Stdout, r.Stderr)
	}
}

// TestSnapshotsJudgedByQemu creates, applies and deletes internal
// snapshots with vdisk, among snapshots qemu-img makes, and has qemu-img
// judge each step: check clean, the table as qemu-img info lists it (ids,
// names, dates, disk sizes), a snapshot's content unchanged by later writes
// (qemu-img convert -l), the active layer after apply equal to the
// snapshot, and vdisk reading the snapshots qemu-img made.
func TestSnapshotsJudgedByQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	for _, opts := range []string{"cluster_size=4k", "compat=0.10,cluster_size=4k", "extended_l2=on,cluster_size=16k", "refcount_bits=2,cluster_size=4k"} {
		t.Run(opts, func(t *testing.T) { snapshotScenario(t, opts) })
	}
}

func snapshotScenario(t *testing.T, opts string) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", opts, path, "2M")
	qemutest.IO(t, "qcow2", path, "write -P 0x11 0 600k", "write -P 0x12 1M 64k", "write -z 100k 8k")
	active := readBytes(t, qemutest.ToRaw(t, "qcow2", path))
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := withWritable(t, path, func(img *Image) error { return img.CreateSnapshot("first", at) }); err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "snapshot -c first", path)
	snaps := qemuSnapshots(t, path)
	if len(snaps) != 1 || snaps[0]["id"] != "1" || snaps[0]["name"] != "first" ||
		snaps[0]["date-sec"] != float64(at.Unix()) || snaps[0]["date-nsec"] != float64(123456000) ||
		snaps[0]["vm-state-size"] != float64(0) || snaps[0]["vm-clock-sec"] != float64(0) {
		t.Fatalf("qemu-img info snapshots after create: %v", snaps)
	}
	if got := snapshotRaw(t, path, "first"); !bytes.Equal(got, active) {
		t.Fatalf("snapshot first differs from the active layer it was taken of (at %d)", firstDiff(got, active))
	}

	// Writes after the snapshot: in place candidates, partial clusters,
	// new clusters, zeroes; the snapshot must not change.
	want := append([]byte(nil), active...)
	err := withWritable(t, path, func(img *Image) error {
		for _, w := range []struct {
			off, n int64
			b      byte
		}{{0, 4096, 0x21}, {5000, 3000, 0x22}, {300 << 10, 200 << 10, 0x23}, {1500 << 10, 10000, 0x24}} {
			p := bytes.Repeat([]byte{w.b}, int(w.n))
			copy(want[w.off:], p)
			if _, err := img.WriteAt(p, w.off); err != nil {
				return err
			}
		}
		clear(want[1<<20 : 1<<20+32<<10])
		return img.WriteZeroes(1<<20, 32<<10)
	})
	if err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "writes after snapshot -c", path)
	if got := snapshotRaw(t, path, "first"); !bytes.Equal(got, active) {
		t.Fatalf("writes after the snapshot changed it (at %d)", firstDiff(got, active))
	}
	if got := readBytes(t, qemutest.ToRaw(t, "qcow2", path)); !bytes.Equal(got, want) {
		t.Fatalf("active layer after the writes differs at %d", firstDiff(got, want))
	}

	// qemu-img adds a snapshot to vdisk's table; vdisk adds one after it.
	qemutest.Img(t, "snapshot", "-c", "second", path)
	requireCheckClean(t, "qemu-img snapshot -c second", path)
	err = withWritable(t, path, func(img *Image) error { return img.CreateSnapshot("third", at.Add(time.Hour)) })
	if strings.Contains(opts, "refcount_bits=2") {
		// Refcounts of 2 bits stop at 3: the active layer and two
		// snapshots. qemu-img refuses a third too.
		if !errors.Is(err, formats.ErrLimit) {
			t.Fatalf("a fourth reference with 2-bit refcounts: %v, want a limit error", err)
		}
		requireCheckClean(t, "a refused snapshot -c", path)
		if r := qemutest.Exec(t, "qemu-img", "snapshot", "-c", "third", path); r.Code == 0 {
			t.Fatal("qemu-img made a fourth reference with 2-bit refcounts: the case tests nothing")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "snapshot -c third", path)
	requireSameAsQemu(t, path, formats.OpenOptions{Snapshot: "second"}, "-l", "second")
	requireSameAsQemu(t, path, formats.OpenOptions{Snapshot: "3"}, "-l", "3")
	snaps = qemuSnapshots(t, path)
	if len(snaps) != 3 || snaps[1]["id"] != "2" || snaps[1]["name"] != "second" || snaps[2]["id"] != "3" ||
		snaps[2]["name"] != "third" || snaps[2]["date-sec"] != float64(at.Unix()+3600) {
		t.Fatalf("qemu-img info snapshots: %v", snaps)
	}

	// Apply the first: the active layer reads as qemu-img convert -l first.
	if err := withWritable(t, path, func(img *Image) error { return img.ApplySnapshot("first") }); err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "snapshot -a first", path)
	if got := readBytes(t, qemutest.ToRaw(t, "qcow2", path)); !bytes.Equal(got, snapshotRaw(t, path, "first")) {
		t.Fatalf("after apply the active layer differs from snapshot first at %d", firstDiff(got, active))
	}
	// Writing after apply leaves the snapshot alone too.
	if err := withWritable(t, path, func(img *Image) error {
		_, err := img.WriteAt(bytes.Repeat([]byte{0x31}, 8192), 4096)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	requireCheckClean(t, "a write after snapshot -a", path)
	if got := snapshotRaw(t, path, "first"); !bytes.Equal(got, active) {
		t.Fatalf("a write after apply changed the snapshot (at %d)", firstDiff(got, active))
	}

	// Delete the qemu-made one, then the rest; check stays clean.
	for _, name := range []string{"second", "first", "third"} {
		if err := withWritable(t, path, func(img *Image) error { return img.DeleteSnapshot(name) }); err != nil {
			t.Fatal(err)
		}
		requireCheckClean(t, "snapshot -d "+name, path)
	}
	if s := qemuSnapshots(t, path); len(s) != 0 {
		t.Fatalf("snapshots left: %v", s)
	}
	err = withWritable(t, path, func(img *Image) error { return img.DeleteSnapshot("first") })
	if !errors.Is(err, formats.ErrNoSnapshot) {
		t.Fatalf("deleting a missing snapshot: %v", err)
	}
}

// FuzzSnapshotTable parses a snapshot table; whatever parses must encode
// and parse back to the same entries (the writer's round trip).
func FuzzSnapshotTable(f *testing.F) {
	seed := encodeSnapshots([]snapshot{
		{L1TableOffset: 0x30000, L1Size: 1, DateSec: 1, DateNsec: 2000, ID: "1", Name: "a", HasICount: true, Extra: make([]byte, 24)},
		{L1TableOffset: 0x40000, L1Size: 2, ID: "7", Name: "longer name", Extra: make([]byte, 16)},
		{ID: "x", Name: "", Extra: append(make([]byte, 24), 1, 2, 3, 4, 5, 6, 7, 8)},
	}, 1<<20)
	f.Add(seed, 3)
	f.Add(seed[:40], 1)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, table []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		snaps, err := parseSnapshots("fuzz", table, 0, n)
		if err != nil {
			return
		}
		for i := range snaps {
			if len(snaps[i].ID) > 0xffff || len(snaps[i].Name) > 0xffff {
				return
			}
		}
		again, err := parseSnapshots("fuzz", encodeSnapshots(snaps, 1<<20), 0, n)
		if err != nil {
			t.Fatalf("re-encoded table does not parse: %v", err)
		}
		for i := range snaps {
			a, b := snaps[i], again[i]
			if a.ID != b.ID || a.Name != b.Name || a.L1TableOffset != b.L1TableOffset || a.L1Size != b.L1Size ||
				a.DateSec != b.DateSec || a.DateNsec != b.DateNsec || a.VMStateSizeLarge != b.VMStateSizeLarge {
				t.Fatalf("entry %d changed: %+v -> %+v", i, a, b)
			}
		}
	})
}
