package vhd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/internal/zero"
)

func openWritable(t *testing.T, path string) *Image {
	t.Helper()
	f, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open(context.Background(), f, formats.OpenOptions{Writable: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	return img.(*Image)
}

func resizeTo(t *testing.T, path string, size int64, shrink bool) error {
	t.Helper()
	img := openWritable(t, path)
	defer img.Close()
	if err := img.Resize(context.Background(), size, shrink); err != nil {
		return err
	}
	return img.Flush()
}

func TestResize(t *testing.T) {
	for _, tc := range []struct {
		name, size, opts string
		to               int64
	}{
		{"fixed-grow", "10M", "subformat=fixed", 20 << 20},
		{"fixed-grow-exact", "10M", "subformat=fixed,force_size=on", 10<<20 + 512},
		{"fixed-shrink", "10M", "subformat=fixed", 5 << 20},
		{"dynamic-grow", "10M", "", 20 << 20},
		{"dynamic-grow-force", "10M", "force_size=on", 200 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := qemuImage(t, tc.size, tc.opts, "write -P 0x61 0 1m", "write -P 0x62 4m 64k")
			before, _ := os.ReadFile(qemutest.ToRaw(t, "vpc", path))
			if err := resizeTo(t, path, tc.to, tc.to < int64(len(before))); err != nil {
				t.Fatal(err)
			}
			img := requireSameAsQemu(t, path, formats.OpenOptions{})
			if img.Size() != tc.to {
				t.Fatalf("size %d, want %d", img.Size(), tc.to)
			}
			got := readAll(t, img, 1<<20)
			n := min(len(before), len(got))
			if !bytes.Equal(got[:n], before[:n]) || !zero.Is(got[n:]) {
				t.Errorf("content changed at %d", firstDiff(got, before))
			}
			requireCheck(t, img, 0, "")
			requireVhdiinfo(t, path)
		})
	}
}

func TestResizeEmptyDynamicFar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.vhd")
	finish(t, create(t, path, 10<<20, ""))
	if err := resizeTo(t, path, 1<<30, false); err != nil {
		t.Fatal(err)
	}
	img := openPath(t, path, formats.OpenOptions{})
	if img.Size() != 1<<30 || len(img.bat) != 512 {
		t.Fatalf("size %d, %d entries", img.Size(), len(img.bat))
	}
	requireCheck(t, img, 0, "")
	if got := int64(qemutest.Info(t, "vpc", path)["virtual-size"].(float64)); got != 1<<30 {
		t.Errorf("qemu size %d", got)
	}
	w := openWritable(t, path)
	apply(t, w, []write{{1<<30 - 512, []byte("end")}})
	finish(t, w)
	qemutest.IO(t, "vpc", path, "read -P 0x65 1073741312 1", "read -P 0x6e 1073741313 1")
}

func TestResizeRefused(t *testing.T) {
	path := qemuImage(t, "10M", "", "write 0 1m")
	for _, tc := range []struct {
		size   int64
		shrink bool
		want   error
	}{
		{1 << 30, false, formats.ErrUnsupported}, // BAT has no room
		{5 << 20, true, formats.ErrUnsupported},  // dynamic shrink
		{20<<20 + 1, false, formats.ErrInvalidOption},
	} {
		if err := resizeTo(t, path, tc.size, tc.shrink); !errors.Is(err, tc.want) {
			t.Errorf("resize to %d: %v, want %v", tc.size, err, tc.want)
		}
	}
	fixed := qemuImage(t, "10M", "subformat=fixed")
	if err := resizeTo(t, fixed, 5<<20, false); err == nil {
		t.Error("shrink without --shrink accepted")
	}
	dir, _ := diffSetup(t, "force_size=on")
	if err := resizeTo(t, filepath.Join(dir, "child.vhd"), 16<<20, false); !errors.Is(err, formats.ErrUnsupported) {
		t.Errorf("differencing: %v", err)
	}
}
