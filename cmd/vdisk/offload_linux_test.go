//go:build linux

package main

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// reflinkMount makes an XFS file system with reflink=1 in a file, mounts
// it on a loop device and returns the mount point; it skips, saying why,
// where the machine does not allow it (no mkfs.xfs, not root, no loop
// devices, a container without mount).
func reflinkMount(t *testing.T) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.xfs")
	if err != nil {
		t.Skip("mkfs.xfs not installed (xfsprogs): no reflink file system to test on")
	}
	if _, err := exec.LookPath("filefrag"); err != nil {
		t.Skip("filefrag not installed (e2fsprogs): nothing to judge shared extents with")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop device needs root")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 3<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", "-f", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs -m reflink=1: %v: %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount -o loop (XFS): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// TestConvertCopyOffloadReflink: on XFS with reflink=1, convert -C of a
// 1.5 GiB raw image (holes and 48 MiB of data) to raw, to a flat VMDK and
// to a fixed VHD shares the source's blocks: filefrag -v marks every data
// extent of the output "shared", the outputs allocate no more than the
// data, and qemu-img compare finds them identical to the source. The
// bench times it (go run ./bench -reflink DIR); no timing here.
func TestConvertCopyOffloadReflink(t *testing.T) {
	t.Parallel()
	mnt := reflinkMount(t)
	src := filepath.Join(mnt, "src.raw")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1536 << 20); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 16<<20)
	for _, off := range []int64{0, 700 << 20, 1520 << 20} {
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tg := range []struct {
		format, extentFile string
		opts               []string
	}{
		{"raw", "out.raw", nil},
		{"vmdk", "out-flat.vmdk", []string{"-o", "subformat=monolithicFlat"}},
		{"vpc", "out.vpc", []string{"-o", "subformat=fixed,force_size=on"}},
	} {
		t.Run(tg.format, func(t *testing.T) {
			out := filepath.Join(mnt, "out."+tg.format)
			args := append(append([]string{"convert", "-C", "-f", "raw", "-O", tg.format}, tg.opts...), src, out)
			if _, stderr, code := vdisk(t, args...); code != 0 {
				t.Fatalf("vdisk %v: exit %d: %s", args, code, stderr)
			}
			extents := filepath.Join(mnt, tg.extentFile)
			defer os.Remove(out)
			defer os.Remove(extents)
			qemutest.RequireSame(t, "raw", src, tg.format, out)
			requireShared(t, extents, 48<<20)
		})
	}
}

// requireShared runs filefrag -v on path and fails unless every extent
// of data is flagged shared and together they hold want bytes (the tail
// extent of a fixed VHD's footer aside).
func requireShared(t *testing.T, path string, want int64) {
	t.Helper()
	out, err := exec.Command("filefrag", "-v", "-b4096", path).CombinedOutput()
	if err != nil {
		t.Fatalf("filefrag -v %s: %v: %s", path, err, out)
	}
	var shared, unshared int64
	for _, line := range strings.Split(string(out), "\n") {
		// "ext: logical_offset: physical_offset: length: expected: flags:"
		m := filefragExtent.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		blocks, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "shared") {
			shared += blocks * 4096
		} else {
			unshared += blocks * 4096
		}
	}
	if shared < want || unshared > 64<<10 {
		t.Fatalf("%s: %d bytes in shared extents, %d unshared; want %d shared (filefrag -v):\n%s", path, shared, unshared, want, out)
	}
}

// filefragExtent matches an extent line of filefrag -v; the group is the
// length in blocks.
var filefragExtent = regexp.MustCompile(`^\s*\d+:\s*\d+\.\.\s*\d+:\s*\d+\.\.\s*\d+:\s*(\d+):`)
