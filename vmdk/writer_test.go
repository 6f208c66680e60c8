package vmdk

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// newImage creates a VMDK at path with vdisk, extents as OS files next to it.
func newImage(t testing.TB, path string, size int64, opts string) formats.Writable {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	req := formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o,
		Siblings: func(name string) (formats.File, error) {
			sf, err := os.OpenFile(filepath.Join(filepath.Dir(path), name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return nil, err
			}
			return formats.NewOSFile(sf), nil
		}}
	w, err := Create(context.Background(), req)
	if err != nil {
		t.Fatalf("create %s: %v", opts, err)
	}
	return w
}

// pattern makes a test disk: data at grain and table boundaries, odd
// offsets and the last bytes, zeros elsewhere.
func pattern(size int64) []byte {
	src := make([]byte, size)
	r := rand.New(rand.NewSource(1))
	for _, span := range [][2]int64{{0, 4096}, {65000, 1500}, {1 << 20, 3 << 20}, {32<<20 - 700, 2000}, {size - 513, 513}} {
		if span[0]+span[1] <= size {
			r.Read(src[span[0] : span[0]+span[1]])
		}
	}
	// A compressible region.
	for i := int64(8 << 20); i < 9<<20 && i < size; i++ {
		src[i] = byte(i / 4096)
	}
	return src
}

// writeParallel writes src to w in 1 MiB chunks from 4 goroutines, in
// unaligned pieces.
func writeParallel(t testing.TB, w formats.Writable, src []byte) {
	t.Helper()
	var wg sync.WaitGroup
	const chunk = 1<<20 + 333
	errs := make(chan error, 1000)
	for worker := 0; worker < 4; worker++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(worker * chunk); off < int64(len(src)); off += 4 * chunk {
				end := min(off+chunk, int64(len(src)))
				if _, err := w.WriteAt(src[off:end], off); err != nil {
					errs <- err
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

func finish(t testing.TB, w formats.Writable) {
	t.Helper()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteSubformats(t *testing.T) {
	const size = 40<<20 + 1536
	src := pattern(size)
	for _, tc := range []struct{ name, opts string }{
		{"default", ""},
		{"monolithicFlat", "subformat=monolithicFlat"},
		{"twoGbMaxExtentSparse", "subformat=twoGbMaxExtentSparse"},
		{"twoGbMaxExtentFlat", "subformat=twoGbMaxExtentFlat"},
		{"streamOptimized", "subformat=streamOptimized"},
		{"zeroedGrain", "zeroed_grain=on"},
		{"lsilogic", "adapter_type=lsilogic,hwversion=14,toolsversion=12345"},
		{"compat6", "compat6=on,adapter_type=buslogic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rawPath := filepath.Join(dir, "src.raw")
			os.WriteFile(rawPath, src, 0o644)
			path := filepath.Join(dir, "out.vmdk")
			w := newImage(t, path, size, tc.opts)
			if tc.name == "streamOptimized" {
				for off := int64(0); off < size; off += 1<<20 + 333 {
					end := min(off+1<<20+333, size)
					if _, err := w.WriteAt(src[off:end], off); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				writeParallel(t, w, src)
				if tc.name == "zeroedGrain" {
					if err := w.(formats.ZeroWriter).WriteZeroes(1<<20, 1<<20); err != nil {
						t.Fatal(err)
					}
					clear(src[1<<20 : 2<<20])
					os.WriteFile(rawPath, src, 0o644)
				}
			}
			finish(t, w)
			qemutest.RequireSame(t, "vmdk", path, "raw", rawPath)
			qemutest.RequireClean(t, "vmdk", path)
			want := "monolithicSparse"
			if s, ok := strings.CutPrefix(tc.opts, "subformat="); ok {
				want = s
			}
			info := qemutest.Info(t, "vmdk", path)
			if got := info["format-specific"].(map[string]any)["data"].(map[string]any)["create-type"]; got != want {
				t.Errorf("create-type %v, want %s", got, want)
			}
			img := openPath(t, path)
			if !bytes.Equal(readAll(t, img), src) {
				t.Fatal("vdisk reads back different content")
			}
			requireQemuInfo(t, img, path)
			requireCheckClean(t, img)
			vmdkinfo(t, path)
			text := descriptorText(t, path)
			for _, k := range []string{"ddb.adapterType", "ddb.geometry.cylinders", "ddb.virtualHWVersion", "createType=\"" + want + "\""} {
				if !strings.Contains(text, k) {
					t.Errorf("descriptor lacks %s:\n%s", k, text)
				}
			}
		})
	}
}

// descriptorText returns the descriptor of a vdisk-written image.
func descriptorText(t testing.TB, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(data, []byte("KDMV")) {
		data = data[512 : 512*21]
	}
	return string(bytes.TrimRight(data, "\x00"))
}

// vmdkinfo runs libvmdk's vmdkinfo when installed.
func vmdkinfo(t testing.TB, path string) {
	t.Helper()
	tool, err := exec.LookPath("vmdkinfo")
	if err != nil {
		t.Log("vmdkinfo not installed")
		return
	}
	out, err := exec.Command(tool, path).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Media size")) {
		t.Fatalf("vmdkinfo %s: %v\n%s", path, err, out)
	}
}

func TestWriteOver4GiBSplit(t *testing.T) {
	for _, sub := range []string{"twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "monolithicSparse", "streamOptimized"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "big.vmdk")
			const size = 5<<30 + 512
			w := newImage(t, path, size, "subformat="+sub)
			if d, ok := w.(*sparseDisk); ok {
				d.exts[0].sp.maxTabs = 2 // exercise grain table eviction
			}
			marks := []int64{0, splitExtentBytes - 4096, 2*splitExtentBytes + 12345, size - 512}
			for i, off := range marks {
				if _, err := w.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 8192)[:min(8192, size-off)], off); err != nil {
					t.Fatal(err)
				}
			}
			finish(t, w)
			qemutest.RequireClean(t, "vmdk", path)
			want := rawSHA(t, qemutest.ToRaw(t, "vmdk", path))
			img := openPath(t, path)
			if got := qemutest.BlockSHA(t, img); got != want {
				t.Fatal("vdisk and qemu-img read the split image differently")
			}
			buf := make([]byte, 8192)
			img.ReadAt(buf, marks[1])
			if !bytes.Equal(buf, bytes.Repeat([]byte{2}, 8192)) {
				t.Fatal("data across the extent split differs")
			}
			if !strings.HasPrefix(sub, "twoGb") {
				return
			}
			kind := "s"
			if strings.HasSuffix(sub, "Flat") {
				kind = "f"
			}
			for i := 1; i <= 3; i++ {
				name := fmt.Sprintf("big-%s%03d.vmdk", kind, i)
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() > 2<<30-1 {
					t.Errorf("%s is %d bytes", name, st.Size())
				}
				if !strings.Contains(descriptorText(t, path), "\""+name+"\"") {
					t.Errorf("descriptor does not name %s", name)
				}
			}
		})
	}
}

func TestWriteDeltaChain(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vmdk")
	const size = 8 << 20
	src := pattern(size)
	w := newImage(t, base, size, "")
	writeParallel(t, w, src)
	finish(t, w)
	prev := "base.vmdk"
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("snap%d.vmdk", i)
		w := newImage(t, filepath.Join(dir, name), 0, "backing_file="+prev)
		// Partial grain writes must copy the rest of the grain from the parent.
		off := int64(i*100000 + 17)
		piece := bytes.Repeat([]byte{byte(0xe0 + i)}, 3000)
		if _, err := w.WriteAt(piece, off); err != nil {
			t.Fatal(err)
		}
		copy(src[off:], piece)
		finish(t, w)
		prev = name
	}
	top := filepath.Join(dir, prev)
	rawPath := filepath.Join(dir, "want.raw")
	os.WriteFile(rawPath, src, 0o644)
	qemutest.RequireSame(t, "vmdk", top, "raw", rawPath)
	qemutest.RequireClean(t, "vmdk", top)
	img := openPath(t, top)
	if got := readAll(t, img); !bytes.Equal(got, src) {
		t.Fatal("vdisk reads the chain differently")
	}
	requireQemuInfo(t, img, top)
	info := qemutest.Info(t, "vmdk", top)
	if info["backing-filename"] != "snap1.vmdk" {
		t.Errorf("backing-filename %v", info["backing-filename"])
	}
}

// TestWriteDeltaParallel writes unaligned pieces into a delta disk from
// several goroutines: grains shared by two writers must merge both writes
// with the parent's data.
func TestWriteDeltaParallel(t *testing.T) {
	dir := t.TempDir()
	const size = 6 << 20
	src := pattern(size)
	w := newImage(t, filepath.Join(dir, "base.vmdk"), size, "")
	writeParallel(t, w, src)
	finish(t, w)
	child := newImage(t, filepath.Join(dir, "child.vmdk"), 0, "backing_file=base.vmdk")
	r := rand.New(rand.NewSource(9))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		lo := int64(100001 + i*1000003)
		piece := make([]byte, 1000003)
		r.Read(piece)
		copy(src[lo:], piece)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := 0; off < len(piece); off += 7777 {
				end := min(off+7777, len(piece))
				if _, err := child.WriteAt(piece[off:end], lo+int64(off)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	finish(t, child)
	rawPath := filepath.Join(dir, "want.raw")
	os.WriteFile(rawPath, src, 0o644)
	qemutest.RequireSame(t, "vmdk", filepath.Join(dir, "child.vmdk"), "raw", rawPath)
	qemutest.RequireClean(t, "vmdk", filepath.Join(dir, "child.vmdk"))
}

// TestZeroedGrainInDelta zeroes grains of a delta disk (zeroed_grain=on),
// then writes part of one: the rest must stay zero, not the parent's data.
func TestZeroedGrainInDelta(t *testing.T) {
	dir := t.TempDir()
	const size = 4 << 20
	src := pattern(size)
	base := newImage(t, filepath.Join(dir, "base.vmdk"), size, "")
	writeParallel(t, base, bytes.Repeat([]byte{0x77}, size))
	finish(t, base)
	clear(src)
	for i := range src {
		src[i] = 0x77
	}
	child := newImage(t, filepath.Join(dir, "child.vmdk"), 0, "backing_file=base.vmdk,zeroed_grain=on")
	if err := child.(formats.ZeroWriter).WriteZeroes(0, 1<<20); err != nil {
		t.Fatal(err)
	}
	clear(src[:1<<20])
	if _, err := child.WriteAt([]byte("hello"), 70000); err != nil {
		t.Fatal(err)
	}
	copy(src[70000:], "hello")
	// Partial zeroing of a grain writes explicit zeros over the parent.
	if err := child.(formats.ZeroWriter).WriteZeroes(2<<20+100, 1000); err != nil {
		t.Fatal(err)
	}
	clear(src[2<<20+100 : 2<<20+1100])
	finish(t, child)
	rawPath := filepath.Join(dir, "want.raw")
	os.WriteFile(rawPath, src, 0o644)
	qemutest.RequireSame(t, "vmdk", filepath.Join(dir, "child.vmdk"), "raw", rawPath)
	qemutest.RequireClean(t, "vmdk", filepath.Join(dir, "child.vmdk"))
	img := openPath(t, filepath.Join(dir, "child.vmdk"))
	if !bytes.Equal(readAll(t, img), src) {
		t.Fatal("vdisk reads the delta differently")
	}
	exts, _ := img.Extents(0, 64<<10)
	if exts[0].Kind != formats.Zero {
		t.Errorf("zeroed grain reported as %v", exts[0].Kind)
	}
}
