package formats_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestLargeWritesAllocateOnlyWhatTheyWrite: an OS file's large writes
// (which allocate their range before writing it) leave the file as plain
// writes would: the size grows only by a write past the end, the blocks
// allocated are the bytes written (st_blocks, as stat(1) reports), and
// qemu-img map sees data exactly where it was written, holes elsewhere;
// qemu-io reads the written patterns back.
func TestLargeWritesAllocateOnlyWhatTheyWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 8<<20); err != nil {
		t.Fatal(err)
	}
	f, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		off, length int64
		pattern     byte
	}{
		{3 << 20, 2 << 20, 0x5a},       // inside the size, over a 2 MiB boundary
		{9 << 20, 3 << 19, 0xa5},       // past the end: the size becomes 10.5 MiB
		{6<<20 + 4096, 64 << 10, 0x3c}, // a small write, not reserved
	}
	for _, w := range writes {
		buf := make([]byte, w.length)
		for i := range buf {
			buf[i] = w.pattern
		}
		if n, err := f.WriteAt(buf, w.off); err != nil || n != len(buf) {
			t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", w.length, w.off, n, err)
		}
	}
	if err := f.(interface{ Sync() error }).Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(21 << 19); st.Size() != want {
		t.Errorf("size %d, want %d", st.Size(), want)
	}
	var written int64
	for _, w := range writes {
		written += w.length
	}
	if got := stat512(t, path) * 512; got != written {
		t.Errorf("%d bytes allocated, want the %d written", got, written)
	}
	var extents []struct {
		Start, Length int64
		Data          bool
	}
	if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "-f", "raw", "--output=json", path)), &extents); err != nil {
		t.Fatal(err)
	}
	var data [][2]int64
	for _, e := range extents {
		if e.Data {
			data = append(data, [2]int64{e.Start, e.Length})
		}
	}
	want := [][2]int64{{3 << 20, 2 << 20}, {6<<20 + 4096, 64 << 10}, {9 << 20, 3 << 19}}
	if len(data) != len(want) {
		t.Fatalf("qemu-img map data extents %v, want %v", data, want)
	}
	for i := range want {
		if data[i] != want[i] {
			t.Errorf("qemu-img map data extent %d is %v, want %v", i, data[i], want[i])
		}
	}
	qemutest.IO(t, "raw", path, "read -P 0x5a 3M 2M", "read -P 0xa5 9M 1536k", "read -P 0x3c 6295552 64k",
		"read -P 0 0 3M", "read -P 0 5M 1M", "read -P 0 6361088 3076096")
}
