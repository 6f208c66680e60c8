package convert_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/vhd"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// TestToWriter streams an image into a bytes.Buffer in each sequential
// format; qemu-img compare judges what was written against the source.
func TestToWriter(t *testing.T) {
	src := "../testdata/example.qcow2"
	img, err := formats.Open(context.Background(), src, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, c := range []struct{ format, qemu, options string }{
		{"raw", "raw", ""},
		{"vmdk", "vmdk", "subformat=streamOptimized"},
		{"vpc", "vpc", "subformat=fixed"},
	} {
		t.Run(c.format, func(t *testing.T) {
			var buf bytes.Buffer
			var last int64
			err := convert.ToWriter(context.Background(), &buf, img, convert.Stream{Format: c.format, CreateOptions: c.options,
				Copy: convert.Options{Progress: func(done, total int64) { last = total - done }}})
			if err != nil {
				t.Fatal(err)
			}
			if last != 0 {
				t.Errorf("progress ended %d bytes short", last)
			}
			out := filepath.Join(t.TempDir(), "out."+c.format)
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			qemutest.RequireSame(t, "qcow2", src, c.qemu, out)
		})
	}
	var buf bytes.Buffer
	if err := convert.ToWriter(context.Background(), &buf, img, convert.Stream{Format: "qcow2"}); !errors.Is(err, formats.ErrUnsupported) || buf.Len() != 0 {
		t.Errorf("qcow2 into a writer: %v after %d bytes, want ErrUnsupported before any", err, buf.Len())
	}
}
