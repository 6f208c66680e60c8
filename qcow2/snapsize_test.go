package qcow2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// twin is one image worked on by vdisk and a copy worked on by qemu-img,
// step for step; after each step qemu-img judges both: check clean,
// the same virtual size, qemu-img compare identical.
type twin struct {
	t         *testing.T
	vd, qm    string
	stepCount int
}

func newTwin(t *testing.T, opts, size string, writes ...string) *twin {
	dir := t.TempDir()
	tw := &twin{t: t, vd: filepath.Join(dir, "vdisk.qcow2"), qm: filepath.Join(dir, "qemu.qcow2")}
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", opts, tw.vd, size)
	if len(writes) > 0 {
		qemutest.IO(t, "qcow2", tw.vd, writes...)
	}
	copyFile(t, tw.vd, tw.qm)
	return tw
}

// step runs vd on vdisk's image and the qemu-img arguments on the copy
// (its path replaces "@", else goes last), then has qemu judge.
func (tw *twin) step(name string, vd func(*Image) error, qemuArgs ...string) {
	t := tw.t
	t.Helper()
	tw.stepCount++
	if err := withWritable(t, tw.vd, vd); err != nil {
		t.Fatalf("step %d (%s): vdisk: %v", tw.stepCount, name, err)
	}
	if len(qemuArgs) > 0 {
		if qemuArgs[0] == "qemu-io" {
			qemutest.IO(t, "qcow2", tw.qm, qemuArgs[1:]...)
		} else {
			qemutest.Img(t, withPath(qemuArgs, tw.qm)...)
		}
	}
	tw.judge(name)
}

func withPath(args []string, path string) []string {
	out := append([]string(nil), args...)
	for i, a := range out {
		if a == "@" {
			out[i] = path
			return out
		}
	}
	return append(out, path)
}

func (tw *twin) judge(name string) {
	t := tw.t
	t.Helper()
	requireCheckClean(t, name, tw.vd)
	vs, qs := qemutest.Info(t, "qcow2", tw.vd)["virtual-size"], qemutest.Info(t, "qcow2", tw.qm)["virtual-size"]
	if vs != qs {
		t.Fatalf("after %s: virtual size %v, qemu-img made %v", name, vs, qs)
	}
	if r := qemutest.Compare(t, "qcow2", tw.vd, "qcow2", tw.qm); r.Code != 0 {
		t.Fatalf("after %s: qemu-img compare with qemu's copy: exit %d %s%s", name, r.Code, r.Stdout, r.Stderr)
	}
	var vn, qn []string
	for _, s := range qemuSnapshots(t, tw.vd) {
		vn = append(vn, fmt.Sprint(s["name"], "@", s["vm-state-size"]))
	}
	for _, s := range qemuSnapshots(t, tw.qm) {
		qn = append(qn, fmt.Sprint(s["name"], "@", s["vm-state-size"]))
	}
	if d := cmp.Diff(qn, vn); d != "" {
		t.Fatalf("after %s: snapshots (-qemu +vdisk):\n%s", name, d)
	}
}

func write(off, n int64, b byte) func(*Image) error {
	return func(img *Image) error {
		_, err := img.WriteAt(bytes.Repeat([]byte{b}, int(n)), off)
		return err
	}
}

// TestSnapshotApplyAcrossSizes: a snapshot taken at another disk size
// applies as qemu-img snapshot -a applies it (the disk takes the
// snapshot's size and content), after growing and after shrinking, with
// snapshots qemu-img made and ones vdisk made; every step judged against
// qemu-img doing the same on a copy.
func TestSnapshotApplyAcrossSizes(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, opts := range []string{"cluster_size=4k", "extended_l2=on,cluster_size=16k"} {
		t.Run(opts, func(t *testing.T) {
			tw := newTwin(t, opts, "2M", "write -P 0x11 0 300k", "write -P 0x12 1900k 100k")
			before := readBytes(t, qemutest.ToRaw(t, "qcow2", tw.vd))
			tw.step("snapshot -c small", func(img *Image) error { return img.CreateSnapshot("small", at) }, "snapshot", "-c", "small")
			tw.step("resize 5M", func(img *Image) error { return img.Resize(context.Background(), 5<<20, false) }, "resize", "-q", "@", "5M")
			tw.step("write past the old end", write(4<<20, 200<<10, 0x21), "qemu-io", "write -P 0x21 4M 200k")
			// vdisk applies a snapshot qemu-img made, too.
			qemutest.Img(t, "snapshot", "-c", "big", tw.qm)
			copyFile(t, tw.qm, tw.vd)
			tw.step("shrink 1M", func(img *Image) error { return img.Resize(context.Background(), 1<<20, true) }, "resize", "-q", "--shrink", "@", "1M")
			// qemu-img convert -l reads a snapshot at the active layer's
			// size (1M now); vdisk at the snapshot's own, as qemu read it
			// before the resizes.
			if got := readAll(t, openPath(t, tw.vd, formats.OpenOptions{Snapshot: "small"})); !bytes.Equal(got, before) {
				t.Fatalf("after the shrink snapshot small reads differently (at %d)", firstDiff(got, before))
			}
			tw.step("snapshot -a big", func(img *Image) error { return img.ApplySnapshot("big") }, "snapshot", "-a", "big")
			if img := qemutest.Info(t, "qcow2", tw.vd); img["virtual-size"] != float64(5<<20) {
				t.Fatalf("after applying big: %v bytes", img["virtual-size"])
			}
			if got, want := readBytes(t, qemutest.ToRaw(t, "qcow2", tw.vd)), snapshotRaw(t, tw.vd, "big"); !bytes.Equal(got, want) {
				t.Fatalf("after apply the active layer differs from snapshot big at %d", firstDiff(got, want))
			}
			tw.step("snapshot -a small", func(img *Image) error { return img.ApplySnapshot("small") }, "snapshot", "-a", "small")
			if got := readBytes(t, qemutest.ToRaw(t, "qcow2", tw.vd)); !bytes.Equal(got, before) {
				t.Fatalf("after applying small the disk differs from it at %d", firstDiff(got, before))
			}
			tw.step("write after apply", write(100<<10, 8<<10, 0x31), "qemu-io", "write -P 0x31 100k 8k")
			tw.step("snapshot -d big", func(img *Image) error { return img.DeleteSnapshot("big") }, "snapshot", "-d", "big")
			tw.step("snapshot -a small again", func(img *Image) error { return img.ApplySnapshot("small") }, "snapshot", "-a", "small")
		})
	}
}

// TestSnapshotResizeRefusalsLikeQemu: what qemu-img refuses, vdisk
// refuses with qemu's words: resizing a version 2 image that has
// snapshots, and applying a snapshot while the image has a bitmap.
func TestSnapshotResizeRefusalsLikeQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2, "1M")
	qemutest.Img(t, "snapshot", "-c", "s", v2)
	refused := func(path, what string, vd func(*Image) error, qemuArgs ...string) {
		t.Helper()
		r := qemutest.Exec(t, "qemu-img", withPath(qemuArgs, path)...)
		if r.Code == 0 {
			t.Fatalf("qemu-img %s succeeded: the case tests nothing", what)
		}
		err := withWritable(t, path, vd)
		var re *RefusalError
		if !errors.As(err, &re) || !errors.Is(err, formats.ErrUnsupported) || !strings.Contains(r.Stderr, re.Msg) {
			t.Fatalf("%s: vdisk %v; qemu-img said %q", what, err, r.Stderr)
		}
		requireCheckClean(t, "a refused "+what, path)
	}
	refused(v2, "resize of a v2 image with snapshots", func(img *Image) error { return img.Resize(context.Background(), 2<<20, false) }, "resize", "-q", "@", "2M")

	bm := filepath.Join(dir, "bm.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", bm, "1M")
	qemutest.Img(t, "snapshot", "-c", "s", bm)
	qemutest.Img(t, "bitmap", "--add", "--disable", bm, "b")
	refused(bm, "snapshot -a with a bitmap", func(img *Image) error { return img.ApplySnapshot("s") }, "snapshot", "-a", "s")
}

// TestResizeWithBitmapsJudgedByQemu: resizing an image that has
// persistent bitmaps resizes them as qemu-img resize does (grow: new
// range clean; shrink: the tail dropped), and the bits qemu reads from
// vdisk's image (qemu-nbd's dirty-bitmap map) match the ones it reads from
// its own copy; writes after the resize mark the new range. An
// inconsistent bitmap is refused as qemu refuses it.
func TestResizeWithBitmapsJudgedByQemu(t *testing.T) {
	qemutest.Tool(t, "nbdinfo")
	tw := newTwin(t, "cluster_size=64k", "4M")
	qemutest.Img(t, "bitmap", "--add", tw.vd, "a")
	qemutest.Img(t, "bitmap", "--add", "-g", "512k", tw.vd, "g")
	qemutest.Img(t, "bitmap", "--add", "--disable", tw.vd, "off")
	qemutest.IO(t, "qcow2", tw.vd, "write -P 1 0 100k", "write -P 2 3900k 196k")
	copyFile(t, tw.vd, tw.qm)
	sameBitmaps := func(step string) {
		t.Helper()
		for _, name := range []string{"a", "g", "off"} {
			if d := cmp.Diff(qemutest.DirtyRanges(t, tw.qm, name), qemutest.DirtyRanges(t, tw.vd, name)); d != "" {
				t.Fatalf("after %s: bitmap %s (-qemu's copy +vdisk's):\n%s", step, name, d)
			}
		}
		if d := cmp.Diff(qemuBitmaps(t, tw.qm), qemuBitmaps(t, tw.vd)); d != "" {
			t.Fatalf("after %s: qemu-img info bitmaps (-qemu's copy +vdisk's):\n%s", step, d)
		}
	}
	tw.step("grow to 6M+512", func(img *Image) error { return img.Resize(context.Background(), 6<<20+512, false) }, "resize", "-q", "@", fmt.Sprint(6<<20+512))
	sameBitmaps("grow")
	tw.step("write in the new range", write(5<<20, 4096, 3), "qemu-io", "write -P 3 5M 4k")
	sameBitmaps("a write past the old end")
	tw.step("shrink to 3900k", func(img *Image) error { return img.Resize(context.Background(), 3900<<10, true) }, "resize", "-q", "--shrink", "@", "3900k")
	sameBitmaps("shrink")
	tw.step("grow to 5M again", func(img *Image) error { return img.Resize(context.Background(), 5<<20, false) }, "resize", "-q", "@", "5M")
	sameBitmaps("grow after shrink")

	// An inconsistent bitmap: vdisk leaves the image open (in use) after
	// a write, as a crash would.
	f, err := formats.OpenOSFile(tw.vd, true)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open(context.Background(), f, formats.OpenOptions{Writable: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt([]byte{1}, 0); err != nil {
		t.Fatal(err)
	}
	if err := img.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close() // no Close: the bitmaps stay marked in use
	copyFile(t, tw.vd, tw.qm)
	r := qemutest.Exec(t, "qemu-img", "resize", "-q", tw.qm, "6M")
	err = withWritable(t, tw.vd, func(img *Image) error { return img.Resize(context.Background(), 6<<20, false) })
	if r.Code == 0 || err == nil || !strings.Contains(r.Stderr, err.Error()) {
		t.Fatalf("resize with an inconsistent bitmap: vdisk %v; qemu-img exit %d %q", err, r.Code, r.Stderr)
	}
}

func amend(opts map[string]string) func(*Image) error {
	return func(img *Image) error { return img.Amend(context.Background(), opts) }
}

// TestAmendWithSnapshotsLikeQemu: amend of images with internal
// snapshots and bitmaps, each step against qemu-img amend on a copy:
// size= grows and shrinks (the snapshots keep their size and content);
// compat=0.10 is refused while a snapshot has another size, as qemu's,
// and with size= back at the snapshots' size expands the zero clusters of the snapshots too (qemu-img
// convert -l reads every snapshot of both copies the same) and drops the
// bitmaps (qemu's leaves their clusters leaked, vdisk's frees them: check
// clean); on a version 2 image size= is refused in qemu's words unless
// compat=1.1 comes with it.
func TestAmendWithSnapshotsLikeQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, backing := range []bool{false, true} {
		t.Run(fmt.Sprint("backing=", backing), func(t *testing.T) {
			opts := "cluster_size=4k"
			if backing {
				base := filepath.Join(t.TempDir(), "base.raw")
				qemutest.Img(t, "create", "-q", "-f", "raw", base, "3M")
				qemutest.IO(t, "raw", base, "write -P 0x77 0 3M")
				opts += ",backing_file=" + base + ",backing_fmt=raw"
			}
			tw := newTwin(t, opts, "3M", "write -P 0x11 0 300k", "write -z 40k 12k", "write -z 1M 64k", "write -P 0x12 2M 40k", "write -z 2M 8k")
			tw.step("snapshot -c one", func(img *Image) error { return img.CreateSnapshot("one", at) }, "snapshot", "-c", "one")
			tw.step("writes and zeros", write(40<<10, 4<<10, 0x21), "qemu-io", "write -P 0x21 40k 4k")
			tw.step("zero after snapshot", func(img *Image) error { return img.WriteZeroes(0, 16<<10) }, "qemu-io", "write -z 0 16k")
			qemutest.Img(t, "snapshot", "-c", "two", tw.qm)
			qemutest.Img(t, "bitmap", "--add", tw.qm, "bm")
			copyFile(t, tw.qm, tw.vd)
			tw.step("amend size=5M", amend(map[string]string{"size": "5M"}), "amend", "-o", "size=5M")
			tw.step("amend size=2M", amend(map[string]string{"size": "2M"}), "amend", "-o", "size=2M")
			// The snapshots are 3M: at 2M they stop a downgrade; amend
			// resizes first, so size=3M,compat=0.10 downgrades.
			r := qemutest.Exec(t, "qemu-img", "amend", "-o", "compat=0.10", tw.qm)
			err := withWritable(t, tw.vd, amend(map[string]string{"compat": "0.10"}))
			var ae *AmendError
			if r.Code == 0 || !errors.As(err, &ae) || !strings.Contains(r.Stderr, ae.Msg) {
				t.Fatalf("compat=0.10 with snapshots of another size: vdisk %v; qemu-img exit %d %q", err, r.Code, r.Stderr)
			}
			tw.judge("a refused downgrade")
			tw.step("amend compat=0.10,size=3M", amend(map[string]string{"compat": "0.10", "size": "3M"}), "amend", "-o", "compat=0.10,size=3M")
			if q := qemutest.Info(t, "qcow2", tw.vd)["format-specific"].(map[string]any)["data"].(map[string]any); q["compat"] != "0.10" || q["bitmaps"] != nil {
				t.Fatalf("after the downgrade: %v", q)
			}
			for _, sn := range []string{"one", "two"} {
				if a, b := snapshotRaw(t, tw.vd, sn), snapshotRaw(t, tw.qm, sn); !bytes.Equal(a, b) {
					t.Fatalf("snapshot %s after the downgrade differs from qemu's at %d", sn, firstDiff(a, b))
				}
			}
			r = qemutest.Exec(t, "qemu-img", "amend", "-o", "size=4M", tw.qm)
			err = withWritable(t, tw.vd, amend(map[string]string{"size": "4M"}))
			var re *RefusalError
			if r.Code == 0 || !errors.As(err, &re) || !strings.Contains(r.Stderr, re.Msg) {
				t.Fatalf("size= on a v2 image with snapshots: vdisk %v; qemu-img exit %d %q", err, r.Code, r.Stderr)
			}
			tw.step("amend size=4M,compat=1.1", amend(map[string]string{"size": "4M", "compat": "1.1"}), "amend", "-o", "size=4M,compat=1.1")
		})
	}
}

// TestAmendDowngradeZstdLikeQemu: a zstd image downgrades when no
// cluster is compressed (the compression type becomes zlib) and is
// refused in qemu's words when the active layer has compressed clusters.
// When only a snapshot has them, qemu-img downgrades and the snapshot no
// longer reads (its zstd clusters read as zlib): vdisk refuses that too.
// Extended L2 is refused with the feature bit qemu names.
func TestAmendDowngradeZstdLikeQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	tw := newTwin(t, "compression_type=zstd,cluster_size=4k", "1M", "write -P 1 0 8k")
	tw.step("amend compat=0.10", amend(map[string]string{"compat": "0.10"}), "amend", "-o", "compat=0.10")
	if c := qemutest.Info(t, "qcow2", tw.vd)["format-specific"].(map[string]any)["data"].(map[string]any)["compression-type"]; c != "zlib" {
		t.Fatalf("compression type after the downgrade: %v", c)
	}
	refusedLikeQemu := func(opts, path string, writes ...string) {
		t.Helper()
		dir := t.TempDir()
		q, v := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "v.qcow2")
		qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", opts, q, "1M")
		qemutest.IO(t, "qcow2", q, writes...)
		copyFile(t, q, v)
		r := qemutest.Exec(t, "qemu-img", "amend", "-o", "compat=0.10", q)
		err := withWritable(t, v, amend(map[string]string{"compat": "0.10"}))
		var ae *AmendError
		if r.Code == 0 || !errors.As(err, &ae) || !strings.Contains(r.Stderr, ae.Msg) {
			t.Fatalf("%s: vdisk %v; qemu-img exit %d %q", opts, err, r.Code, r.Stderr)
		}
		requireCheckClean(t, "a refused downgrade", v)
	}
	refusedLikeQemu("compression_type=zstd", "", "write -c -P 3 0 64k")
	refusedLikeQemu("compression_type=zstd,extended_l2=on", "")

	dir := t.TempDir()
	q, v := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "v.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", q, "1M")
	qemutest.IO(t, "qcow2", q, "write -c -P 3 0 64k")
	qemutest.Img(t, "snapshot", "-c", "s", q)
	qemutest.IO(t, "qcow2", q, "write -P 4 0 64k")
	copyFile(t, q, v)
	err := withWritable(t, v, amend(map[string]string{"compat": "0.10"}))
	var ae *AmendError
	if !errors.As(err, &ae) || ae.Msg != "Cannot downgrade an image with zstd compression type and existing compressed clusters" {
		t.Fatalf("zstd clusters in a snapshot: %v", err)
	}
	qemutest.Img(t, "amend", "-o", "compat=0.10", q)
	if r := qemutest.Exec(t, "qemu-img", "convert", "-l", "s", "-O", "raw", q, filepath.Join(dir, "s.raw")); r.Code == 0 {
		t.Log("qemu-img now reads the snapshot it downgraded: vdisk's refusal is stricter than needed")
	}
}
