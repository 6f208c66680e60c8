package vmdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// qemuWrites are qemu-io writes covering partial grains, grain-table
// boundaries (32 MiB) and the last sector.
func qemuWrites(size int64) []string {
	return []string{
		"write -P 0x11 0 4k",
		"write -P 0x22 65024 1536",  // straddles the first grain boundary
		"write -P 0x33 33553920 1m", // straddles a grain table boundary
		fmt.Sprintf("write -P 0x44 %d 512", size-512),
	}
}

func TestReadQemuSubformats(t *testing.T) {
	const size = 64<<20 + 3*512 // odd size
	for _, tc := range []struct{ name, opts string }{
		{"monolithicSparse", "subformat=monolithicSparse"},
		{"monolithicFlat", "subformat=monolithicFlat"},
		{"twoGbMaxExtentSparse", "subformat=twoGbMaxExtentSparse"},
		{"twoGbMaxExtentFlat", "subformat=twoGbMaxExtentFlat"},
		{"zeroedGrain", "zeroed_grain=on"},
		{"lsilogic", "adapter_type=lsilogic,hwversion=14,toolsversion=12345"},
		{"compat6", "compat6=on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.vmdk")
			qemutest.Img(t, "create", "-q", "-f", "vmdk", "-o", tc.opts, path, fmt.Sprint(size))
			cmds := qemuWrites(size)
			if tc.name == "zeroedGrain" {
				cmds = append(cmds, "write -z 0 128k")
			}
			qemutest.IO(t, "vmdk", path, cmds...)
			img := requireSameAsQemu(t, path)
			raw, err := os.ReadFile(qemutest.ToRaw(t, "vmdk", path))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, img), raw) {
				t.Fatal("full read differs from qemu-img convert")
			}
			requireQemuInfo(t, img, path)
			requireCheckClean(t, img)
		})
	}
}

func TestReadQemuStreamOptimized(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", raw, "40M")
	qemutest.IO(t, "raw", raw, "write -P 0x5a 0 100k", "write -P 0xa5 33554432 64k", "write -P 7 41942528 512")
	path := filepath.Join(dir, "s.vmdk")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, path)
	img := requireSameAsQemu(t, path)
	requireQemuInfo(t, img, path)
	requireCheckClean(t, img)
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	if !exts[0].Compressed || exts[0].Kind != formats.Data {
		t.Errorf("first extent %+v, want compressed data", exts[0])
	}
}

func TestReadTwoGbOver4GiB(t *testing.T) {
	for _, sub := range []string{"twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "monolithicSparse"} {
		t.Run(sub, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "big.vmdk")
			const size = 5 << 30
			qemutest.Img(t, "create", "-q", "-f", "vmdk", "-o", "subformat="+sub, path, "5G")
			qemutest.IO(t, "vmdk", path, "write -P 1 2147418112 128k", "write -P 2 4831838208 64k",
				fmt.Sprintf("write -P 3 %d 4k", size-4096))
			img := requireSameAsQemu(t, path)
			if img.Size() != size {
				t.Fatalf("size %d", img.Size())
			}
			buf := make([]byte, 128<<10)
			if _, err := img.ReadAt(buf, 2147418112); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, bytes.Repeat([]byte{1}, len(buf))) {
				t.Fatal("read across the extent boundary")
			}
		})
	}
}

func TestReadDeltaChain(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vmdk")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", base, "8M")
	qemutest.IO(t, "vmdk", base, "write -P 1 0 1m", "write -P 1 4m 1m")
	prev := base
	for i, w := range []string{"write -P 2 512k 1k", "write -P 3 4m 4k"} {
		child := filepath.Join(dir, fmt.Sprintf("snap%d.vmdk", i+1))
		qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", filepath.Base(prev), "-F", "vmdk", child)
		qemutest.IO(t, "vmdk", child, w)
		prev = child
	}
	img := requireSameAsQemu(t, prev)
	raw, _ := os.ReadFile(qemutest.ToRaw(t, "vmdk", prev))
	if !bytes.Equal(readAll(t, img), raw) {
		t.Fatal("full read of the chain differs")
	}
	if img.BackingName() != "snap1.vmdk" || img.Backing() == nil {
		t.Fatalf("backing %q", img.BackingName())
	}

	// Modify the middle layer's CID: the top must refuse with a clear error.
	mid := filepath.Join(dir, "snap1.vmdk")
	data, _ := os.ReadFile(mid)
	i := bytes.Index(data, []byte("CID="))
	copy(data[i+4:], "0badc0de")
	os.WriteFile(mid, data, 0o644)
	_, err := formats.Open(context.Background(), prev, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("parentCID")) {
		t.Fatalf("CID mismatch: %v", err)
	}
}

func TestReadCorpus(t *testing.T) {
	path, digest := qemutest.Corpus(t, "iotest-version3.vmdk")
	img := openPath(t, path)
	if img.Size() != digest.VirtualSize {
		t.Fatalf("size %d, want %d", img.Size(), digest.VirtualSize)
	}
	if got := qemutest.BlockSHA(t, img); got != digest.SHA {
		t.Fatalf("digest %s, want %s", got, digest.SHA)
	}
	requireCheckClean(t, img)
	afl, _ := qemutest.Corpus(t, "afl9.vmdk")
	_, err := formats.Open(context.Background(), afl, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrLimit) && !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("afl9: %v", err)
	}
}

// requireQemuInfo compares Info().Details with qemu-img info's
// format-specific data (values; key order is checked by objectKeys).
func requireQemuInfo(t *testing.T, img *Image, path string) {
	t.Helper()
	info := qemutest.Info(t, "vmdk", path)
	want := info["format-specific"].(map[string]any)["data"]
	got := qemutest.DetailsJSON(t, img.Info().Details)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("format-specific differs from qemu-img (-qemu +vdisk):\n%s", diff)
	}
	if cs, ok := info["cluster-size"]; ok && int64(cs.(float64)) != img.Info().ClusterSize {
		t.Errorf("cluster-size %v, vdisk %d", cs, img.Info().ClusterSize)
	}
}

func requireCheckClean(t *testing.T, img *Image) {
	t.Helper()
	r, err := img.Check(context.Background(), formats.CheckOptions{})
	if err != nil || r.Corruptions != 0 || r.CheckErrors != 0 {
		t.Fatalf("check: %v %+v", err, r)
	}
}

// TestReadCustomExtents reads hand-written descriptors mixing extent types
// (VMFS, FLAT with an offset, ZERO, SPARSE and VMFSSPARSE hosted extents),
// compared with qemu-img.
func TestReadCustomExtents(t *testing.T) {
	dir := t.TempDir()
	flat := bytes.Repeat([]byte("flat data "), 330000)[:3<<20]
	os.WriteFile(filepath.Join(dir, "disk-flat.vmdk"), flat, 0o644)
	sp := filepath.Join(dir, "sp.vmdk")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", sp, "2M")
	qemutest.IO(t, "vmdk", sp, "write -P 0x61 4096 70000")
	for _, tc := range []struct{ name, createType, extents string }{
		{"vmfs", "vmfs", `RW 6144 VMFS "disk-flat.vmdk"`},
		{"vmfsThin", "vmfsThin", `RW 6144 VMFS "disk-flat.vmdk"`},
		{"zero", "custom", "RW 2048 FLAT \"disk-flat.vmdk\" 0\nRW 1000 ZERO\nRW 2048 FLAT \"disk-flat.vmdk\""},
		{"custom", "monolithicFlat", "RW 2048 FLAT \"disk-flat.vmdk\" 2048\nRW 4096 SPARSE \"sp.vmdk\"\nRW 4096 VMFSSPARSE \"sp.vmdk\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"" + tc.createType +
				"\"\n\n# Extent description\n" + tc.extents + "\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n"
			path := filepath.Join(dir, tc.name+".vmdk")
			os.WriteFile(path, []byte(desc), 0o644)
			var img *Image
			var raw []byte
			switch tc.name {
			case "vmfsThin": // qemu 7.2 refuses this createType
				img, raw = openPath(t, path), flat
			case "zero": // qemu 7.2 ignores ZERO extent lines
				img = openPath(t, path)
				raw = append(append(bytes.Clone(flat[:1<<20]), make([]byte, 1000*512)...), flat[:1<<20]...)
			default:
				img = requireSameAsQemu(t, path)
				raw, _ = os.ReadFile(qemutest.ToRaw(t, "vmdk", path))
			}
			if !bytes.Equal(readAll(t, img), raw) {
				t.Fatal("full read differs")
			}
			exts, err := img.Extents(0, img.Size())
			if err != nil {
				t.Fatal(err)
			}
			if exts[0].HostFile != filepath.Join(dir, "disk-flat.vmdk") {
				t.Errorf("first extent host file %q", exts[0].HostFile)
			}
		})
	}
}

func TestActualSizeOfSplitImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.vmdk")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", path, "3G")
	qemutest.IO(t, "vmdk", path, "write -P 1 0 1m", "write -P 2 2500m 1m")
	want := int64(qemutest.Info(t, "vmdk", path)["actual-size"].(float64))
	if got := openPath(t, path).Info().ActualSize; got != want {
		t.Fatalf("actual size %d, qemu %d", got, want)
	}
}

// TestConcurrentReads reads a sparse and a compressed image from several
// goroutines at odd offsets (run with -race).
func TestConcurrentReads(t *testing.T) {
	dir := t.TempDir()
	src := pattern(20 << 20)
	rawPath := filepath.Join(dir, "src.raw")
	os.WriteFile(rawPath, src, 0o644)
	for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
		path := filepath.Join(dir, sub+".vmdk")
		qemutest.Img(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, rawPath, path)
		img := openPath(t, path)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 100003)
				for off := int64(g * 9999); off < img.Size(); off += 4 * 100003 {
					n, _ := img.ReadAt(buf, off)
					if !bytes.Equal(buf[:n], src[off:off+int64(n)]) {
						t.Errorf("%s: read at %d differs", sub, off)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}
