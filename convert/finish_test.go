package convert_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestFinishSize: every output that takes its size at the end
// (formats.SizeFinisher), created at a provisional 64 MiB with 64 KiB of
// data at 40 MiB, refuses a final size below that data, one that is not
// whole sectors and one above the provisional size, changing nothing;
// then it takes 41 MiB, which qemu-img info reports, qemu-io reads the
// data back and qemu-img check (where qemu has one) finds no error.
func TestFinishSize(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ format, opts string }{
		{"vpc", ""}, {"vpc", "subformat=fixed"}, {"vdi", ""}, {"vhdx", ""},
		{"vmdk", ""}, {"vmdk", "subformat=streamOptimized"},
	} {
		t.Run(tc.format+" "+tc.opts, func(t *testing.T) {
			ctx := context.Background()
			drv, err := formats.Lookup(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := formats.ParseOptions(drv.CreateOptions, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "out."+tc.format)
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			dst, err := drv.Create(ctx, formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 64 * mib, Options: opts, Provisional: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dst.WriteAt(bytes.Repeat([]byte{0x5a}, 64<<10), 40*mib); err != nil {
				t.Fatal(err)
			}
			fin, ok := dst.(formats.SizeFinisher)
			if !ok {
				t.Fatalf("%T is no SizeFinisher", dst)
			}
			for _, bad := range []struct {
				size int64
				want error
			}{{32 * mib, formats.ErrCorrupt}, {41*mib + 100, formats.ErrInvalidOption}, {65 * mib, formats.ErrInvalidOption}} {
				if err := fin.FinishSize(ctx, bad.size); !errors.Is(err, bad.want) {
					t.Errorf("FinishSize(%d): %v, want %v", bad.size, err, bad.want)
				}
			}
			if err := fin.FinishSize(ctx, 41*mib); err != nil {
				t.Fatal(err)
			}
			if err := dst.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := dst.Close(); err != nil {
				t.Fatal(err)
			}
			if got := qemutest.Info(t, tc.format, path)["virtual-size"]; got != float64(41*mib) {
				t.Errorf("virtual size %v, want %d", got, 41*mib)
			}
			qemutest.IO(t, tc.format, path, "read -P 0x5a 40M 64k", "read -P 0 0 40M")
			if tc.format != "vpc" {
				qemutest.RequireClean(t, tc.format, path)
			}
		})
	}
}
