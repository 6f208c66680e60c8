package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/internal/zero"
)

// create makes an image at path with vdisk's driver.
func create(t testing.TB, path string, size int64, opts string) *Image {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o})
	if err != nil {
		f.Close()
		t.Fatalf("create %s (%s): %v", path, opts, err)
	}
	return img
}

// pattern is a deterministic set of writes: (offset, bytes).
type write struct {
	off  int64
	data []byte
}

func patternFor(size int64, seed int64) []write {
	r := rand.New(rand.NewSource(seed))
	var ws []write
	for _, w := range []struct{ off, n int64 }{
		{0, 4096}, {1 << 20, 3 << 20}, {5000 << 10, 17 << 10}, {9 << 20, 512},
		{3<<20 + 100, 1000}, {size - 700, 700}, {7 << 20, 1}, {(2 << 20) - 3, 6},
	} {
		if w.off < 0 || w.off+w.n > size {
			continue
		}
		b := make([]byte, w.n)
		r.Read(b)
		ws = append(ws, write{w.off, b})
	}
	return ws
}

// applyRaw writes the pattern into a raw file of size bytes.
func applyRaw(t testing.TB, path string, size int64, ws []write) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
}

func apply(t testing.TB, img formats.Writable, ws []write) {
	t.Helper()
	for _, w := range ws {
		if _, err := img.WriteAt(w.data, w.off); err != nil {
			t.Fatalf("write at %d: %v", w.off, err)
		}
	}
}

func finish(t testing.TB, img formats.Writable) {
	t.Helper()
	if err := img.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
}

// requireQemuReads requires qemu-img to read the VHD at path as a disk of
// size bytes holding ws (zeros elsewhere).
func requireQemuReads(t *testing.T, path string, size int64, ws []write) {
	t.Helper()
	if got := int64(qemutest.Info(t, "vpc", path)["virtual-size"].(float64)); got != size {
		t.Errorf("%s: qemu reads size %d, want %d", path, got, size)
	}
	raw := filepath.Join(t.TempDir(), "want.raw")
	applyRaw(t, raw, size, ws)
	qemutest.RequireSame(t, "vpc", path, "raw", raw)
}

func requireVhdiinfo(t *testing.T, path string) string {
	t.Helper()
	bin, err := exec.LookPath("vhdiinfo")
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatal("vhdiinfo missing")
		}
		t.Skip("vhdiinfo (libvhdi-utils) not installed")
	}
	out, err := exec.Command(bin, path).CombinedOutput()
	if err != nil {
		t.Fatalf("vhdiinfo %s: %v\n%s", path, err, out)
	}
	return string(out)
}

func TestWriteInterop(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		opts string
		want int64 // virtual size after CHS rounding
	}{
		{"dynamic", 10 << 20, "", 10514432},
		{"dynamic-force", 10 << 20, "force_size=on", 10 << 20},
		{"dynamic-odd", 10000001, "", 10027008},
		{"dynamic-odd-force", 10000001, "force_size=on", 10000384},
		{"dynamic-512k-blocks", 12 << 20, "block_size=512K,force_size=on", 12 << 20},
		{"dynamic-64k-blocks", 12 << 20, "block_size=64K", 0},
		{"fixed", 10 << 20, "subformat=fixed", 10514432},
		{"fixed-force", 10 << 20, "subformat=fixed,force_size=on", 10 << 20},
		{"fixed-odd", 9999999, "subformat=fixed", 0},
		{"fixed-odd-force", 9999999, "subformat=fixed,force_size=on", 10000384},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src.raw"), filepath.Join(dir, "out.vhd")
			ws := patternFor(tc.size, 1)
			applyRaw(t, src, tc.size, ws)
			img := create(t, dst, tc.size, tc.opts)
			if tc.want != 0 && img.Size() != tc.want {
				t.Errorf("size %d, want %d", img.Size(), tc.want)
			}
			if img.Size() < tc.size {
				t.Fatalf("size %d below the request %d", img.Size(), tc.size)
			}
			apply(t, img, ws)
			finish(t, img)
			// qemu agrees on the size and the content (equal prefix, zero tail).
			if got := int64(qemutest.Info(t, "vpc", dst)["virtual-size"].(float64)); got != img.Size() {
				t.Errorf("qemu reads size %d, vdisk wrote %d", got, img.Size())
			}
			qemutest.RequireSame(t, "vpc", dst, "raw", src)
			requireVhdiinfo(t, dst)
			back := openPath(t, dst, formats.OpenOptions{})
			raw, _ := os.ReadFile(src)
			got := readAll(t, back, 1<<20)
			if !bytes.Equal(got[:len(raw)], raw) || !zero.Is(got[len(raw):]) {
				t.Errorf("read back differs at %d", firstDiff(got, raw))
			}
		})
	}
}

func TestDynamicLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.vhd")
	img := create(t, path, 5<<20, "force_size=on")
	if _, err := img.WriteAt([]byte{1}, 4<<20); err != nil {
		t.Fatal(err)
	}
	finish(t, img)
	data, _ := os.ReadFile(path)
	// footer copy, header, BAT of exactly 3 entries padded with 0xFF,
	// one block (bitmap all ones), footer.
	if len(data) != 2048+512+(2<<20)+512 {
		t.Fatalf("file size %d", len(data))
	}
	if !bytes.Equal(data[:512], data[len(data)-512:]) {
		t.Errorf("footer copy differs from the footer")
	}
	h := decodeHeader(data[512:1536])
	if h.MaxTableEntries != 3 || h.DataOffset != noDataOffset || h.TableOffset != 1536 ||
		checksum(data[512:1536], headerSumOff) != h.Checksum {
		t.Errorf("header %+v", h)
	}
	bat := data[1536:2048]
	if binary.BigEndian.Uint32(bat[8:]) != 2048/512 || !bytes.Equal(bat[:8], bytes.Repeat([]byte{0xFF}, 8)) ||
		!bytes.Equal(bat[12:], bytes.Repeat([]byte{0xFF}, 500)) {
		t.Errorf("BAT % x", bat[:16])
	}
	if !bytes.Equal(data[2048:2560], bytes.Repeat([]byte{0xFF}, 512)) {
		t.Errorf("bitmap not all ones")
	}
	ft := decodeFooter(data[len(data)-512:])
	if string(ft.CreatorApp[:]) != "qem2" || ft.DataOffset != 512 || ft.DiskType != typeDynamic || ft.CurrentSize != 5<<20 {
		t.Errorf("footer %+v", ft)
	}
}

// TestAzureFixed asserts what Azure checks: a fixed disk, file size N MiB +
// 512, current size = file size − 512, a valid footer checksum.
func TestAzureFixed(t *testing.T) {
	for _, opts := range []string{"subformat=fixed,force_size=on", "azure=on"} {
		path := filepath.Join(t.TempDir(), "azure.vhd")
		img := create(t, path, 30<<20, opts)
		ws := patternFor(30<<20, 2)
		apply(t, img, ws)
		finish(t, img)
		requireQemuReads(t, path, 30<<20, ws)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 30<<20+512 {
			t.Fatalf("%s: file size %d, want %d", opts, len(data), 30<<20+512)
		}
		b := data[len(data)-512:]
		ft := decodeFooter(b)
		want := func(field string, got, want any) {
			if got != want {
				t.Errorf("%s: %s = %v, want %v", opts, field, got, want)
			}
		}
		want("cookie", string(ft.Cookie[:]), "conectix")
		want("features", ft.Features, uint32(2))
		want("version", ft.FileVersion, uint32(0x00010000))
		want("data offset", ft.DataOffset, ^uint64(0))
		want("disk type", ft.DiskType, typeFixed)
		want("current size", ft.CurrentSize, uint64(len(data)-512))
		want("original size", ft.OriginalSize, uint64(len(data)-512))
		want("creator", string(ft.CreatorApp[:]), "qem2")
		want("creator OS", string(ft.CreatorOS[:]), "Wi2k")
		want("checksum", ft.Checksum, checksum(b, footerSumOff))
		want("stored checksum", binary.BigEndian.Uint32(b[64:]), checksum(b, footerSumOff))
		want("MiB aligned", ft.CurrentSize%(1<<20), uint64(0))
		if ft.UniqueID == ([16]byte{}) {
			t.Errorf("null UUID")
		}
		if !zero.Is(b[85:]) {
			t.Errorf("reserved bytes not zero")
		}
	}
}

func TestAzureRefusesOddSizes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.vhd")
	f, _ := os.Create(path)
	defer f.Close()
	o, _ := formats.ParseOptions(createOptions, "azure=on")
	_, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 30<<20 + 512, Options: o})
	if err == nil || !strings.Contains(err.Error(), "32505856") || !strings.Contains(err.Error(), "azure_round_up=on") {
		t.Fatalf("err = %v", err)
	}
	img := create(t, path, 30<<20+512, "azure=on,azure_round_up=on")
	if img.Size() != 31<<20 {
		t.Errorf("rounded size %d", img.Size())
	}
	ws := patternFor(img.Size(), 4)
	apply(t, img, ws)
	finish(t, img)
	if fi, err := os.Stat(path); err != nil || fi.Size() != 31<<20+512 {
		t.Errorf("file size %v (%v), want %d", fi, err, 31<<20+512)
	}
	requireQemuReads(t, path, 31<<20, ws)
	for _, opts := range []string{"azure=on,subformat=dynamic", "azure=on,force_size=off", "azure_round_up=on"} {
		o, _ := formats.ParseOptions(createOptions, opts)
		co, err := decodeOptions(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := planCreate(co, 1<<20); err == nil {
			t.Errorf("%s accepted", opts)
		}
	}
	// The typed spelling of the same refusal: an explicit ForceSize false.
	off := false
	if _, err := planCreate(CreateOptions{Azure: true, ForceSize: &off, BlockSize: defaultBlockSize}, 1<<20); err == nil {
		t.Error("typed azure with ForceSize false accepted")
	}
}

// TestFixedStream writes a fixed disk to a pipe-like stream in one pass and
// checks the result is the data followed by the footer.
func TestFixedStream(t *testing.T) {
	var buf bytes.Buffer
	s := fileio.NewStream(&buf, "stdout")
	o, _ := formats.ParseOptions(createOptions, "subformat=fixed,force_size=on")
	img, err := Create(context.Background(), formats.CreateRequest{File: s, Name: "stdout", Size: 3 << 20, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if !img.Sequential() {
		t.Fatal("fixed disk on a stream is not sequential")
	}
	// Sequential writers get increasing offsets, with gaps.
	raw := make([]byte, 3<<20)
	for _, off := range []int64{0, 4096, 1 << 20, 2<<20 + 17} {
		b := bytes.Repeat([]byte{byte(off>>12) | 1}, 1000)
		copy(raw[off:], b)
		if _, err := img.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := img.WriteZeroes(2<<20+2000, 1000); err != nil {
		t.Fatal(err)
	}
	finish(t, img)
	out := buf.Bytes()
	if len(out) != 3<<20+512 || !bytes.Equal(out[:3<<20], raw) || !footerValid(out[3<<20:]) {
		t.Fatalf("stream output: %d bytes", len(out))
	}
	path := filepath.Join(t.TempDir(), "s.vhd")
	os.WriteFile(path, out, 0o644)
	rawPath := filepath.Join(t.TempDir(), "s.raw")
	os.WriteFile(rawPath, raw, 0o644)
	qemutest.RequireSame(t, "vpc", path, "raw", rawPath)

	// A dynamic disk cannot go to a stream.
	o, _ = formats.ParseOptions(createOptions, "")
	if _, err := Create(context.Background(), formats.CreateRequest{File: fileio.NewStream(&buf, "x"), Name: "x", Size: 1 << 20, Options: o}); err == nil {
		t.Error("dynamic to stream accepted")
	}
}

// TestConcurrentWrites writes disjoint, unaligned ranges sharing blocks and
// sectors from many goroutines.
func TestConcurrentWrites(t *testing.T) {
	for _, opts := range []string{"force_size=on", "force_size=on,block_size=4K", "subformat=fixed,force_size=on"} {
		path := filepath.Join(t.TempDir(), "c.vhd")
		const size = 8 << 20
		img := create(t, path, size, opts)
		want := make([]byte, size)
		rand.New(rand.NewSource(5)).Read(want)
		var wg sync.WaitGroup
		const piece = 3001 // unaligned pieces: neighbours share sectors
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for off := w * piece; off < size; off += 8 * piece {
					end := min(off+piece, size)
					if _, err := img.WriteAt(want[off:end], int64(off)); err != nil {
						t.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		finish(t, img)
		back := openPath(t, path, formats.OpenOptions{})
		if got := readAll(t, back, 1<<20); !bytes.Equal(got, want) {
			t.Fatalf("%s: differs at %d", opts, firstDiff(got, want))
		}
	}
}

// TestReopenWrite writes into a qemu-made image opened writable.
func TestReopenWrite(t *testing.T) {
	path := qemuImage(t, "10M", "force_size=on", "write -P 0x11 0 1M")
	f, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	im, err := Open(context.Background(), f, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	img := im.(*Image)
	apply(t, img, []write{{512 << 10, bytes.Repeat([]byte{0x99}, 4096)}, {6 << 20, []byte("hello")}})
	finish(t, img)
	qemutest.IO(t, "vpc", path, "read -P 0x99 512k 4k", "read -P 0x11 0 512k", "read -P 0x68 6m 1", "read -P 0 4m 1m")
}

func TestMeasure(t *testing.T) {
	measureWith := func(opts string, src formats.Image) formats.Measurement {
		o, err := formats.ParseOptions(createOptions, opts)
		if err != nil {
			t.Fatal(err)
		}
		m, err := measure(context.Background(), formats.MeasureRequest{Size: 10 << 20, Options: o, Source: src})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := measureWith("subformat=fixed,force_size=on", nil); m.Required != 10<<20+512 || m.FullyAllocated != m.Required {
		t.Errorf("fixed: %+v", m)
	}
	// 10 MiB rounds up to 10514432 bytes: 6 blocks; BAT of one sector.
	full := int64(2048 + 6*(512+2<<20) + 512)
	if m := measureWith("", nil); m.FullyAllocated != full {
		t.Errorf("dynamic: %+v, want %d", m, full)
	}
	// A source with data in two blocks: what vdisk then writes.
	src := openPath(t, qemuImage(t, "10M", "force_size=on", "write 0 4k", "write 5m 1m"), formats.OpenOptions{})
	m := measureWith("force_size=on", src)
	path := filepath.Join(t.TempDir(), "m.vhd")
	img := create(t, path, 10<<20, "force_size=on")
	buf := make([]byte, 1<<20)
	for _, off := range []int64{0, 5 << 20} {
		src.ReadAt(buf, off)
		img.WriteAt(buf, off)
	}
	finish(t, img)
	st, _ := os.Stat(path)
	if m.Required != st.Size() {
		t.Errorf("required %d, vdisk wrote %d bytes", m.Required, st.Size())
	}
}

func TestInfoOfQemuImage(t *testing.T) {
	img := openPath(t, qemuImage(t, "10M", ""), formats.OpenOptions{})
	info := img.Info()
	for key, want := range map[string]any{
		"subformat": "dynamic", "creator-app": "qemu", "creator-version": "5.3", "creator-os": "Wi2k",
		"geometry": "302/4/17", "geometry-size": int64(10514432), "current-size": int64(10514432),
		"size-source": "geometry", "block-size": int64(2 << 20),
	} {
		if got := fieldOf(info.Details, key); got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
}

// TestQemuWritesVdiskImage: qemu-io writes into images vdisk made, and both
// tools then read the same bytes.
func TestQemuWritesVdiskImage(t *testing.T) {
	for _, opts := range []string{"", "force_size=on,block_size=512K", "subformat=fixed"} {
		path := filepath.Join(t.TempDir(), "v.vhd")
		img := create(t, path, 6<<20, opts)
		apply(t, img, []write{{1 << 20, bytes.Repeat([]byte{7}, 4096)}})
		finish(t, img)
		qemutest.IO(t, "vpc", path, "write -P 0x21 0 64k", "write -P 0x22 1m 512", "write -P 0x23 5m 1m")
		requireSameAsQemu(t, path, formats.OpenOptions{})
	}
}
