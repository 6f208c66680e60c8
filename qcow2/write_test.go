package qcow2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

func TestMeasureMatchesQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", src, "64M")
	qemutest.IO(t, "qcow2", src, "write -P 1 0 1M", "write -P 2 10M 100k", "write -z 20M 1M", "write -P 3 63M 4k")
	rawSrc := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "convert", "-O", "raw", src, rawSrc)
	qemutest.Img(t, "bitmap", "--add", "-g", "128k", src, "bm0")
	qemutest.Img(t, "bitmap", "--add", "-g", "512", src, "a-longer-bitmap-name")
	for _, opt := range []string{"", "cluster_size=2M", "cluster_size=512", "refcount_bits=1", "extended_l2=on",
		"compat=0.10", "preallocation=full,cluster_size=2M", "refcount_bits=64,cluster_size=4k"} {
		for _, source := range []string{"", src, rawSrc} {
			t.Run(fmt.Sprintf("%s/%s", opt, filepath.Base(source)), func(t *testing.T) {
				args := []string{"measure", "--output=json", "-O", "qcow2"}
				if opt != "" {
					args = append(args, "-o", opt)
				}
				req := formats.MeasureRequest{Size: 1<<30 + 12345}
				if source == "" {
					args = append(args, "--size", fmt.Sprint(req.Size))
				} else {
					args = append(args, source)
					req.Source = openPath(t, source, formats.OpenOptions{})
				}
				var want struct {
					Required       int64  `json:"required"`
					FullyAllocated int64  `json:"fully-allocated"`
					Bitmaps        *int64 `json:"bitmaps"`
				}
				if err := json.Unmarshal([]byte(qemutest.Img(t, args...)), &want); err != nil {
					t.Fatal(err)
				}
				o, err := formats.ParseOptions(createOptions, opt)
				if err != nil {
					t.Fatal(err)
				}
				req.Options = o
				got, err := measure(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				wantBitmaps := int64(-1)
				if want.Bitmaps != nil {
					wantBitmaps = *want.Bitmaps
				}
				if got.Required != want.Required || got.FullyAllocated != want.FullyAllocated || got.Bitmaps != wantBitmaps {
					t.Fatalf("vdisk %+v, qemu %+v (bitmaps %v)", got, want, wantBitmaps)
				}
			})
		}
	}
}

func TestCreateWithBacking(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", base, "3M")
	qemutest.IO(t, "qcow2", base, "write -P 0x10 0 3M")
	for i, opt := range []string{"backing_file=base.qcow2,backing_fmt=qcow2", "backing_file=base.qcow2,compat=0.10",
		"backing_file=base.qcow2,extended_l2=on,cluster_size=16k", "backing_file=base.qcow2,backing_fmt=qcow2,cluster_size=512",
		"backing_file=base.qcow2,extended_l2=on,preallocation=metadata"} {
		top := filepath.Join(dir, fmt.Sprintf("top%d.qcow2", i))
		o, err := formats.ParseOptions(createOptions, opt)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(top)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: top, Options: o})
		if err != nil {
			t.Fatal(err)
		}
		if img.Size() != 3<<20 {
			t.Fatalf("size from backing: %d", img.Size())
		}
		// Partial writes copy the backing data; zeroes hide it.
		if _, err := img.WriteAt(bytes.Repeat([]byte{0x20}, 1000), 70000); err != nil {
			t.Fatal(err)
		}
		if err := img.WriteZeroes(1<<20, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := img.WriteZeroes(2<<20+100, 5000); err != nil {
			t.Fatal(err)
		}
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		qemutest.RequireClean(t, "qcow2", top)
		want := bytes.Repeat([]byte{0x10}, 3<<20)
		copy(want[70000:], bytes.Repeat([]byte{0x20}, 1000))
		clear(want[1<<20 : 2<<20])
		clear(want[2<<20+100 : 2<<20+5100])
		raw := filepath.Join(dir, "want.raw")
		os.WriteFile(raw, want, 0o644)
		qemutest.RequireSame(t, "qcow2", top, "raw", raw)
		info := qemutest.Info(t, "qcow2", top)
		if info["backing-filename"] != "base.qcow2" || info["backing-filename-format"] != "qcow2" {
			t.Fatalf("qemu info %v", info)
		}
	}
}

func TestResize(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "r.qcow2")
	img := createImage(t, path, 1<<20, "cluster_size=512")
	data := testPattern(1<<20, 3)
	if _, err := img.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	// 512-byte clusters: one L2 covers 32 KiB, so growing moves the L1.
	if err := img.Resize(context.Background(), 64<<20, false); err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt([]byte("end"), 64<<20-3); err != nil {
		t.Fatal(err)
	}
	if err := img.Resize(context.Background(), 32<<20, false); err == nil {
		t.Fatal("shrink without shrink=true")
	}
	if err := img.Resize(context.Background(), 48<<20, true); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireClean(t, "qcow2", path)
	want := make([]byte, 48<<20)
	copy(want, data)
	raw := filepath.Join(dir, "want.raw")
	os.WriteFile(raw, want, 0o644)
	qemutest.RequireSame(t, "qcow2", path, "raw", raw)
}

func TestReopenWritable(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "o.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "4M")
	qemutest.IO(t, "qcow2", path, "write -P 1 0 1M", "write -c -P 2 2M 64k")
	qemutest.Img(t, "snapshot", "-c", "s1", path)
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	w := img.(formats.Writable)
	// Shared clusters (snapshot) and a compressed cluster are copied on write.
	if _, err := w.WriteAt(bytes.Repeat([]byte{3}, 5000), 60000); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(bytes.Repeat([]byte{4}, 100), 2<<20+10); err != nil {
		t.Fatal(err)
	}
	if err := img.(formats.ZeroWriter).WriteZeroes(512<<10, 128<<10); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireClean(t, "qcow2", path)
	want := make([]byte, 4<<20)
	copy(want, bytes.Repeat([]byte{1}, 1<<20))
	copy(want[2<<20:], bytes.Repeat([]byte{2}, 64<<10))
	copy(want[60000:], bytes.Repeat([]byte{3}, 5000))
	copy(want[2<<20+10:], bytes.Repeat([]byte{4}, 100))
	clear(want[512<<10 : 640<<10])
	raw := filepath.Join(dir, "want.raw")
	os.WriteFile(raw, want, 0o644)
	qemutest.RequireSame(t, "qcow2", path, "raw", raw)
	// The snapshot still has the old content.
	snapRaw := filepath.Join(dir, "snap.raw")
	qemutest.Img(t, "convert", "-l", "s1", "-O", "raw", path, snapRaw)
	got, _ := os.ReadFile(snapRaw)
	if got[60000] != 1 || got[2<<20+10] != 2 {
		t.Fatal("snapshot content changed")
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	path := filepath.Join(t.TempDir(), "ro.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "1M")
	img := openPath(t, path, formats.OpenOptions{}).(*Image)
	if _, err := img.WriteAt([]byte{1}, 0); !errors.Is(err, formats.ErrReadOnly) {
		t.Fatalf("write to read-only image: %v", err)
	}
}

func TestCreateEmptyAndTiny(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	for i, size := range []int64{0, 1, 512, 65536 + 512} {
		path := filepath.Join(dir, fmt.Sprintf("e%d.qcow2", i))
		img := createImage(t, path, size, "")
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		qemutest.RequireClean(t, "qcow2", path)
		info := qemutest.Info(t, "qcow2", path)
		if want := (size + 511) / 512 * 512; int64(info["virtual-size"].(float64)) != want {
			t.Errorf("size %d: qemu sees %v", size, info["virtual-size"])
		}
	}
}

// TestWriteWithTinyCache writes with an L2 cache of four tables, so changed
// tables are written back when evicted, and reopens to write again.
func TestWriteWithTinyCache(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	path := filepath.Join(t.TempDir(), "tiny.qcow2")
	o, _ := formats.ParseOptions(createOptions, "cluster_size=512")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	lim := formats.Limits{CacheBytes: 1}
	size := int64(3 * mib)
	img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o,
		Open: formats.OpenOptions{Limits: lim}})
	if err != nil {
		t.Fatal(err)
	}
	data := testPattern(size, 11)
	writeConcurrently(t, img, data, true)
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	requireQemuAccepts(t, path, data)
	re, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: true, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	patch := bytes.Repeat([]byte{0xee}, 100000)
	if _, err := re.(formats.Writable).WriteAt(patch, 1234567); err != nil {
		t.Fatal(err)
	}
	if err := re.Close(); err != nil {
		t.Fatal(err)
	}
	copy(data[1234567:], patch)
	requireQemuAccepts(t, path, data)
}

// TestReadCompressedWhileWriting reads a compressed cluster while another
// goroutine allocates clusters (run with -race: the read once took the
// host end of the file without the lock).
func TestReadCompressedWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rw.qcow2")
	data := testPattern(2*mib, 1)
	img := createImage(t, path, 16*mib, "cluster_size=4k")
	defer img.Close()
	compressAll(t, img, data)
	off := int64(-1)
	for c := int64(0); c < 2*mib/4096 && off < 0; c++ {
		if e, err := img.Extents(c*4096, 4096); err == nil && len(e) == 1 && e[0].Compressed {
			off = c * 4096
		}
	}
	if off < 0 {
		t.Fatal("no compressed cluster")
	}
	want := data[off : off+4096]
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(stop)
		for i := range int64(1000) {
			if _, err := img.WriteAt(want, 4*mib+i*4096); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	buf := make([]byte, 4096)
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		if _, err := img.ReadAt(buf, off); err != nil || !bytes.Equal(buf, want) {
			t.Errorf("compressed cluster reads wrong while writing (%v)", err)
			break
		}
	}
	wg.Wait()
}
