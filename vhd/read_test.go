package vhd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// openPath opens path through the registry (probing, as the CLI does).
func openPath(t testing.TB, path string, opts formats.OpenOptions) *Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { img.Close() })
	v, ok := img.(*Image)
	if !ok {
		t.Fatalf("%s opened as %s", path, img.Format())
	}
	return v
}

// readAll reads the whole virtual disk with reads of chunk bytes.
func readAll(t testing.TB, img formats.Image, chunk int) []byte {
	t.Helper()
	out := make([]byte, img.Size())
	for off := 0; off < len(out); off += chunk {
		end := min(off+chunk, len(out))
		if _, err := img.ReadAt(out[off:end], int64(off)); err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	return out
}

// requireSameAsQemu checks vdisk reads path exactly as `qemu-img convert -O
// raw` does.
func requireSameAsQemu(t *testing.T, path string, opts formats.OpenOptions) *Image {
	t.Helper()
	img := openPath(t, path, opts)
	raw, err := os.ReadFile(qemutest.ToRaw(t, "vpc", path))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != img.Size() {
		t.Fatalf("virtual size %d, qemu says %d", img.Size(), len(raw))
	}
	for _, chunk := range []int{1 << 20, 65536 + 17} {
		if got := readAll(t, img, chunk); !bytes.Equal(got, raw) {
			t.Fatalf("content differs from qemu's (chunk %d) at offset %d", chunk, firstDiff(got, raw))
		}
	}
	if sha := qemutest.BlockSHA(t, img); sha != qemutest.FileBlockSHA(t, qemutest.ToRaw(t, "vpc", path)) {
		t.Fatalf("BlockSHA through extents differs from qemu's raw")
	}
	return img
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// qemuImage makes a VHD with qemu-img and writes a pattern with qemu-io.
func qemuImage(t *testing.T, size string, opts string, writes ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.vhd")
	args := []string{"create", "-q", "-f", "vpc"}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	qemutest.Img(t, append(args, path, size)...)
	if len(writes) > 0 {
		qemutest.IO(t, "vpc", path, writes...)
	}
	return path
}

var patternWrites = []string{
	"write -P 0x11 0 4k",
	"write -P 0x22 1M 3M",
	"write -P 0x33 5000k 17k",
	"write -P 0x44 9m 512",
}

func TestReadQemuImages(t *testing.T) {
	for _, tc := range []struct{ name, size, opts string }{
		{"dynamic", "10M", ""},
		{"dynamic-force", "10M", "force_size=on"},
		{"dynamic-odd", "10000001", ""},
		{"dynamic-odd-force", "10000001", "force_size=on"},
		{"fixed", "10M", "subformat=fixed"},
		{"fixed-force", "10M", "subformat=fixed,force_size=on"},
		{"fixed-odd", "9999999", "subformat=fixed"},
		{"fixed-odd-force", "9999999", "subformat=fixed,force_size=on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := qemuImage(t, tc.size, tc.opts, patternWrites...)
			img := requireSameAsQemu(t, path, formats.OpenOptions{})
			want := int64(qemutest.Info(t, "vpc", path)["virtual-size"].(float64))
			if img.Size() != want {
				t.Errorf("size %d, qemu info says %d", img.Size(), want)
			}
		})
	}
}

func TestExtentsDynamic(t *testing.T) {
	path := qemuImage(t, "10M", "", "write -P 0x22 2M 1M")
	img := openPath(t, path, formats.OpenOptions{})
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	// Unallocated blocks of a standalone disk read as zeros (qemu's map:
	// present, zero).
	if len(exts) != 3 || exts[0].Kind != formats.Zero || exts[1].Kind != formats.Data ||
		exts[1].Offset != 2<<20 || exts[1].Length != 2<<20 || exts[2].Kind != formats.Zero {
		t.Fatalf("extents %+v", exts)
	}
	// qemu's map puts the data of the only block right after its bitmap.
	if exts[1].HostOffset != 2048+512 {
		t.Errorf("host offset %d", exts[1].HostOffset)
	}
	if info := img.Info(); info.ClusterSize != 2<<20 {
		t.Errorf("cluster size %d", info.ClusterSize)
	}
}

func TestFixedDetectedByContent(t *testing.T) {
	path := qemuImage(t, "4M", "subformat=fixed,force_size=on", "write -P 0x5a 0 1M")
	f, err := formats.OpenOSFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := formats.Detect(f)
	if err != nil || d.Name != Name {
		t.Fatalf("detected %v, %v", d, err)
	}
	img := openPath(t, path, formats.OpenOptions{Format: "vhd"})
	if img.Size() != 4<<20 || img.Info().ClusterSize != 0 {
		t.Errorf("size %d", img.Size())
	}
}

// legacyFixed turns a fixed VHD with a 512-byte footer into one with the
// 511-byte footer of images before Virtual PC 2004.
func TestLegacyFooter(t *testing.T) {
	path := qemuImage(t, "1M", "subformat=fixed,force_size=on", "write -P 0x77 0 64k")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(data) - footerSize
	legacy := append(data[:n:n], data[n:n+legacyFooterSize]...)
	lp := filepath.Join(t.TempDir(), "legacy.vhd")
	if err := os.WriteFile(lp, legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	img := openPath(t, lp, formats.OpenOptions{})
	if img.Size() != 1<<20 || img.footerLen != legacyFooterSize {
		t.Fatalf("size %d footer %d", img.Size(), img.footerLen)
	}
	if got := readAll(t, img, 1<<20); !bytes.Equal(got, data[:1<<20]) {
		t.Errorf("legacy content differs")
	}
}

func TestCorpus(t *testing.T) {
	for _, name := range []string{"hyperv2012r2-dynamic.vhd", "virtualpc-dynamic.vhd", "d2v-zerofilled.vhd"} {
		t.Run(name, func(t *testing.T) {
			path, dig := qemutest.Corpus(t, name)
			img := openPath(t, path, formats.OpenOptions{})
			if img.Size() != dig.VirtualSize {
				t.Errorf("size %d, DIGESTS says %d", img.Size(), dig.VirtualSize)
			}
			if sha := qemutest.BlockSHA(t, img); sha != dig.SHA {
				t.Errorf("digest %s, want %s", sha, dig.SHA)
			}
			if name != "d2v-zerofilled.vhd" {
				return
			}
			// Every block of the Disk2vhd sample is allocated: extents say data.
			exts, err := img.Extents(0, img.Size())
			if err != nil {
				t.Fatal(err)
			}
			var covered int64
			for _, e := range exts {
				if e.Kind != formats.Data || e.Offset != covered {
					t.Fatalf("extent %+v", e)
				}
				covered = e.End()
			}
			if covered != img.Size() {
				t.Errorf("extents cover %d of %d bytes", covered, img.Size())
			}
			spec := fmt.Sprint(imageinfo.Ordered(img.Info().Details))
			if !strings.Contains(spec, "d2v") || !strings.Contains(spec, "current-size") {
				t.Errorf("info %s", spec)
			}
		})
	}
}

func TestAFL5Refused(t *testing.T) {
	path, _ := qemutest.Corpus(t, "afl5.img")
	_, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrLimit) && !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("afl5.img: %v", err)
	}
	t.Log(err)
}
