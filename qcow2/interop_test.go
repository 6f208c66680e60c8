package qcow2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/internal/zero"
	_ "github.com/vdiskio/vdisk/raw" // backing files in raw format
)

const mib = 1 << 20

// openPath opens an image file with vdisk.
func openPath(t testing.TB, path string, opts formats.OpenOptions) formats.Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// readAll reads the whole virtual disk.
func readAll(t testing.TB, img formats.Image) []byte {
	t.Helper()
	buf := make([]byte, img.Size())
	if n, err := img.ReadAt(buf, 0); n != len(buf) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt: %d bytes, %v", n, err)
	}
	return buf
}

// requireSameAsQemu reads path with vdisk and compares it with qemu-img's
// raw conversion, byte for byte and by BlockSHA (which goes through Extents).
func requireSameAsQemu(t *testing.T, path string, opts formats.OpenOptions, convertArgs ...string) {
	t.Helper()
	img := openPath(t, path, opts)
	rawPath := filepath.Join(t.TempDir(), "want.raw")
	args := append([]string{"convert", "-O", "raw"}, convertArgs...)
	qemutest.Img(t, append(args, path, rawPath)...)
	want, err := os.ReadFile(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, img)
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: content differs from qemu-img convert (first difference at %d)", path, firstDiff(got, want))
	}
	if g, w := qemutest.BlockSHA(t, img), qemutest.FileBlockSHA(t, rawPath); g != w {
		t.Fatalf("%s: BlockSHA through extents differs", path)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// qemuWrites fills an image with qemu-io: patterns, an unaligned write, a
// zeroed range and a range written then discarded.
func qemuWrites(t *testing.T, path string, zero bool) {
	t.Helper()
	cmds := []string{"write -P 0xab 0 1M", "write -P 0x11 3145985 70000", "write -P 0x22 6M 300k"}
	if zero {
		cmds = append(cmds, "write -z 6M 64k", "write -z 1536k 512")
	}
	qemutest.IO(t, "qcow2", path, cmds...)
}

func TestReadQemuImages(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	type combo struct {
		compat  string
		cluster string
		extL2   bool
	}
	var combos []combo
	for _, compat := range []string{"0.10", "1.1"} {
		for _, cs := range []string{"512", "4k", "64k", "2M"} {
			combos = append(combos, combo{compat, cs, false})
			if compat == "1.1" && cs != "512" && cs != "4k" {
				combos = append(combos, combo{compat, cs, true})
			}
		}
	}
	for _, c := range combos {
		name := fmt.Sprintf("compat=%s,cluster_size=%s,extended_l2=%v", c.compat, c.cluster, c.extL2)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "a.qcow2")
			opt := fmt.Sprintf("compat=%s,cluster_size=%s", c.compat, c.cluster)
			if c.extL2 {
				opt += ",extended_l2=on"
			}
			qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", opt, path, "8M")
			qemuWrites(t, path, true)
			requireSameAsQemu(t, path, formats.OpenOptions{})
			for _, ct := range []string{"zlib", "zstd"} {
				if ct == "zstd" && c.compat == "0.10" {
					continue
				}
				cpath := filepath.Join(dir, "c-"+ct+".qcow2")
				qemutest.Img(t, "convert", "-c", "-O", "qcow2", "-o", opt+",compression_type="+ct, path, cpath)
				requireSameAsQemu(t, cpath, formats.OpenOptions{})
				img := openPath(t, cpath, formats.OpenOptions{})
				exts, err := img.Extents(0, img.Size())
				if err != nil {
					t.Fatal(err)
				}
				if !slicesContainCompressed(exts) {
					t.Fatalf("%s: no compressed extent in %v", ct, exts)
				}
			}
		})
	}
}

func slicesContainCompressed(exts []formats.Extent) bool {
	for _, e := range exts {
		if e.Compressed && e.HostOffset == -1 && e.Kind == formats.Data {
			return true
		}
	}
	return false
}

func TestReadZeroClusters(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "z.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "4M")
	// Preallocated zero cluster: write data, then zero it without unmapping.
	qemutest.IO(t, "qcow2", path, "write -P 0x55 0 1M", "write -z 0 128k", "write -z -u 256k 128k", "write -z 2M 1M")
	img := openPath(t, path, formats.OpenOptions{})
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	var zeroAlloc, zeroPlain bool
	for _, e := range exts {
		if e.Kind == formats.Zero && e.HostOffset >= 0 {
			zeroAlloc = true
		}
		if e.Kind == formats.Zero && e.HostOffset < 0 {
			zeroPlain = true
		}
	}
	if !zeroAlloc || !zeroPlain {
		t.Fatalf("want preallocated and plain zero extents, got %+v", exts)
	}
	requireSameAsQemu(t, path, formats.OpenOptions{})
}

func TestReadBackingChain(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	data := make([]byte, 6*mib)
	rand.New(rand.NewSource(1)).Read(data[:2*mib])
	if err := os.WriteFile(base, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mid := filepath.Join(dir, "mid.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", mid, "8M")
	qemutest.IO(t, "qcow2", mid, "write -P 0x33 1M 512k", "write -z 1664k 64k", "write -P 0x44 7M 512k")
	// Top has no backing format: it is probed. It is shorter than mid.
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k,extended_l2=off", "-b", "mid.qcow2", "-F", "qcow2", top, "7680K")
	qemutest.IO(t, "qcow2", top, "write -P 0x66 1100k 4k", "write -z 0 4k")
	requireSameAsQemu(t, top, formats.OpenOptions{})
	img := openPath(t, top, formats.OpenOptions{})
	b := img.(formats.Backer)
	if b.BackingName() != "mid.qcow2" || b.BackingFormat() != "qcow2" || b.Backing() == nil {
		t.Fatalf("backing %q %q %v", b.BackingName(), b.BackingFormat(), b.Backing())
	}
	// Extended L2 on top of a raw base: subclusters fall through.
	sub := filepath.Join(dir, "sub.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", "-b", "base.raw", "-F", "raw", sub, "6M")
	qemutest.IO(t, "qcow2", sub, "write -P 0x77 2k 2k", "write -z 8k 2k", "write -P 0x78 70k 10k")
	requireSameAsQemu(t, sub, formats.OpenOptions{})
}

func TestReadSnapshots(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "s.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "4M")
	qemutest.IO(t, "qcow2", path, "write -P 0x01 0 1M")
	qemutest.Img(t, "snapshot", "-c", "first", path)
	qemutest.IO(t, "qcow2", path, "write -P 0x02 512k 1M")
	qemutest.Img(t, "snapshot", "-c", "second", path)
	qemutest.IO(t, "qcow2", path, "write -z 0 64k")
	requireSameAsQemu(t, path, formats.OpenOptions{})
	for _, spec := range []string{"snapshot.name=first", "snapshot.id=2", "first", "2"} {
		requireSameAsQemu(t, path, formats.OpenOptions{Snapshot: spec}, "-l", spec)
	}
	img := openPath(t, path, formats.OpenOptions{})
	info := img.(formats.Informer).Info()
	if len(info.Snapshots) != 2 || info.Snapshots[0].Name != "first" || info.Snapshots[1].ID != "2" {
		t.Fatalf("snapshots %+v", info.Snapshots)
	}
	if _, err := formats.Open(context.Background(), path, formats.OpenOptions{Snapshot: "nope"}); err == nil {
		t.Fatal("opened a missing snapshot")
	}
}

func TestReadExternalDataFile(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "e.qcow2")
	t.Chdir(dir)
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "data_file=e.data,data_file_raw=on", path, "4M")
	qemutest.IO(t, "qcow2", path, "write -P 0x5a 64k 1M")
	requireSameAsQemu(t, path, formats.OpenOptions{})
	img := openPath(t, path, formats.OpenOptions{})
	spec := imageinfo.Ordered(img.(formats.Informer).Info().Details)
	if got := fmt.Sprint(spec); !strings.Contains(got, "{data-file e.data} {data-file-raw true}") {
		t.Fatalf("info %s", got)
	}
	exts, _ := img.Extents(64<<10, 64<<10)
	if len(exts) != 1 || exts[0].HostFile != "e.data" || exts[0].HostOffset != 64<<10 {
		t.Fatalf("extents %+v", exts)
	}
}

func TestInfoMatchesQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	for i, opt := range []string{"compat=0.10", "compat=1.1",
		"cluster_size=2M,extended_l2=on,compression_type=zstd,lazy_refcounts=on,refcount_bits=64", "bitmaps"} {
		path := filepath.Join(dir, fmt.Sprintf("i%d.qcow2", i))
		if opt == "bitmaps" {
			qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "64M")
			qemutest.Img(t, "bitmap", "--add", "-g", "128k", path, "bm0")
			qemutest.Img(t, "bitmap", "--add", "--disable", path, "second")
		} else {
			qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", opt, path, "64M")
		}
		want := qemutest.Info(t, "qcow2", path)
		img := openPath(t, path, formats.OpenOptions{})
		info := img.(formats.Informer).Info()
		wantData := want["format-specific"].(map[string]any)["data"]
		if got := qemutest.DetailsJSON(t, info.Details); !reflect.DeepEqual(got, wantData) {
			t.Errorf("%s: format-specific %v, qemu %v", opt, got, wantData)
		}
		if info.ClusterSize != int64(want["cluster-size"].(float64)) {
			t.Errorf("%s: cluster size %d", opt, info.ClusterSize)
		}
	}
}

func TestDirtyAndCorruptBits(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "d.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "4M")
	qemutest.IO(t, "qcow2", path, "write -P 0x09 0 256k")
	setIncompat(t, path, incompatDirty|incompatCorrupt)
	img := openPath(t, path, formats.OpenOptions{})
	if got := readAll(t, img); got[0] != 9 || got[256<<10] != 0 {
		t.Fatal("bad content of a dirty image")
	}
	if !img.(formats.Informer).Info().DirtyFlag {
		t.Error("dirty flag not reported")
	}
	w, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.(formats.Writable).WriteAt([]byte{1}, 0); !errors.Is(err, formats.ErrReadOnly) {
		t.Fatalf("write to a corrupt image: %v", err)
	}
	if err := w.(formats.ZeroWriter).WriteZeroes(0, 65536); !errors.Is(err, formats.ErrReadOnly) {
		t.Fatalf("zero write to a corrupt image: %v", err)
	}
	// check -r all repairs it and clears the corrupt bit.
	rep, err := w.(formats.Checker).Check(context.Background(), formats.CheckOptions{RepairLeaks: true, RepairAll: true})
	if err != nil || rep.Corruptions != 0 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if info := qemutest.Info(t, "qcow2", path); fmt.Sprint(info["format-specific"]) == "" ||
		info["format-specific"].(map[string]any)["data"].(map[string]any)["corrupt"] != false {
		t.Fatalf("corrupt bit still set: %v", info)
	}
	setIncompat(t, path, 1<<5)
	if _, err := formats.Open(context.Background(), path, formats.OpenOptions{}); !errors.Is(err, formats.ErrUnsupported) {
		t.Fatalf("unknown incompatible bit: %v", err)
	}
}

// setIncompat overwrites the incompatible feature bits of a v3 image.
func setIncompat(t *testing.T, path string, bits uint64) {
	t.Helper()
	patchU64(t, path, 72, bits)
}

func patchU64(t *testing.T, path string, off int64, v uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// createImage makes a vdisk qcow2 image with options text.
func createImage(t testing.TB, path string, size int64, optText string) *Image {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, optText)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o})
	if err != nil {
		f.Close()
		t.Fatalf("create %s: %v", optText, err)
	}
	return img
}

// testPattern is a disk content with data, zeros and odd edges.
func testPattern(size int64, seed int64) []byte {
	data := make([]byte, size)
	r := rand.New(rand.NewSource(seed))
	for off := int64(0); off < size; off += 300 << 10 {
		n := min(int64(100<<10+r.Intn(100<<10)), size-off)
		if r.Intn(3) > 0 {
			// Half random, half compressible text.
			for i := off; i < off+n; i++ {
				if i%1024 < 512 {
					data[i] = byte(r.Intn(256))
				} else {
					data[i] = "vdisk qcow2 "[i%12]
				}
			}
		}
	}
	return data
}

// writeConcurrently writes data with several goroutines on disjoint,
// unaligned pieces, skipping all-zero pieces or recording them as zeros.
func writeConcurrently(t testing.TB, img formats.Writable, data []byte, useZeroes bool) {
	t.Helper()
	var pieces [][2]int64
	r := rand.New(rand.NewSource(7))
	for off := int64(0); off < int64(len(data)); {
		n := min(int64(1+r.Intn(200<<10)), int64(len(data))-off)
		pieces = append(pieces, [2]int64{off, n})
		off += n
	}
	r.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(pieces); i += 4 {
				p := pieces[i]
				chunk := data[p[0] : p[0]+p[1]]
				if zero.Is(chunk) {
					if useZeroes {
						if err := img.(formats.ZeroWriter).WriteZeroes(p[0], p[1]); err != nil {
							errs <- err
							return
						}
					}
					continue
				}
				if _, err := img.WriteAt(chunk, p[0]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// requireQemuAccepts runs qemu-img check and compare against the raw data.
func requireQemuAccepts(t *testing.T, path string, data []byte) {
	t.Helper()
	qemutest.RequireClean(t, "qcow2", path)
	rawPath := path + ".raw"
	if err := os.WriteFile(rawPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireSame(t, "qcow2", path, "raw", rawPath)
}

// requireQemuSeesOptions checks that qemu-img info reads the create
// options of a vdisk image as it reads those of an image qemu-img creates
// with the same options: virtual size, cluster size and the qcow2 header
// fields (compat, lazy refcounts, refcount bits, compression type,
// extended L2).
func requireQemuSeesOptions(t *testing.T, path string, size int64, opts string) {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "qemu.qcow2")
	args := []string{"create", "-q", "-f", "qcow2"}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	qemutest.Img(t, append(args, ref, fmt.Sprint(size))...)
	got, want := qemutest.Info(t, "qcow2", path), qemutest.Info(t, "qcow2", ref)
	for _, k := range []string{"virtual-size", "cluster-size", "format-specific"} {
		if !reflect.DeepEqual(got[k], want[k]) {
			t.Errorf("%s: qemu-img info %s: vdisk's image %v, qemu's %v", opts, k, got[k], want[k])
		}
	}
}

func TestWriteOptionsInterop(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	opts := []string{
		"",
		"compat=0.10",
		"cluster_size=512",
		"cluster_size=4k,refcount_bits=1",
		"cluster_size=2M,refcount_bits=64",
		"extended_l2=on,cluster_size=32k",
		"lazy_refcounts=on,refcount_bits=8",
		"refcount_bits=2,cluster_size=1k",
		"refcount_bits=4", "refcount_bits=32",
		"preallocation=metadata",
		"preallocation=falloc,cluster_size=128k",
		"preallocation=full,compat=0.10",
		"compression_type=zstd",
	}
	for i, o := range opts {
		t.Run(o, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), fmt.Sprintf("w%d.qcow2", i))
			size := int64(5*mib + 4608)
			data := testPattern(size, int64(i))
			img := createImage(t, path, size, o)
			writeConcurrently(t, img, data, true)
			if err := img.Close(); err != nil {
				t.Fatal(err)
			}
			requireQemuAccepts(t, path, data)
			requireQemuSeesOptions(t, path, size, o)
			if !strings.Contains(o, "extended_l2") && !strings.Contains(o, "zstd") {
				if r := qemutest.Exec(t, "qcowinfo", path); r.Code != 0 {
					t.Errorf("qcowinfo: %s%s", r.Stdout, r.Stderr)
				}
			}
			// And vdisk reads back what it wrote.
			back := openPath(t, path, formats.OpenOptions{})
			if !bytes.Equal(readAll(t, back), data) {
				t.Fatal("read back differs")
			}
		})
	}
}

// compressAll writes data through the CompressedWriter interface the way
// the engine does: parallel Compress, ordered WriteCompressed.
func compressAll(t testing.TB, img *Image, data []byte) {
	t.Helper()
	cs := img.ClusterSize()
	n := (int64(len(data)) + cs - 1) / cs
	out := make([][]byte, n)
	ok := make([]bool, n)
	var wg sync.WaitGroup
	for w := range int64(4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := w; c < n; c += 4 {
				cl := data[c*cs : min(c*cs+cs, int64(len(data)))]
				if zero.Is(cl) {
					continue
				}
				var err error
				out[c], ok[c], err = img.Compress(nil, cl)
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for c := range n {
		cl := data[c*cs : min(c*cs+cs, int64(len(data)))]
		switch {
		case zero.Is(cl):
		case ok[c]:
			if err := img.WriteCompressed(c*cs, out[c]); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := img.WriteAt(cl, c*cs); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestWriteCompressedInterop(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	for i, o := range []string{"", "compression_type=zstd", "cluster_size=4k", "cluster_size=2M",
		"compat=0.10", "refcount_bits=1,cluster_size=16k", "extended_l2=on", "cluster_size=512"} {
		t.Run(o, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), fmt.Sprintf("c%d.qcow2", i))
			size := int64(4*mib + 1024)
			data := testPattern(size, 42+int64(i))
			img := createImage(t, path, size, o)
			compressAll(t, img, data)
			if err := img.Close(); err != nil {
				t.Fatal(err)
			}
			requireQemuAccepts(t, path, data)
			r := qemutest.Check(t, "qcow2", path)
			if !strings.Contains(r.Stdout, "compressed-clusters") {
				t.Fatalf("qemu sees no compressed clusters: %s", r.Stdout)
			}
			if !strings.Contains(o, "zstd") && !strings.Contains(o, "extended_l2") {
				if r := qemutest.Exec(t, "qcowinfo", path); r.Code != 0 {
					t.Errorf("qcowinfo: %s%s", r.Stdout, r.Stderr)
				}
			}
		})
	}
}

// TestWriteOptionCombinations crosses the create options (compat, cluster
// size, extended L2, refcount width, compression type, lazy refcounts,
// preallocation) with plain and compressed writes.
func TestWriteOptionCombinations(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	combos := []string{
		"compat=0.10,cluster_size=512", "compat=0.10,cluster_size=2M", "compat=0.10,preallocation=metadata,cluster_size=4k",
		"cluster_size=512,refcount_bits=64", "cluster_size=4k,refcount_bits=2,lazy_refcounts=on",
		"cluster_size=16k,extended_l2=on,refcount_bits=1", "cluster_size=2M,extended_l2=on,compression_type=zstd",
		"cluster_size=64k,extended_l2=on,refcount_bits=8,preallocation=falloc", "cluster_size=1M,compression_type=zstd,refcount_bits=32",
		"cluster_size=8k,compression_type=zstd,lazy_refcounts=on,preallocation=full",
	}
	for i, o := range combos {
		for _, compressed := range []bool{false, true} {
			if compressed && strings.Contains(o, "prealloc") {
				continue // qemu refuses compression with preallocation
			}
			t.Run(fmt.Sprintf("%s,c=%v", o, compressed), func(t *testing.T) {
				t.Parallel()
				path := filepath.Join(t.TempDir(), fmt.Sprintf("x%d.qcow2", i))
				size := int64(3*mib + 512)
				data := testPattern(size, int64(100+i))
				img := createImage(t, path, size, o)
				if compressed {
					compressAll(t, img, data)
				} else {
					writeConcurrently(t, img, data, true)
				}
				if err := img.Close(); err != nil {
					t.Fatal(err)
				}
				requireQemuAccepts(t, path, data)
				requireQemuSeesOptions(t, path, size, o)
			})
		}
	}
}

// TestExtentsMatchQemuMap compares Extents with `qemu-img map`.
func TestExtentsMatchQemuMap(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	path := filepath.Join(t.TempDir(), "m.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "4M")
	qemutest.IO(t, "qcow2", path, "write -P 1 0 128k", "write -c -P 2 1M 64k", "write -z 2M 64k",
		"write -P 3 3M 64k", "write -z 3M 64k", "write -P 4 3200k 64k")
	var want []struct {
		Start, Length int64
		Present, Zero bool
		Data          bool
		Offset        *int64
	}
	if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "--output=json", path)), &want); err != nil {
		t.Fatal(err)
	}
	img := openPath(t, path, formats.OpenOptions{})
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != len(want) {
		t.Fatalf("extents %+v\nqemu %+v", exts, want)
	}
	for i, e := range exts {
		w := want[i]
		wantOff := int64(-1)
		if w.Offset != nil {
			wantOff = *w.Offset
		}
		ok := e.Offset == w.Start && e.Length == w.Length && e.HostOffset == wantOff &&
			(e.Kind == formats.Data) == w.Data && (e.Kind != formats.Unallocated) == w.Present
		if !ok {
			t.Errorf("extent %d: %+v, qemu %+v (offset %d)", i, e, w, wantOff)
		}
	}
}

// TestPreallocationMatchesQemu judges each preallocation mode of a fresh
// image with qemu-img against the image qemu-img creates with the same
// options: the same map (every cluster present, reading as zeros from a
// hole with metadata, allocated data with falloc and full) and host
// storage for the data with falloc and full only.
//
// Known differences it leaves out: with extended_l2=on qemu leaves the
// preallocated subclusters unallocated where vdisk marks them allocated
// (both read as zeros), and with a size that is not a multiple of the
// cluster size qemu's metadata mode ends the file with data where vdisk
// leaves a hole.
func TestPreallocationMatchesQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	type mapEntry struct {
		Start, Length       int64
		Depth               int
		Present, Zero, Data bool
		Offset              *int64
	}
	qemuMap := func(path string) []mapEntry {
		var m []mapEntry
		if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "--output=json", "-f", "qcow2", path)), &m); err != nil {
			t.Fatal(err)
		}
		for i := range m {
			m[i].Offset = nil // layouts differ; presence is compared below
		}
		return m
	}
	for i, o := range []string{"preallocation=metadata", "preallocation=falloc,cluster_size=128k",
		"preallocation=full,compat=0.10", "preallocation=falloc,cluster_size=512"} {
		t.Run(o, func(t *testing.T) {
			dir := t.TempDir()
			path, ref := filepath.Join(dir, fmt.Sprintf("p%d.qcow2", i)), filepath.Join(dir, "qemu.qcow2")
			size := int64(5 * mib)
			if err := createImage(t, path, size, o).Close(); err != nil {
				t.Fatal(err)
			}
			qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", o, ref, fmt.Sprint(size))
			qemutest.RequireClean(t, "qcow2", path)
			got, want := qemuMap(path), qemuMap(ref)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("qemu-img map: vdisk's image %+v, qemu's %+v", got, want)
			}
			gotUse := int64(qemutest.Info(t, "qcow2", path)["actual-size"].(float64))
			wantUse := int64(qemutest.Info(t, "qcow2", ref)["actual-size"].(float64))
			if (gotUse >= size) != (wantUse >= size) {
				t.Errorf("host storage %d bytes, qemu's image %d (virtual size %d)", gotUse, wantUse, size)
			}
		})
	}
}
