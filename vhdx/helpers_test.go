package vhdx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// openPath opens path with this driver.
func openPath(t testing.TB, path string, opts formats.OpenOptions) *Image {
	t.Helper()
	f, err := formats.OpenOSFile(path, opts.Writable)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open(context.Background(), f, opts)
	if err != nil {
		f.Close()
		t.Fatalf("open %s: %v", path, err)
	}
	return img
}

// requireSameAsRaw reads img in odd-sized pieces and compares it to the raw file.
func requireSameAsRaw(t testing.TB, img formats.Image, rawPath string) {
	t.Helper()
	want, err := os.ReadFile(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(want)) != img.Size() {
		t.Fatalf("size %d, qemu says %d", img.Size(), len(want))
	}
	got := make([]byte, len(want))
	const piece = 3<<20 + 4096 + 17
	for off := 0; off < len(got); off += piece {
		end := min(len(got), off+piece)
		if _, err := img.ReadAt(got[off:end], int64(off)); err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("content differs from qemu's at byte %d: got %#x want %#x", i, got[i], want[i])
			}
		}
	}
	// Every Data/Zero/Unallocated claim must agree with the content.
	exts, err := formats.ChainExtents(img, 0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for _, e := range exts {
		if e.Offset != next {
			t.Fatalf("extents leave a gap at %d: %+v", next, e)
		}
		next = e.End()
		if e.Kind != formats.Data && !zero.Is(want[e.Offset:e.End()]) {
			t.Fatalf("extent %+v claims zeros but qemu reads data", e)
		}
	}
	if next != img.Size() {
		t.Fatalf("extents end at %d, size %d", next, img.Size())
	}
}

func tempPath(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }

func errorsIs(err, target error) bool { return err != nil && errors.Is(err, target) }

var errEOF = io.EOF
