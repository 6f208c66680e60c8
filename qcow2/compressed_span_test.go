package qcow2

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// compressedSpan is one compressed cluster as an independent reader sees
// it: the L2 descriptor's host offset and the 512-byte sectors it spans.
type compressedSpan struct {
	virt, host, end int64 // end: the end of the last sector
}

// readCompressedSpans parses a qcow2 file without the package's reader:
// header fields at their spec offsets, the L1 table, each L2 table, and the
// compressed-cluster descriptors (qcow2 spec: x = 62 - (cluster_bits - 8)
// low bits of host offset, then cluster_bits - 8 bits of sector count - 1).
func readCompressedSpans(t *testing.T, path string) (spans []compressedSpan, fileLen int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	if len(data) < 104 || be.Uint32(data) != 0x514649fb {
		t.Fatalf("%s: not a qcow2 file", path)
	}
	clusterBits := be.Uint32(data[20:])
	l1Size, l1Off := int64(be.Uint32(data[36:])), int64(be.Uint64(data[40:]))
	if be.Uint32(data[4:]) >= 3 && be.Uint64(data[72:])&(1<<4) != 0 {
		t.Fatalf("%s: extended L2 entries: not parsed here", path)
	}
	cs := int64(1) << clusterBits
	x := 62 - (clusterBits - 8)
	entry := func(off int64) uint64 {
		if off < 0 || off+8 > int64(len(data)) {
			t.Fatalf("%s: table entry at %d outside the %d-byte file", path, off, len(data))
		}
		return be.Uint64(data[off:])
	}
	l2Entries := cs / 8
	for i := range l1Size {
		l2 := int64(entry(l1Off+8*i) & 0x00fffffffffffe00)
		if l2 == 0 {
			continue
		}
		for j := range l2Entries {
			e := entry(l2 + 8*j)
			if e&(1<<62) == 0 {
				continue
			}
			host := int64(e & (1<<x - 1))
			sectors := int64((e>>x)&(1<<(clusterBits-8)-1)) + 1
			spans = append(spans, compressedSpan{virt: (i*l2Entries + j) * cs, host: host, end: host&^511 + sectors*512})
		}
	}
	return spans, int64(len(data))
}

// requireSpansInside checks what a sector-based reader needs: the file is
// whole sectors and every compressed cluster's sectors are in it; and each
// cluster inflates (stdlib) from exactly its span to cluster-size bytes
// equal to the data.
func requireSpansInside(t *testing.T, path string, data []byte, cs int64, zstdCompressed bool) {
	t.Helper()
	spans, fileLen := readCompressedSpans(t, path)
	if len(spans) == 0 {
		t.Fatalf("%s: no compressed clusters", path)
	}
	if fileLen%512 != 0 {
		t.Errorf("%s: length %d is not a multiple of 512", path, fileLen)
	}
	raw, _ := os.ReadFile(path)
	for _, s := range spans {
		if s.end > fileLen {
			t.Fatalf("%s: compressed cluster at %d: sectors %d..%d end past the file (%d bytes)", path, s.virt, s.host&^511, s.end, fileLen)
		}
		if zstdCompressed || data == nil {
			continue
		}
		got, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw[s.host:s.end])), cs))
		want := make([]byte, cs)
		copy(want, data[s.virt:])
		if err != nil && err != io.ErrUnexpectedEOF || !bytes.Equal(got, want) {
			t.Fatalf("%s: compressed cluster at %d does not inflate to its data (%v)", path, s.virt, err)
		}
	}
}

// TestCompressedSpansInsideFile: vdisk's compressed qcow2 files end on a
// sector boundary with every compressed cluster's sectors inside (the
// reader check above, which qemu's own -c output passes too), at every
// cluster size, level and method; qemu-img checks and reads them.
func TestCompressedSpansInsideFile(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	size := int64(3*mib + 5*512)
	data := testPattern(size, 7)
	rawPath := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(rawPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "qemu.qcow2")
	qemutest.Img(t, "convert", "-c", "-f", "raw", "-O", "qcow2", rawPath, theirs)
	requireSpansInside(t, theirs, data, 65536, false)
	for i, o := range []string{"", "compression_level=1", "compression_level=9", "cluster_size=4k", "cluster_size=512",
		"cluster_size=2M,compression_level=3", "compat=0.10,cluster_size=16k", "compression_type=zstd,compression_level=1"} {
		t.Run(o, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("s%d.qcow2", i))
			img := createImage(t, path, size, o)
			compressAll(t, img, data)
			cs := img.ClusterSize()
			if err := img.Close(); err != nil {
				t.Fatal(err)
			}
			requireSpansInside(t, path, data, cs, strings.Contains(o, "zstd"))
			requireQemuAccepts(t, path, data)
			back := filepath.Join(dir, fmt.Sprintf("s%d.raw", i))
			qemutest.Img(t, "convert", "-f", "qcow2", "-O", "raw", path, back)
			got, err := os.ReadFile(back)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("qemu-img convert reads back different data (%v)", err)
			}
		})
	}
}

// TestCompressionLevelOption: 1..9 are taken, each level's image passes
// qemu-img check and reads as the data it was given, a higher level is no
// larger than a lower one on compressible data, and 0 or 10 are refused.
func TestCompressionLevelOption(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	size := int64(2 * mib)
	data := testPattern(size, 11)
	rawPath := filepath.Join(dir, "data.raw")
	if err := os.WriteFile(rawPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, lv := range []int{1, 6, 9} {
		path := filepath.Join(dir, fmt.Sprintf("l%d.qcow2", lv))
		img := createImage(t, path, size, fmt.Sprintf("compression_level=%d", lv))
		compressAll(t, img, data)
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		qemutest.RequireClean(t, "qcow2", path)
		qemutest.RequireSame(t, "qcow2", path, "raw", rawPath)
		fi, _ := os.Stat(path)
		sizes = append(sizes, fi.Size())
	}
	if sizes[1] > sizes[0] || sizes[2] > sizes[1] {
		t.Errorf("sizes at levels 1, 6, 9: %v (want non-increasing)", sizes)
	}
	for _, bad := range []string{"compression_level=0", "compression_level=10"} {
		o, err := formats.ParseOptions(createOptions, bad)
		if err == nil {
			var co CreateOptions
			if co, err = decodeOptions(o); err == nil {
				_, err = parseParams("x.qcow2", co)
			}
		}
		if err == nil || !strings.Contains(err.Error(), "compression_level") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestCompressedSizeMatchesQemu: at the default level, vdisk's -c output
// (through the conversion engine) is at most 1% larger than qemu-img's on
// text-like data (base64) and on mixed data with binary-like content.
func TestCompressedSizeMatchesQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	r := rand.New(rand.NewSource(3))
	rnd := make([]byte, 3*mib)
	r.Read(rnd)
	b64 := []byte(base64.StdEncoding.EncodeToString(rnd))[:4*mib]
	for name, data := range map[string][]byte{"base64": b64, "mixed": testPattern(4*mib, 5)} {
		rawPath := filepath.Join(dir, name+".raw")
		if err := os.WriteFile(rawPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		theirs := filepath.Join(dir, name+".qemu.qcow2")
		qemutest.Img(t, "convert", "-c", "-f", "raw", "-O", "qcow2", rawPath, theirs)
		ours := filepath.Join(dir, name+".qcow2")
		dst := createImage(t, ours, int64(len(data)), "")
		src := openPath(t, rawPath, formats.OpenOptions{})
		if err := convert.Copy(context.Background(), dst, src, convert.Options{Compress: true, TargetIsZero: true}); err != nil {
			t.Fatal(err)
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
		qemutest.RequireSame(t, "qcow2", ours, "raw", rawPath)
		a, _ := os.Stat(ours)
		b, _ := os.Stat(theirs)
		ratio := float64(a.Size()) / float64(b.Size())
		t.Logf("%s: vdisk %d bytes, qemu-img %d bytes (%.4f)", name, a.Size(), b.Size(), ratio)
		if ratio > 1.01 {
			t.Errorf("%s: vdisk's -c output is %.2f%% larger than qemu-img's", name, 100*(ratio-1))
		}
	}
}
