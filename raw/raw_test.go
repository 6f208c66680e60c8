package raw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/raw"
)

// sparseFile makes a 16 MiB raw file with data at a few places, holes
// elsewhere, using qemu-io so the layout is made by the oracle's tool.
func sparseFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.raw")
	qemutest.Img(t, "create", "-f", "raw", path, "16M")
	qemutest.IO(t, "raw", path, "write -P 0x11 0 4k", "write -P 0x22 1M 64k", "write -P 0x33 10M 3k", "write -P 0x44 16380k 4k")
	return path
}

func TestExtentsMatchQemuMap(t *testing.T) {
	path := sparseFile(t)
	var qemuMap []struct {
		Start, Length int64
		Zero, Data    bool
		Offset        int64
	}
	if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "--output=json", "-f", "raw", path)), &qemuMap); err != nil {
		t.Fatal(err)
	}
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Format: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != len(qemuMap) {
		t.Fatalf("vdisk has %d extents, qemu %d: %+v vs %+v", len(exts), len(qemuMap), exts, qemuMap)
	}
	for i, e := range exts {
		q := qemuMap[i]
		if e.Offset != q.Start || e.Length != q.Length || (e.Kind == formats.Data) != q.Data || e.HostOffset != q.Offset {
			t.Errorf("extent %d: vdisk %+v, qemu %+v", i, e, q)
		}
	}
}

func TestReadMatchesFile(t *testing.T) {
	path := sparseFile(t)
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != "raw" || img.Size() != int64(len(want)) {
		t.Fatalf("format %s size %d", img.Format(), img.Size())
	}
	got := make([]byte, len(want)+100)
	n, err := img.ReadAt(got, 0)
	if n != len(want) || err == nil {
		t.Fatalf("read past end: n=%d err=%v", n, err)
	}
	if !bytes.Equal(got[:n], want) {
		t.Fatal("content differs")
	}
}

func TestCreateWriteZeroes(t *testing.T) {
	for _, prealloc := range []string{"off", "falloc", "full"} {
		t.Run(prealloc, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "n.raw")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			drv, _ := formats.Lookup("raw")
			opts, err := formats.ParseOptions(drv.CreateOptions, "preallocation="+prealloc)
			if err != nil {
				t.Fatal(err)
			}
			img, err := raw.Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 4 << 20, Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte{0xab}, 1<<20)
			if _, err := img.WriteAt(data, 1<<20); err != nil {
				t.Fatal(err)
			}
			if err := img.WriteZeroes(1<<20, 512<<10); err != nil {
				t.Fatal(err)
			}
			if err := img.Close(); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 4<<20)
			copy(want[1<<20+512<<10:], data[:512<<10])
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, want) {
				t.Fatal("content after WriteZeroes differs")
			}
			info := qemutest.Info(t, "raw", path)
			if info["virtual-size"].(float64) != 4<<20 {
				t.Errorf("qemu sees size %v", info["virtual-size"])
			}
			actual := info["actual-size"].(float64)
			if prealloc == "off" && actual > 1<<20 {
				t.Errorf("preallocation=off allocated %v bytes", actual)
			}
			if prealloc != "off" && actual < 3<<20 {
				t.Errorf("preallocation=%s allocated only %v bytes", prealloc, actual)
			}
		})
	}
}

func TestWriteOutsideDiskFails(t *testing.T) {
	m := fileio.NewMem("m.raw", make([]byte, 4096))
	img, err := raw.Open(context.Background(), m, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := img.(formats.Writable)
	for _, off := range []int64{-1, 4096, 4095} {
		if _, err := w.WriteAt(make([]byte, 2), off); err == nil {
			t.Errorf("write at %d succeeded", off)
		}
	}
}

func TestRawLimit(t *testing.T) {
	m := fileio.NewMem("m.raw", make([]byte, 8192))
	_, err := raw.Open(context.Background(), m, formats.OpenOptions{Limits: formats.Limits{MaxVirtualSize: 4096}})
	if !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("err = %v, want ErrLimit", err)
	}
}
