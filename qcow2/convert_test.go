package qcow2

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestConvertEngineInterop runs the conversion engine (parallel readers,
// zero detection, parallel compression, ordered placement) from a raw file
// to vdisk qcow2 images, and from those back, judged by qemu-img.
func TestConvertEngineInterop(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	size := int64(12 * mib)
	data := testPattern(size, 99)
	rawPath := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(rawPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		opt      string
		compress bool
	}{
		{"", false}, {"", true}, {"compression_type=zstd", true}, {"cluster_size=2M", true},
		{"compat=0.10,cluster_size=4k", true}, {"extended_l2=on", false}, {"refcount_bits=1,cluster_size=8k", true},
	} {
		t.Run(fmt.Sprintf("%s,c=%v", c.opt, c.compress), func(t *testing.T) {
			src := openPath(t, rawPath, formats.OpenOptions{})
			path := filepath.Join(dir, fmt.Sprintf("o%d.qcow2", i))
			dst := createImage(t, path, size, c.opt)
			err := convert.Copy(context.Background(), dst, src, convert.Options{Compress: c.compress, TargetIsZero: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := dst.Close(); err != nil {
				t.Fatal(err)
			}
			qemutest.RequireClean(t, "qcow2", path)
			qemutest.RequireSame(t, "qcow2", path, "raw", rawPath)
			// And back to raw through vdisk's reader.
			back := filepath.Join(dir, fmt.Sprintf("o%d.raw", i))
			f, err := os.Create(back)
			if err != nil {
				t.Fatal(err)
			}
			rawDrv, _ := formats.Lookup("raw")
			out, err := rawDrv.Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: back, Size: size})
			if err != nil {
				t.Fatal(err)
			}
			in := openPath(t, path, formats.OpenOptions{})
			if err := convert.Copy(context.Background(), out, in, convert.Options{TargetIsZero: true}); err != nil {
				t.Fatal(err)
			}
			out.Close()
			qemutest.RequireSame(t, "raw", back, "raw", rawPath)
		})
	}
}
