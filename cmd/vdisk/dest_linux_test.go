//go:build linux

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// loopNode attaches a file of size bytes filled with 0xff to a loop device
// (read-only when ro) and returns a device node for it made with mknod in
// the test's own directory (never an entry under /dev) and the backing file.
// It skips when the machine does not allow loop devices.
func loopNode(t *testing.T, dir string, size int64, ro bool) (node, backing string) {
	t.Helper()
	backing = filepath.Join(dir, "loop-backing.img")
	if err := os.WriteFile(backing, bytes.Repeat([]byte{0xff}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", "--show"}
	if ro {
		args = append(args, "-r")
	}
	out, err := exec.Command("losetup", append(args, backing)...).CombinedOutput()
	if err != nil {
		t.Skipf("cannot attach a loop device here (losetup: %v: %s)", err, bytes.TrimSpace(out))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	node = filepath.Join(dir, "disk")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Skipf("cannot make a block device node here: %v", err)
	}
	return node, backing
}

func requireMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Type() != want {
		t.Fatalf("%s is now %v, want type %v: the destination was replaced", path, st.Mode(), want)
	}
}

// TestDestinationBlockDevice: convert, dd and create write through to a
// block device (a loop device reached by a node made here), never replace
// it; raw output zeroes what reads as zero (the device held 0xff) unless
// --target-is-zero; a container format written onto it passes qemu-img
// check; a symlink to the device is followed and stays.
func TestDestinationBlockDevice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir) // 64 MiB with three data regions
	node, _ := loopNode(t, dir, 64<<20, false)
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", src, node); code != 0 {
		t.Fatalf("convert to device: exit %d: %s", code, stderr)
	}
	requireMode(t, node, os.ModeDevice)
	qemutest.RequireSame(t, "raw", src, "raw", node) // the 0xff between the data is gone

	// -n --target-is-zero: the device is taken at its word, holes not written.
	if err := os.WriteFile(node, bytes.Repeat([]byte{0xff}, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := vdisk(t, "convert", "-n", "--target-is-zero", "-O", "raw", src, node); code != 0 {
		t.Fatalf("convert -n --target-is-zero: exit %d: %s", code, stderr)
	}
	if r := qemutest.Compare(t, "raw", src, "raw", node); r.Code != 1 {
		t.Errorf("--target-is-zero wrote the holes too (qemu-img compare exit %d)", r.Code)
	}
	qemutest.IO(t, "raw", node, "read -P 0x5a 0 4k", "read -P 0xff 4k 4k")

	// A container format on the device, through a symlink to the node.
	link := filepath.Join(dir, "by-id-link")
	if err := os.Symlink(node, link); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", src, link); code != 0 {
		t.Fatalf("convert -O qcow2 to a link to a device: exit %d: %s", code, stderr)
	}
	requireMode(t, link, os.ModeSymlink)
	requireMode(t, node, os.ModeDevice)
	qemutest.RequireClean(t, "qcow2", node)
	qemutest.RequireSame(t, "raw", src, "qcow2", node)
	// -n into that qcow2 is refused by name before anything is written.
	before := fileSum(t, node)
	if _, stderr, code := vdisk(t, "convert", "-n", "-O", "qcow2", src, node); code != 1 || !strings.Contains(stderr, "not supported") {
		t.Errorf("convert -n -O qcow2 into a qcow2 on a device: exit %d: %s", code, stderr)
	}
	if fileSum(t, node) != before {
		t.Errorf("a refused -n changed the device")
	}

	// dd and create write through too.
	if _, stderr, code := vdisk(t, "dd", "-O", "raw", "bs=1M", "count=2", "if="+src, "of="+node); code != 0 {
		t.Fatalf("dd to device: exit %d: %s", code, stderr)
	}
	requireMode(t, node, os.ModeDevice)
	qemutest.IO(t, "raw", node, "read -P 0x5a 0 4k", "read -P 0 4k 1020k")
	if _, stderr, code := vdisk(t, "create", "-q", "-f", "qcow2", node, "1G"); code != 0 {
		t.Fatalf("create on device: exit %d: %s", code, stderr)
	}
	requireMode(t, node, os.ModeDevice)
	if got := qemutest.Info(t, "qcow2", node)["virtual-size"]; got != float64(1<<30) {
		t.Errorf("qemu-img info of the qcow2 created on the device: virtual-size %v", got)
	}
	qemutest.RequireClean(t, "qcow2", node)

	// A second node of the same device is the same disk: never both input
	// and output.
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		t.Fatal(err)
	}
	twin := filepath.Join(dir, "twin")
	if err := unix.Mknod(twin, unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Fatal(err)
	}
	before = fileSum(t, node)
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", node, twin); code != 1 || !strings.Contains(stderr, "the input uses") {
		t.Errorf("convert from a device to another node of it: exit %d: %s", code, stderr)
	}
	if fileSum(t, node) != before {
		t.Errorf("the device changed")
	}
}

// TestDestinationBadDevices: a device too small, a read-only device and a
// directory each fail with one line, exit 1, and nothing changed.
func TestDestinationBadDevices(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	small, smallFile := loopNode(t, t.TempDir(), 1<<20, false)
	ro, roFile := loopNode(t, t.TempDir(), 64<<20, true)
	empty := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		dest    string
		file    string
		mode    os.FileMode
		message string
	}{
		{[]string{"convert", "-O", "raw", src, small}, small, smallFile, os.ModeDevice, "Cannot grow device files"},
		{[]string{"create", "-f", "raw", small, "2M"}, small, smallFile, os.ModeDevice, "Cannot grow device files"},
		{[]string{"dd", "bs=1M", "count=2", "if=" + src, "of=" + small}, small, smallFile, os.ModeDevice, "Cannot grow device files"},
		{[]string{"convert", "-O", "raw", src, ro}, ro, roFile, os.ModeDevice, "The device is not writable"},
		{[]string{"convert", "-O", "qcow2", src, ro}, ro, roFile, os.ModeDevice, "The device is not writable"},
		{[]string{"convert", "-O", "raw", src, empty}, empty, "", os.ModeDir, "is a directory"},
	} {
		var before [32]byte
		if tc.file != "" {
			before = fileSum(t, tc.file)
		}
		_, stderr, code := vdisk(t, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.message) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("vdisk %s: exit %d, stderr %q; want one line with %q, exit 1", strings.Join(tc.args, " "), code, stderr, tc.message)
		}
		requireMode(t, tc.dest, tc.mode)
		if tc.file != "" && fileSum(t, tc.file) != before {
			t.Errorf("vdisk %s changed the device", strings.Join(tc.args, " "))
		}
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("the directory destination got %d entries", len(ents))
	}
}

// TestDestinationCharDeviceAndFIFO: a character device node (1,3, made
// here) and a FIFO with a concurrent reader are written through in order;
// a format that cannot be written in order is refused with one line.
func TestDestinationCharDeviceAndFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	null := filepath.Join(dir, "null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("cannot make a character device node here: %v", err)
	}
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", src, null); code != 0 {
		t.Fatalf("convert to a character device: exit %d: %s", code, stderr)
	}
	requireMode(t, null, os.ModeDevice|os.ModeCharDevice)
	if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", src, null); code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "in order") {
		t.Errorf("qcow2 to a character device: exit %d: %q", code, stderr)
	}
	requireMode(t, null, os.ModeDevice|os.ModeCharDevice)

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ format, opts, name string }{
		{"raw", "", "fifo.raw"},
		{"vpc", "subformat=fixed", "fifo.vhd"},
		{"vmdk", "subformat=streamOptimized", "fifo.vmdk"},
	} {
		got := make(chan []byte)
		go func() {
			f, err := os.Open(fifo)
			if err != nil {
				got <- nil
				return
			}
			defer f.Close()
			b, _ := io.ReadAll(f)
			got <- b
		}()
		args := []string{"convert", "-O", tc.format}
		if tc.opts != "" {
			args = append(args, "-o", tc.opts)
		}
		_, stderr, code := vdisk(t, append(args, src, fifo)...)
		b := <-got
		if code != 0 {
			t.Fatalf("convert -O %s to a FIFO: exit %d: %s", tc.format, code, stderr)
		}
		requireMode(t, fifo, os.ModeNamedPipe)
		out := filepath.Join(dir, tc.name)
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		qemutest.RequireSame(t, "raw", src, tc.format, out)
	}
}

// TestDestinationStdoutFile: /dev/stdout redirected to a regular file is
// written where it is (the descriptor's file), not replaced by a rename.
func TestDestinationStdoutFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	out := filepath.Join(dir, "redirected.raw")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var before syscall.Stat_t
	syscall.Fstat(int(f.Fd()), &before)
	cmd := exec.Command(os.Args[0], "convert", "-O", "raw", src, "/dev/stdout")
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("convert to /dev/stdout: %v: %s", err, stderr.String())
	}
	var after syscall.Stat_t
	if err := syscall.Stat(out, &after); err != nil || after.Ino != before.Ino {
		t.Fatalf("the redirected file was replaced (inode %d -> %d, %v)", before.Ino, after.Ino, err)
	}
	qemutest.RequireSame(t, "raw", src, "raw", out)

	// /dev/stdout that is a pipe takes a sequential format, in order.
	cmd = exec.Command(os.Args[0], "convert", "-O", "vpc", "-o", "subformat=fixed", src, "/dev/stdout")
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	var piped bytes.Buffer
	cmd.Stdout, cmd.Stderr = &piped, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("convert to /dev/stdout as a pipe: %v: %s", err, stderr.String())
	}
	vhd := filepath.Join(dir, "piped.vhd")
	if err := os.WriteFile(vhd, piped.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireSame(t, "raw", src, "vpc", vhd)
}

// TestDestinationRegularFileKept: an existing regular file keeps its owner,
// group and mode; a symlink to it stays a symlink and its target is
// replaced; a dangling symlink gets its target created.
func TestDestinationRegularFileKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	target := filepath.Join(dir, "images", "vm.qcow2")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("old content"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o640); err != nil {
		t.Fatal(err)
	}
	chowned := os.Chown(target, 4321, 8765) == nil
	link := filepath.Join(dir, "current.qcow2")
	if err := os.Symlink("images/vm.qcow2", link); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", src, link); code != 0 {
		t.Fatalf("convert to a symlink: exit %d: %s", code, stderr)
	}
	requireMode(t, link, os.ModeSymlink)
	qemutest.RequireSame(t, "raw", src, "qcow2", target)
	st, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	if sys := st.Sys().(*syscall.Stat_t); chowned && (sys.Uid != 4321 || sys.Gid != 8765) {
		t.Errorf("owner %d:%d, want 4321:8765", sys.Uid, sys.Gid)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*", ".*.tmp")); len(ents) != 0 {
		t.Errorf("temporaries left: %v", ents)
	}
	dangling := filepath.Join(dir, "new-link.raw")
	if err := os.Symlink("images/created.raw", dangling); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", src, dangling); code != 0 {
		t.Fatalf("convert to a dangling symlink: exit %d: %s", code, stderr)
	}
	requireMode(t, dangling, os.ModeSymlink)
	qemutest.RequireSame(t, "raw", src, "raw", filepath.Join(dir, "images", "created.raw"))
}

// TestDestinationDeviceZeroing: the holes of a raw image written onto a
// device are zeroed by the device (a discard that guarantees zeros, or
// BLKZEROOUT), not by writing zeros, as strace shows; and the device then
// reads as the image (it held 0xff before).
func TestDestinationDeviceZeroing(t *testing.T) {
	t.Parallel()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	node, _ := loopNode(t, dir, 64<<20, false)
	log := filepath.Join(dir, "strace.log")
	cmd := exec.Command(strace, "-f", "-e", "trace=fallocate,ioctl", "-o", log, os.Args[0], "convert", "-O", "raw", src, node)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("convert under strace: %v: %s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	zeroed := regexp.MustCompile(`(fallocate\(\d+, FALLOC_FL_KEEP_SIZE\|FALLOC_FL_PUNCH_HOLE, \d+, \d+|ioctl\(\d+, BLKZEROOUT)[^\n]*(\) += 0|resumed>\) += 0)`)
	resumed := regexp.MustCompile(`<\.\.\. fallocate resumed>\) += 0`)
	if !zeroed.Match(b) && !resumed.Match(b) {
		t.Errorf("no successful device zeroing call in the trace:\n%s", b)
	}
	requireMode(t, node, os.ModeDevice)
	qemutest.RequireSame(t, "raw", src, "raw", node)
}

// TestDestinationDirect: -t none writes a device with O_DIRECT (aligned
// writes; the rest buffered, as qemu falls back), and a file destination
// is fsynced before the command ends; both read as the source.
func TestDestinationDirect(t *testing.T) {
	t.Parallel()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	node, _ := loopNode(t, dir, 64<<20, false)
	file := filepath.Join(dir, "direct.qcow2")
	for _, dest := range []string{node, file} {
		log := filepath.Join(dir, "strace-"+filepath.Base(dest)+".log")
		cmd := exec.Command(strace, "-f", "-e", "trace=openat,fsync,fdatasync", "-o", log, os.Args[0], "convert", "-t", "none", "-O", "qcow2", src, dest)
		cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("convert -t none to %s: %v: %s", dest, err, out)
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if dest == node && !regexp.MustCompile(`openat\([^)]*`+regexp.QuoteMeta(node)+`", [^)]*O_DIRECT`).Match(b) {
			t.Errorf("the device was not opened with O_DIRECT:\n%s", b)
		}
		// strace -f splits a call that another thread interrupts: "fsync(11
		// <unfinished ...>" then "<... fsync resumed>) = 0".
		if !regexp.MustCompile(`((fsync|fdatasync)\(\d+|<\.\.\. (fsync|fdatasync) resumed>)\) += 0`).Match(b) {
			t.Errorf("-t none to %s: no fsync:\n%s", dest, b)
		}
		qemutest.RequireClean(t, "qcow2", dest)
		qemutest.RequireSame(t, "raw", src, "qcow2", dest)
	}
}
