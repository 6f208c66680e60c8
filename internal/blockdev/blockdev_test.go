package blockdev_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/blockdev"
)

// TestSizeOfLoopDevice attaches a file of an odd size to a loop device and
// compares Size with blockdev(8)'s --getsize64. It skips where loop devices
// cannot be attached (no root, no loop driver).
func TestSizeOfLoopDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	const size = 3*1024*1024 + 512*7
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", "-r", path).Output()
	if err != nil {
		t.Skipf("cannot attach a loop device here: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	out, err = exec.Command("blockdev", "--getsize64", dev).Output()
	if err != nil {
		t.Skipf("blockdev(8): %v", err)
	}
	want, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := blockdev.Size(f)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Size(%s) = %d, blockdev --getsize64 says %d", dev, got, want)
	}
	if !blockdev.IsDisk(f) {
		t.Errorf("IsDisk(%s) = false", dev)
	}
}

// TestNotADisk: a regular file and a character device that is not a disk
// are no disks, and Size refuses them.
func TestNotADisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, os.DevNull} {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if blockdev.IsDisk(f) {
			t.Errorf("IsDisk(%s) = true", name)
		}
		if n, err := blockdev.Size(f); err == nil {
			t.Errorf("Size(%s) = %d, want an error", name, n)
		}
		f.Close()
	}
	if blockdev.IsDevicePath(`\\.\PhysicalDrive0`) != (filepath.Separator == '\\') {
		t.Errorf(`IsDevicePath(\\.\PhysicalDrive0) on this OS`)
	}
}
