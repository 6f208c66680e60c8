package convert_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vdi"
	_ "github.com/vdiskio/vdisk/vhd"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// TestSourceShrinksDuringConversion (issue 19, case 6): a source cut short
// in the middle of a conversion fails it with ErrSourceChanged, in every
// driver, and leaves nothing at the destination. qemu-img makes the
// sources; the first progress callback (after the first chunk) truncates
// the file to 1 MiB, well before the data the rest of the copy reads.
func TestSourceShrinksDuringConversion(t *testing.T) {
	for _, tc := range []struct{ format, opts string }{
		{"raw", ""}, {"qcow2", ""}, {"vmdk", ""}, {"vmdk", "subformat=monolithicFlat"},
		{"vpc", ""}, {"vpc", "subformat=fixed"}, {"vhdx", ""}, {"vdi", ""},
	} {
		t.Run(tc.format+tc.opts, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src.img")
			args := []string{"create", "-q", "-f", tc.format}
			if tc.opts != "" {
				args = append(args, "-o", tc.opts)
			}
			qemutest.Img(t, append(args, src, "64M")...)
			qemutest.IO(t, tc.format, src, "write -P 0x5a 0 60M")
			data := src // the file holding the data
			if strings.Contains(tc.opts, "Flat") {
				data = filepath.Join(dir, "src-flat.img")
			}
			dst := filepath.Join(dir, "out.qcow2")
			var once sync.Once
			err := convert.Run(context.Background(), convert.Job{
				Source: src, Target: dst, Format: "qcow2",
				Copy: convert.Options{Workers: 1, Progress: func(done, total int64) {
					if done > 0 {
						once.Do(func() {
							if err := os.Truncate(data, 1<<20); err != nil {
								t.Error(err)
							}
						})
					}
				}},
			})
			if !errors.Is(err, formats.ErrSourceChanged) {
				t.Fatalf("conversion of a source that shrank: %v, want ErrSourceChanged", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1+btoi(data != src) {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
