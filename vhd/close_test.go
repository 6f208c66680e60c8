package vhd

import (
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestCloseFlushes: WriteAt then Close, with no Flush, persists the data and
// the metadata (BAT, footer) of every subformat, as the other drivers do:
// qemu-img check accepts the image and qemu-img compare equals it to a raw
// file with the same writes.
func TestCloseFlushes(t *testing.T) {
	const size = 12 << 20
	for _, opts := range []string{"subformat=dynamic", "subformat=fixed"} {
		t.Run(opts, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "closed.vhd")
			img := create(t, path, size, opts)
			ws := patternFor(img.Size(), 7)
			for _, w := range ws {
				if _, err := img.WriteAt(w.data, w.off); err != nil {
					t.Fatal(err)
				}
			}
			if err := img.Close(); err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(dir, "want.raw")
			applyRaw(t, want, img.Size(), ws)
			qemutest.RequireSame(t, "vpc", path, "raw", want)
		})
	}
}
