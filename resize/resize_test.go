package resize_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	"github.com/vdiskio/vdisk/resize"
)

func open(t *testing.T, path string) formats.Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImage: sizes qemu-img reads back after Image grows (with and without
// preallocation) and shrinks images qemu-img made; refusals are the
// sentinels and qemu's words.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		format, arg string
		opts        resize.Options
		want        int64
	}{
		{"qcow2", "+1M", resize.Options{}, 5 << 20},
		{"qcow2", "-1M", resize.Options{Shrink: true}, 3 << 20},
		{"raw", "8M", resize.Options{Preallocation: "full"}, 8 << 20},
		{"raw", "+2M", resize.Options{Preallocation: "falloc"}, 6 << 20},
	} {
		path := filepath.Join(dir, fmt.Sprintf("%s%s.img", c.format, c.arg))
		qemutest.Img(t, "create", "-q", "-f", c.format, path, "4M")
		img := open(t, path)
		size, err := resize.ParseSize(img.Size(), c.arg)
		if err == nil {
			err = resize.Image(context.Background(), img, size, c.opts)
		}
		if cerr := img.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("%s %s: %v", c.format, c.arg, err)
		}
		info := qemutest.Info(t, c.format, path)
		if got := int64(info["virtual-size"].(float64)); got != c.want {
			t.Errorf("%s %s: qemu-img reads %d bytes, want %d", c.format, c.arg, got, c.want)
		}
		if c.opts.Preallocation == "full" || c.opts.Preallocation == "falloc" {
			// As qemu-img resize, only the grown part is preallocated.
			if got := int64(info["actual-size"].(float64)); got < c.want-4<<20 {
				t.Errorf("%s %s %s: %d bytes allocated, want at least the %d grown", c.format, c.arg, c.opts.Preallocation, got, c.want-4<<20)
			}
		}
		if c.format != "raw" {
			qemutest.Img(t, "check", "-q", "-f", c.format, path)
		}
	}

	path := filepath.Join(dir, "refuse.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "4M")
	img := open(t, path)
	defer img.Close()
	if err := resize.Image(context.Background(), img, 1<<20, resize.Options{}); !errors.Is(err, resize.ErrShrink) {
		t.Errorf("shrink without Shrink: %v", err)
	}
	err := resize.Image(context.Background(), img, 8<<20, resize.Options{Preallocation: "full"})
	if !errors.Is(err, formats.ErrUnsupported) || err.Error() != "Unsupported preallocation mode 'full' for format qcow2" {
		t.Errorf("qcow2 full preallocation: %v", err)
	}
	if err := (resize.Options{Preallocation: "fast"}).Check(); !errors.Is(err, formats.ErrInvalidOption) || err.Error() != "Invalid preallocation mode 'fast'" {
		t.Errorf("unknown mode: %v", err)
	}
	if img.Size() != 4<<20 {
		t.Errorf("refused resizes changed the size to %d", img.Size())
	}
}

// TestParseSize: qemu-img resize's argument forms.
func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		arg  string
		want int64
		ok   bool
	}{
		{"1G", 1 << 30, true}, {"+1M", 5 << 20, true}, {"-1M", 3 << 20, true},
		{"-5M", 0, false}, {"x", 0, false}, {"+9223372036854775807", 0, false},
	} {
		got, err := resize.ParseSize(4<<20, c.arg)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseSize(4M, %q) = %d, %v; want %d (ok %v)", c.arg, got, err, c.want, c.ok)
		}
	}
}

// Growing an image by 1 GiB, as `qemu-img resize disk.qcow2 +1G` does.
func ExampleImage() {
	dir, err := os.MkdirTemp("", "vdisk-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "disk.qcow2")
	ctx := context.Background()
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	drv, _ := formats.Lookup("qcow2")
	w, err := drv.Create(ctx, formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 1 << 30})
	if err != nil {
		panic(err)
	}
	w.Close()

	img, err := formats.Open(ctx, path, formats.OpenOptions{Writable: true})
	if err != nil {
		panic(err)
	}
	defer img.Close()
	size, err := resize.ParseSize(img.Size(), "+1G")
	if err != nil {
		panic(err)
	}
	if err := resize.Image(ctx, img, size, resize.Options{}); err != nil {
		panic(err)
	}
	fmt.Println(img.Size()>>30, "GiB")
	// Output: 2 GiB
}
