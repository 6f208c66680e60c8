package faultfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/faultfile"
)

func TestFailWritesStopsAtTheIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	inner, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	f := faultfile.FailWrites(inner, 2)
	defer f.Close()
	for i, want := range []bool{true, true, false, false} {
		_, err := f.WriteAt([]byte{byte(i + 1)}, int64(i))
		if (err == nil) != want {
			t.Fatalf("write %d: err %v, want success %v", i, err, want)
		}
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Fatalf("write %d: %v does not wrap EIO", i, err)
		}
	}
	if err := f.Truncate(100); err == nil {
		t.Fatal("truncate after the failing write succeeded")
	}
	if f.Calls() != 5 {
		t.Fatalf("Calls = %d, want 5", f.Calls())
	}
	buf := make([]byte, 4)
	n, _ := f.ReadAt(buf, 0)
	if n != 2 || buf[0] != 1 || buf[1] != 2 {
		t.Fatalf("file holds %d bytes %v, want the two written before the failure", n, buf[:n])
	}
}
