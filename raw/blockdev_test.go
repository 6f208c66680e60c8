package raw_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// loopDevice attaches path to a loop device, or skips when this machine
// does not allow it (no root, no loop driver).
func loopDevice(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("losetup", "-f", "--show", "-r", path).Output()
	if err != nil {
		t.Skipf("cannot attach a loop device here: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// TestBlockDeviceSource images a block device (P2V): its size comes from
// BLKGETSIZE64, everything is data, it opens read-only, and a conversion of
// it equals the file behind it.
func TestBlockDeviceSource(t *testing.T) {
	path := sparseFile(t)
	dev := loopDevice(t, path)
	img, err := formats.Open(context.Background(), dev, formats.OpenOptions{Format: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if img.Size() != st.Size() {
		t.Errorf("device size %d, file size %d", img.Size(), st.Size())
	}
	exts, err := img.Extents(0, img.Size())
	if err != nil || len(exts) != 1 || exts[0].Kind != formats.Data {
		t.Errorf("device extents %+v, %v; want one data extent", exts, err)
	}
	img.Close()
	if _, err := formats.Open(context.Background(), dev, formats.OpenOptions{Writable: true}); !errors.Is(err, formats.ErrReadOnly) {
		t.Errorf("writable open of a device: %v, want ErrReadOnly", err)
	}
	out := filepath.Join(t.TempDir(), "p2v.raw")
	if err := convert.Run(context.Background(), convert.Job{Source: dev, Target: out}); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireSame(t, "raw", path, "raw", out)
}
