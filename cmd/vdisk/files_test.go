package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// runTool runs an external tool for test setup.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(qemutest.Tool(t, name), args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// fileTree is the content each test file system receives.
func fileTree(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{
		"hello.txt":            "hello from inside the disk\n",
		"docs/readme.md":       strings.Repeat("a line of documentation\n", 2000),
		"docs/deeper/note.txt": "deep note\n",
		"empty":                "",
	}
	defer os.Symlink("docs/readme.md", filepath.Join(dir, "link"))
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// partitionedDisk writes a GPT disk (sgdisk) whose partition 1 holds FAT32
// (mkfs.fat + mcopy) and partition 2 ext4 (mkfs.ext4 -d), each made as a
// file of its own first; it returns the disk and the two file-system files.
func partitionedDisk(t *testing.T, src string) (disk, fatFS, extFS string) {
	dir := t.TempDir()
	fatFS, extFS = filepath.Join(dir, "fat.fs"), filepath.Join(dir, "ext.fs")
	for _, p := range []string{fatFS, extFS} {
		os.WriteFile(p, nil, 0o644)
		os.Truncate(p, 40<<20)
	}
	runTool(t, "mkfs.fat", "-F", "32", "-n", "BOOTFS", fatFS)
	args := []string{"-s", "-i", fatFS}
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		args = append(args, filepath.Join(src, e.Name()))
	}
	runTool(t, "mcopy", append(args, "::")...)
	runTool(t, "mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", src, extFS)
	disk = filepath.Join(dir, "disk.raw")
	os.WriteFile(disk, nil, 0o644)
	os.Truncate(disk, 90<<20)
	runTool(t, "sgdisk", "-n", "1:2048:+40M", "-t", "1:0700", "-c", "1:boot",
		"-n", "2:0:+40M", "-t", "2:8300", "-c", "2:root", disk)
	for i, fs := range []string{fatFS, extFS} {
		b, err := os.ReadFile(fs)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.OpenFile(disk, os.O_RDWR, 0)
		// partition 1 at sector 2048, partition 2 right after its 40 MiB
		if _, err := f.WriteAt(b, int64(2048*512+i*40<<20)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return disk, fatFS, extFS
}

func TestFilesInsideDisk(t *testing.T) {
	t.Parallel()
	src := fileTree(t)
	disk, fatFS, extFS := partitionedDisk(t, src)
	for _, format := range []string{"qcow2", "vmdk", "vhdx", "vdi"} {
		t.Run(format, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk."+format)
			qemutest.Img(t, "convert", "-f", "raw", "-O", format, disk, img)

			// info lists both partitions and their file systems.
			out, errs, code := vdisk(t, "info", img)
			if code != 0 {
				t.Fatalf("info: %s", errs)
			}
			for _, want := range []string{"Partition table: gpt", "boot", "vfat (label \"BOOTFS\")", "root", "ext4 (label \"rootfs\")"} {
				if !strings.Contains(out, want) {
					t.Errorf("info lacks %q:\n%s", want, out)
				}
			}
			// A partition converts out to the very file system put in.
			for n, fs := range map[int]string{1: fatFS, 2: extFS} {
				part := filepath.Join(t.TempDir(), "part.raw")
				if _, errs, code := vdisk(t, "convert", "-O", "raw", fmt.Sprintf("%s:%d", img, n), part); code != 0 {
					t.Fatalf("convert partition %d: %s", n, errs)
				}
				qemutest.RequireSame(t, "raw", fs, "raw", part)
			}
			// ls -R lists what mtools and debugfs extract.
			for n, oracle := range map[int]func(*testing.T) string{
				1: func(t *testing.T) string { return mtoolsTree(t, fatFS) },
				2: func(t *testing.T) string { return debugfsTree(t, extFS) },
			} {
				want := treeOf(t, oracle(t))
				if len(want.sums) < 4 {
					t.Fatalf("the oracle extracted only %d files", len(want.sums))
				}
				got, errs, code := vdisk(t, "ls", "-R", fmt.Sprintf("%s:%d", img, n))
				if code != 0 {
					t.Fatalf("ls partition %d: %s", n, errs)
				}
				if diff := cmp.Diff(sortedLines(want.listing), sortedLines(got)); diff != "" {
					t.Errorf("ls -R of partition %d (-oracle +vdisk):\n%s", n, diff)
				}
				// cat gives each file's bytes.
				for name, sum := range want.sums {
					out, errs, code := vdisk(t, "cat", fmt.Sprintf("%s:%d", img, n), name)
					if code != 0 || fmt.Sprintf("%x", sha256.Sum256([]byte(out))) != sum {
						t.Errorf("cat %d:%s: exit %d %s", n, name, code, errs)
					}
				}
				// extract writes the same tree; tar archives it.
				dest := filepath.Join(t.TempDir(), "x")
				if _, errs, code := vdisk(t, "extract", fmt.Sprintf("%s:%d", img, n), "/", dest); code != 0 {
					t.Fatalf("extract %d: %s", n, errs)
				}
				if got := treeOf(t, dest); !cmp.Equal(want.sums, got.sums) {
					t.Errorf("extract %d: %s", n, cmp.Diff(want.sums, got.sums))
				}
				var tarOut bytes.Buffer
				code = run([]string{"tar", fmt.Sprintf("%s:%d", img, n)}, &tarOut, io.Discard)
				if code != 0 {
					t.Fatalf("tar %d: exit %d", n, code)
				}
				if sums := tarSums(t, &tarOut); !cmp.Equal(want.sums, sums) {
					t.Errorf("tar %d: %s", n, cmp.Diff(want.sums, sums))
				}
			}
		})
	}
	// checksum and map address a partition too; through a qcow2 chain.
	base := filepath.Join(t.TempDir(), "base.qcow2")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "qcow2", disk, base)
	top := filepath.Join(filepath.Dir(base), "top.qcow2")
	qemutest.Img(t, "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	sum, errs, code := vdisk(t, "checksum", "--linear", "-a", "sha256", top+":2")
	b, _ := os.ReadFile(extFS)
	if code != 0 || !strings.Contains(sum, fmt.Sprintf("%x", sha256.Sum256(b))) {
		t.Errorf("checksum of partition 2 through the chain: exit %d %s %s", code, sum, errs)
	}
	mapOut, errs, code := vdisk(t, "map", "--output=json", top+":1")
	if code != 0 || !strings.Contains(mapOut, `"depth": 1`) || !strings.Contains(mapOut, `"start": 0,`) {
		t.Errorf("map of partition 1 through the chain: exit %d %s %.300s", code, errs, mapOut)
	}
	if out, errs, code := vdisk(t, "cat", top+":2", "docs/deeper/note.txt"); code != 0 || out != "deep note\n" {
		t.Errorf("cat through the chain: %q %s", out, errs)
	}
	// Extracted entries keep the modes debugfs rdump gives them.
	dest := filepath.Join(t.TempDir(), "x")
	if _, errs, code := vdisk(t, "extract", top+":2", "/", dest); code != 0 {
		t.Fatal(errs)
	}
	oracle := debugfsTree(t, extFS)
	filepath.Walk(oracle, func(p string, info os.FileInfo, err error) error {
		rel, _ := filepath.Rel(oracle, p)
		got, lerr := os.Lstat(filepath.Join(dest, rel))
		if lerr != nil || got.Mode() != info.Mode() {
			t.Errorf("extracted %s: mode %v, debugfs %v (%v)", rel, got.Mode(), info.Mode(), lerr)
		}
		if info.Mode()&os.ModeSymlink != 0 {
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(filepath.Join(dest, rel))
			if a != b {
				t.Errorf("link %s -> %q, debugfs %q", rel, b, a)
			}
		}
		return nil
	})
	// Without :N and with two readable partitions, the error names them.
	_, errs, code = vdisk(t, "ls", disk)
	if code != 1 || !strings.Contains(errs, "1 (vfat), 2 (ext4)") {
		t.Errorf("ls without a partition: exit %d: %s", code, errs)
	}
}

// File systems vdisk does not read are named in the refusal.
func TestUnreadFileSystemsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(name string, off int64, magic string) string {
		p := filepath.Join(dir, name)
		b := make([]byte, 1<<20)
		copy(b[off:], magic)
		os.WriteFile(p, b, 0o644)
		return p
	}
	cases := map[string]string{
		"xfs":         mk("xfs.img", 0, "XFSB"),
		"btrfs":       mk("btrfs.img", 0x10040, "_BHRfS_M"),
		"LVM2_member": mk("lvm.img", 512, "LABELONE"),
		"swap":        mk("swap.img", 4086, "SWAPSPACE2"),
	}
	if cs, err := exec.LookPath("cryptsetup"); err == nil {
		p := filepath.Join(dir, "luks.img")
		os.WriteFile(p, make([]byte, 32<<20), 0o644)
		cmd := exec.Command(cs, "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", "-", p)
		cmd.Stdin = strings.NewReader("pw")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cryptsetup: %v %s", err, out)
		}
		cases["crypto_LUKS"] = p
	}
	for name, img := range cases {
		_, errs, code := vdisk(t, "ls", "--force-format", "-f", "raw", img)
		if code != 1 || !strings.Contains(errs, "the "+name+" file system") {
			t.Errorf("%s: exit %d: %s", name, code, errs)
		}
	}
}

// mtoolsTree extracts a FAT file system with mcopy.
func mtoolsTree(t *testing.T, fs string) string {
	out := filepath.Join(t.TempDir(), "m")
	os.Mkdir(out, 0o755)
	runTool(t, "mcopy", "-s", "-n", "-i", fs, "::*", out)
	return out
}

// debugfsTree extracts an ext4 file system with debugfs rdump.
func debugfsTree(t *testing.T, fs string) string {
	out := filepath.Join(t.TempDir(), "d")
	os.Mkdir(out, 0o755)
	runTool(t, "debugfs", "-R", "rdump / "+out, fs)
	return out
}

type tree struct {
	listing string            // one path a line, as ls -R prints them
	sums    map[string]string // file path -> sha256
}

func treeOf(t *testing.T, dir string) tree {
	tr := tree{sums: map[string]string{}}
	var lines []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, rel)
		if info.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			tr.sums[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		return nil
	})
	tr.listing = strings.Join(lines, "\n") + "\n"
	return tr
}

func tarSums(t *testing.T, r io.Reader) map[string]string {
	sums := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return sums
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			sums[h.Name] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
	}
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(lines)
	return lines
}

// A directory hard-linked into itself (debugfs ln) is a clean error for a
// recursive listing, extract and tar, not an endless walk.
func TestDirectoryLoop(t *testing.T) {
	t.Parallel()
	src := fileTree(t)
	img := filepath.Join(t.TempDir(), "loop.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 16<<20)
	runTool(t, "mkfs.ext4", "-q", "-F", "-d", src, img)
	runTool(t, "debugfs", "-w", "-R", "ln /docs /docs/deeper/back", img)
	for _, args := range [][]string{{"ls", "-R", img}, {"extract", img, "/", filepath.Join(t.TempDir(), "x")}, {"tar", img}} {
		_, errs, code := vdisk(t, args...)
		if code != 1 || !strings.Contains(errs, "contains itself") {
			t.Errorf("%v: exit %d: %s", args[0], code, errs)
		}
	}
}

// ntfsMount mounts an NTFS file with ntfs-3g (FUSE) or skips the test.
func ntfsMount(t *testing.T, fs string, opts ...string) (string, func()) {
	dir := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(dir, 0o755)
	args := []string{fs, dir}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	if out, err := exec.Command(qemutest.Tool(t, "ntfs-3g"), args...).CombinedOutput(); err != nil {
		t.Skipf("ntfs-3g cannot mount here (FUSE): %v %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v %s", err, out)
			}
		}
	}
	t.Cleanup(unmount)
	return dir, unmount
}

// An NTFS partition (made and filled by ntfs-3g) inside vhdx and vdi:
// ls, cat (streams too), extract agree with ntfs-3g and ntfscat; a
// used-only copy passes ntfsfix -n.
func TestNTFSInsideDisk(t *testing.T) {
	t.Parallel()
	src := fileTree(t)
	fs := filepath.Join(t.TempDir(), "ntfs.fs")
	os.WriteFile(fs, nil, 0o644)
	os.Truncate(fs, 24<<20)
	runTool(t, "mkntfs", "-q", "-F", "-f", "-L", "winfs", fs)
	mnt, unmount := ntfsMount(t, fs)
	runTool(t, "cp", "-r", src+"/.", mnt)
	runTool(t, "setfattr", "-n", "user.zone", "-v", "ZoneId=3", filepath.Join(mnt, "hello.txt"))
	unmount()
	disk := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(disk, nil, 0o644)
	os.Truncate(disk, 28<<20)
	runTool(t, "sgdisk", "-n", "1:2048:+24M", "-t", "1:0700", disk)
	b, _ := os.ReadFile(fs)
	f, _ := os.OpenFile(disk, os.O_RDWR, 0)
	f.WriteAt(b, 2048*512)
	f.Close()
	ro, unmountRO := ntfsMount(t, fs, "ro")
	want := treeOf(t, ro)
	unmountRO()
	delete(want.sums, "System Volume Information")
	stream := runTool(t, "ntfscat", "-a", "0x80", "-n", "zone", fs, "hello.txt")
	for _, format := range []string{"vhdx", "vdi"} {
		img := filepath.Join(t.TempDir(), "disk."+format)
		qemutest.Img(t, "convert", "-f", "raw", "-O", format, disk, img)
		dest := filepath.Join(t.TempDir(), "x")
		if _, errs, code := vdisk(t, "extract", img+":1", "/", dest); code != 0 {
			t.Fatalf("%s: extract: %s", format, errs)
		}
		got := treeOf(t, dest)
		delete(got.sums, "System Volume Information")
		if diff := cmp.Diff(want.sums, got.sums); diff != "" || len(got.sums) < 4 {
			t.Errorf("%s: files differ from ntfs-3g's (-ntfs-3g +vdisk):\n%s", format, diff)
		}
		if out, errs, code := vdisk(t, "cat", img+":1", "hello.txt:zone"); code != 0 || out != stream {
			t.Errorf("%s: cat hello.txt:zone = %q (%s), ntfscat %q", format, out, errs, stream)
		}
		if out, _, _ := vdisk(t, "ls", "-l", img+":1"); !strings.Contains(out, "hello.txt:zone") || !strings.Contains(out, "(stream)") {
			t.Errorf("%s: ls -l does not list the stream:\n%s", format, out)
		}
	}
	used := filepath.Join(t.TempDir(), "used.raw")
	if _, errs, code := vdisk(t, "convert", "--used-only", "-O", "raw", disk, used); code != 0 {
		t.Fatal(errs)
	}
	part := filepath.Join(t.TempDir(), "part.raw")
	if _, errs, code := vdisk(t, "convert", "-O", "raw", used+":1", part); code != 0 {
		t.Fatal(errs)
	}
	if out, err := exec.Command(qemutest.Tool(t, "ntfsfix"), "-n", part).CombinedOutput(); err != nil {
		t.Errorf("ntfsfix -n on the used-only copy: %v\n%s", err, out)
	}
}
