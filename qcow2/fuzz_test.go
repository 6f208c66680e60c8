package qcow2

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// seedImages are tiny images: qemu-img-made (testdata/*.qcow2.gz) v2:
// compat=0.10, 512-byte clusters, data and a compressed cluster; v3:
// 512-byte clusters, zero clusters, a snapshot and a dirty bitmap; and
// code-made ext (extImage).
func seedImages(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.qcow2.gz")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed images: %v", err)
	}
	seeds := map[string][]byte{}
	for _, p := range paths {
		seeds[filepath.Base(p)] = gunzipFile(t, p)
	}
	seeds["ext.qcow2"] = extImage(t, t.TempDir(), seeds["v2.qcow2.gz"])
	return seeds
}

// extImage is a 16 KiB-cluster image with extended L2 entries, zstd
// compression and backing file v2.qcow2 (written beside it in dir): guest
// cluster 1 compressed, subclusters 2-5 of cluster 2 zero by their L2
// bits, the rest unallocated. 80 KiB: five 16 KiB structures (header,
// refcount table and block, L1, L2) must each start a cluster, so no such
// image with an L2 table fits in 64 KiB (qemu's own, with a data cluster,
// was 98 KB).
func extImage(t testing.TB, dir string, v2 []byte) []byte {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "v2.qcow2"), v2, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := formats.ParseOptions(createOptions, "cluster_size=16k,extended_l2=on,compression_type=zstd,backing_file=v2.qcow2,backing_fmt=qcow2")
	if err != nil {
		t.Fatal(err)
	}
	f := fileio.NewMem("ext.qcow2", nil)
	img, err := Create(context.Background(), formats.CreateRequest{File: f, Name: filepath.Join(dir, "ext.qcow2"), Size: 64 << 10, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	cs := img.ClusterSize()
	c, ok, err := img.Compress(nil, bytes.Repeat([]byte("zstd"), int(cs)/4))
	if err != nil || !ok {
		t.Fatalf("compress: %v %v", ok, err)
	}
	if err := img.WriteCompressed(cs, c); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	b := f.Bytes()
	put64(b, l2Of(b)+2*16+8, 0x3C<<32) // cluster 2's bitmap: zero bits 2-5
	return b
}

// TestExtImage: qemu-img checks extImage clean, sees its features and
// reads it (through the backing file) as vdisk does.
func TestExtImage(t *testing.T) {
	dir := t.TempDir()
	b := extImage(t, dir, gunzipFile(t, "testdata/v2.qcow2.gz"))
	path := filepath.Join(dir, "ext.qcow2")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireClean(t, "qcow2", path)
	spec := fmt.Sprint(qemutest.Info(t, "qcow2", path)["format-specific"])
	if !strings.Contains(spec, "extended-l2:true") || !strings.Contains(spec, "compression-type:zstd") {
		t.Errorf("qemu-img info: %s", spec)
	}
	want, err := os.ReadFile(qemutest.ToRaw(t, "qcow2", path))
	if err != nil {
		t.Fatal(err)
	}
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got := make([]byte, img.Size())
	if _, err := img.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || !bytes.Equal(got[32768+1024:32768+3072], make([]byte, 2048)) {
		t.Error("vdisk reads ext.qcow2 differently from qemu-img")
	}
}

func gunzipFile(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fuzzLimits keep one fuzz input cheap.
var fuzzLimits = formats.Limits{MaxVirtualSize: 64 << 20, MaxTableBytes: 1 << 20, CacheBytes: 1 << 20}

// exercise opens b and uses every read-side parser: header, extensions,
// L1/L2, compressed clusters, snapshots, refcounts (check) and bitmaps.
func exercise(b []byte, snapshot string) error {
	img, err := Open(context.Background(), fileio.NewMem("fuzz.qcow2", b), formats.OpenOptions{NoBacking: true, Limits: fuzzLimits, Snapshot: snapshot})
	if err != nil {
		return err
	}
	defer img.Close()
	_ = img.Info()
	if _, err := img.Extents(0, img.Size()); err != nil {
		return err
	}
	buf := make([]byte, min(img.Size(), 1<<20))
	if _, err := img.ReadAt(buf, 0); err != nil && err != io.EOF {
		return err
	}
	_, err = img.Check(context.Background(), formats.CheckOptions{})
	return err
}

func TestSeedImages(t *testing.T) {
	for name, b := range seedImages(t) {
		if err := exercise(b, ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		img, err := Open(context.Background(), fileio.NewMem(name, b), formats.OpenOptions{NoBacking: true})
		if err != nil {
			t.Fatal(err)
		}
		r, err := img.Check(context.Background(), formats.CheckOptions{})
		if err != nil || r.Corruptions+r.Leaks+r.CheckErrors != 0 {
			t.Errorf("%s: check %+v %v", name, r, err)
		}
		if name == "v3.qcow2.gz" {
			info := img.Info()
			if len(info.Snapshots) != 1 || !strings.Contains(fmt.Sprint(imageinfo.Ordered(info.Details)), "{name bm0}") {
				t.Errorf("v3 info: %+v", info)
			}
			if err := exercise(b, "s1"); err != nil {
				t.Errorf("snapshot s1: %v", err)
			}
		}
		img.Close()
	}
}

func FuzzOpen(f *testing.F) {
	// Inputs are patches over small valid images (fuzzpatch): a whole image
	// as the input is minimised for a minute each time the fuzzer finds
	// new coverage.
	var bases [][]byte
	for _, name := range slices.Sorted(maps.Keys(seedImages(f))) {
		bases = append(bases, seedImages(f)[name])
	}
	bases = append(bases, memImage(f, "cluster_size=512"), memImage(f, "compat=0.10,cluster_size=512"))
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s, "")
		f.Add(s, "s1")
	}
	f.Fuzz(func(t *testing.T, input []byte, snapshot string) {
		_ = exercise(fuzzpatch.Apply(bases, input), snapshot)
	})
}

// FuzzWrite opens hostile images writable (refcount loading, the allocator,
// copy-on-write of shared and compressed clusters) and writes to them.
// Inputs are patches over small valid images (fuzzpatch); the crashers it
// found are whole images, run by TestWriteCrashers.
func FuzzWrite(f *testing.F) {
	var bases [][]byte
	for _, name := range slices.Sorted(maps.Keys(seedImages(f))) {
		bases = append(bases, seedImages(f)[name])
	}
	bases = append(bases, memImage(f, "cluster_size=512"), memImage(f, "compat=0.10,cluster_size=4k"))
	for i, s := range fuzzpatch.Seeds(bases) {
		f.Add(s, int64(700*i))
	}
	f.Fuzz(func(t *testing.T, input []byte, off int64) {
		writeHostile(fuzzpatch.Apply(bases, input), off)
	})
}

// writeHostile opens image writable, writes, zeroes and grows it at off
// (any value: it is reduced modulo the size), closes it and reads back what
// it wrote. Errors are expected; a panic or a hang is the failure.
func writeHostile(image []byte, off int64) {
	mem := fileio.NewMem("fuzz.qcow2", image)
	img, err := Open(context.Background(), mem, formats.OpenOptions{Writable: true, NoBacking: true, Limits: fuzzLimits})
	if err != nil {
		return
	}
	if size := img.Size(); size > 0 {
		off = (off%size + size) % size
		n := min(size-off, 3000)
		if _, err := img.WriteAt(bytes.Repeat([]byte{0x5a}, int(n)), off); err == nil {
			_ = img.WriteZeroes(0, min(size, 1024))
			_ = img.Resize(context.Background(), size+4096, false)
		}
	}
	if err := img.Close(); err != nil {
		return
	}
	_ = exercise(mem.Bytes(), "")
}

// TestWriteCrashers runs writeHostile on the images FuzzWrite found
// crashing (testdata/crashers/write-*.qcow2.gz, kept as they were found;
// the offset each was written at is in the table).
func TestWriteCrashers(t *testing.T) {
	for name, off := range map[string]int64{
		"write-c4797c4b22150752.qcow2.gz": 5000, // frees a cluster without a refcount
		"write-60f3b28d6dd454a5.qcow2.gz": 803,  // host or L2 offset past the allocation end
		"write-e1c7d10da1a4751b.qcow2.gz": 5000, // host or L2 offset past the allocation end
	} {
		writeHostile(gunzipFile(t, filepath.Join("testdata", "crashers", name)), off)
	}
}
