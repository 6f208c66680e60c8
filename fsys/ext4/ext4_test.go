//go:build linux

// The file-system fixtures are made with Linux tools (mkfs, debugfs, mkfifo).

package ext4_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/ext4"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// sourceTree holds what every test file system gets from mkfs -d: small
// and large files, a sparse file, short and long symlinks, a hard link, a
// FIFO, an htree directory and a deep one.
func sourceTree(t *testing.T) string {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	write("a.txt", []byte("hello, ext4\n"))
	write("big.bin", big)
	write("tiny", []byte("x"))
	write("empty", nil)
	write("sub/deep/er/file.txt", []byte("deep\n"))
	for i := 0; i < 200; i++ { // more than one 4 KiB block: an htree index
		write(fmt.Sprintf("many/entry-with-a-longish-name-%04d", i), []byte(fmt.Sprint(i)))
	}
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("middle"), 3<<20)
	f.Truncate(6 << 20)
	f.Close()
	os.Symlink("a.txt", filepath.Join(dir, "link"))
	// A target longer than i_block's 60 bytes is stored in a data block.
	os.Symlink("./sub/./././././././././././././././././././././././deep/er/file.txt", filepath.Join(dir, "longlink"))
	os.Symlink("/sub/deep", filepath.Join(dir, "abslink"))
	os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "hard"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "tiny"), 0o4755)
	return dir
}

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(qemutest.Tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func makeFS(t *testing.T, src string, mkfs ...string) string {
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"-q", "-F", "-L", "vdisktest"}, mkfs[1:]...), "-d", src, img)
	tool(t, mkfs[0], args...)
	return img
}

// entry is what a tree listing compares: type and permissions, and the
// content or link target.
type entry struct {
	Mode fs.FileMode
	Data string
}

func listing(t *testing.T, fsys fs.FS) map[string]entry {
	out := map[string]entry{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." || d.Type()&(fs.ModeNamedPipe|fs.ModeDevice|fs.ModeSocket) != 0 {
			return nil // debugfs rdump skips special files; checked apart
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: info.Mode() &^ (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.Data, err = fs.ReadLink(fsys, p)
		case !d.IsDir():
			var b []byte
			b, err = fs.ReadFile(fsys, p)
			e.Data = string(b)
		}
		out[p] = e
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// open reads the image into memory (fstest reads files a few bytes at a
// time: from memory that takes no system calls).
func open(t *testing.T, img string) *ext4.FS {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ext4.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMatchesDebugfs(t *testing.T) {
	src := sourceTree(t)
	for name, mkfs := range map[string][]string{
		"ext4":             {"mkfs.ext4"},
		"ext4-1k-blocks":   {"mkfs.ext4", "-b", "1024"},
		"ext4-inline-data": {"mkfs.ext4", "-O", "inline_data"},
		"ext4-no-csum":     {"mkfs.ext4", "-O", "^metadata_csum,^64bit"},
		"ext3":             {"mkfs.ext3"},
		"ext2":             {"mkfs.ext2"},
	} {
		t.Run(name, func(t *testing.T) {
			img := makeFS(t, src, mkfs...)
			v := open(t, img)
			if v.Label != "vdisktest" {
				t.Errorf("label %q", v.Label)
			}
			out := filepath.Join(t.TempDir(), "out")
			os.Mkdir(out, 0o755)
			tool(t, "debugfs", "-R", "rdump / "+out, img)
			want := listing(t, os.DirFS(out))
			got := listing(t, v)
			if name == "ext4-inline-data" {
				inlineDumpBug(t, img, want, got)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tree differs from debugfs rdump (-debugfs +vdisk):\n%.3000s", diff)
			}
			if len(want) < 200 {
				t.Fatalf("debugfs dumped only %d entries", len(want))
			}
			// Special files and mode bits rdump does not carry: debugfs stat.
			info, err := fs.Lstat(v, "fifo")
			if err != nil || info.Mode().Type() != fs.ModeNamedPipe {
				t.Errorf("fifo: %v %v", info, err)
			}
			if !strings.Contains(tool(t, "debugfs", "-R", "stat /fifo", img), "Type: FIFO") {
				t.Error("debugfs says /fifo is not a FIFO")
			}
			setuid := strings.Contains(tool(t, "debugfs", "-R", "stat /tiny", img), "Mode:  04755")
			if info, err := fs.Stat(v, "tiny"); err != nil || (info.Mode()&fs.ModeSetuid != 0) != setuid {
				t.Errorf("tiny: setuid %v, debugfs says %v (%v)", info.Mode(), setuid, err)
			}
			if b, err := fs.ReadFile(v, "abslink/er/file.txt"); err != nil || string(b) != "deep\n" {
				t.Errorf("through an absolute link: %q %v", b, err)
			}
			hard, _ := fs.Stat(v, "hard")
			orig, _ := fs.Stat(v, "a.txt")
			if hard.Sys().(*ext4.Stat).Inode != orig.Sys().(*ext4.Stat).Inode {
				t.Error("the hard link has another inode")
			}
			if err := fstest.TestFS(v, "a.txt", "big.bin", "sub/deep/er/file.txt", "many/entry-with-a-longish-name-0199"); err != nil {
				t.Error(err)
			}
		})
	}
}

// inlineDumpBug accounts for libext2fs 1.47.0 dumping an inline-data file as
// the whole 60-byte i_block instead of i_size bytes: where debugfs dumped a
// file of exactly 60 bytes that is vdisk's content followed by zeros, the
// size debugfs's "ls -p" reports decides, and it must be vdisk's.
func inlineDumpBug(t *testing.T, img string, want, got map[string]entry) {
	sizes := map[string]string{} // path -> size, from ls -p of each directory
	for p, w := range want {
		if !w.Mode.IsDir() {
			continue
		}
		for _, line := range strings.Split(tool(t, "debugfs", "-R", "ls -p \"/"+p+"\"", img), "\n") {
			// /inode/mode/uid/gid/name/size/
			if f := strings.Split(line, "/"); len(f) == 8 {
				sizes[filepath.Join(p, f[5])] = f[6]
			}
		}
	}
	for _, line := range strings.Split(tool(t, "debugfs", "-R", "ls -p /", img), "\n") {
		if f := strings.Split(line, "/"); len(f) == 8 {
			sizes[f[5]] = f[6]
		}
	}
	fixed := 0
	for p, w := range want {
		g, ok := got[p]
		if !ok || w.Mode.Type() != 0 || len(w.Data) != 60 || len(g.Data) >= 60 ||
			w.Data != g.Data+strings.Repeat("\x00", 60-len(g.Data)) {
			continue
		}
		if sizes[p] != fmt.Sprint(len(g.Data)) {
			t.Errorf("%s: debugfs ls -p gives size %q, vdisk %d", p, sizes[p], len(g.Data))
			continue
		}
		w.Data = g.Data
		want[p] = w
		fixed++
	}
	if fixed == 0 {
		t.Error("no inline-data file was found (the image has no inline data?)")
	}
}

// flip changes one byte of a file.
func flip(t *testing.T, img string, off int64) {
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	f.WriteAt(b, off)
}

// With metadata_csum every structure read is verified.
func TestChecksumsVerified(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	img := makeFS(t, src, "mkfs.ext4")
	// Superblock: a byte of the volume name.
	flip(t, img, 1024+0x78)
	f, _ := os.Open(img)
	defer f.Close()
	if _, err := ext4.Open(f, 64<<20); !errors.Is(err, formats.ErrCorrupt) || !strings.Contains(err.Error(), "superblock") {
		t.Errorf("damaged superblock: %v", err)
	}
	// An inode: find /f's inode with debugfs and damage its mtime.
	img = makeFS(t, src, "mkfs.ext4", "-b", "4096")
	var block, offset int64
	imap := tool(t, "debugfs", "-R", "imap /f", img)
	i := strings.Index(imap, "located at block ")
	if i < 0 {
		t.Fatalf("debugfs imap: %s", imap)
	}
	fmt.Sscanf(imap[i:], "located at block %d, offset %v", &block, &offset)
	if block == 0 {
		t.Fatalf("debugfs imap: %s", imap)
	}
	flip(t, img, block*4096+offset+0x10)
	v := open(t, img)
	if _, err := fs.ReadFile(v, "f"); !errors.Is(err, formats.ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("damaged inode: %v", err)
	}
	if out := exec.Command("e2fsck", "-fn", img); out.Run() == nil {
		t.Error("e2fsck finds nothing wrong with the damaged inode: the test damaged nothing")
	}
}

// The free blocks FreeSpans finds are those dumpe2fs counts, also with
// groups whose bitmaps were never initialised (a large, empty file system).
func TestFreeSpans(t *testing.T) {
	src := sourceTree(t)
	for name, size := range map[string]int64{"small": 64 << 20, "uninit groups": 2 << 30} {
		t.Run(name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fs.img")
			os.WriteFile(img, nil, 0o644)
			os.Truncate(img, size)
			tool(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, img)
			f, _ := os.Open(img)
			defer f.Close()
			v, err := ext4.Open(f, size)
			if err != nil {
				t.Fatal(err)
			}
			spans, err := v.FreeSpans()
			if err != nil {
				t.Fatal(err)
			}
			var free int64
			for _, s := range spans {
				free += s.End - s.Start
			}
			var want int64
			out := tool(t, "dumpe2fs", "-h", img)
			i := strings.Index(out, "Free blocks:")
			fmt.Sscanf(strings.TrimSpace(out[i+len("Free blocks:"):]), "%d", &want)
			if want == 0 || free != want*4096 {
				t.Errorf("free %d blocks, dumpe2fs says %d", free/4096, want)
			}
		})
	}
}

func TestHostile(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	img := makeFS(t, src, "mkfs.ext4", "-O", "^metadata_csum")
	good, _ := os.ReadFile(img)
	for name, patch := range map[string]func([]byte){
		"blocks beyond the volume": func(b []byte) { b[1024+0x04+3] = 0x7f },
		"huge block size":          func(b []byte) { b[1024+0x18] = 30 },
		"zero inodes per group":    func(b []byte) { copy(b[1024+0x28:], []byte{0, 0, 0, 0}) },
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(good)
			patch(b)
			if _, err := ext4.Open(bytes.NewReader(b), int64(len(b))); !errors.Is(err, formats.ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
		})
	}
	if _, err := ext4.Open(bytes.NewReader(make([]byte, 8192)), 8192); !errors.Is(err, ext4.ErrNotExt) {
		t.Errorf("zeros: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	// Inputs are patches over small file systems (fuzzpatch): a whole
	// 64 KiB image as the input is minimised for a minute each time the
	// fuzzer finds new coverage.
	var bases [][]byte
	if mk, err := exec.LookPath("mkfs.ext4"); err == nil {
		dir := f.TempDir()
		os.MkdirAll(filepath.Join(dir, "src", "d"), 0o755)
		os.WriteFile(filepath.Join(dir, "src", "d", "x"), []byte("seed"), 0o644)
		os.Symlink("d/x", filepath.Join(dir, "src", "l"))
		for i, opts := range []string{"^has_journal", "^has_journal,inline_data"} {
			p := filepath.Join(dir, fmt.Sprint(i))
			os.WriteFile(p, make([]byte, 64<<10), 0o644)
			if out, err := exec.Command(mk, "-q", "-F", "-b", "1024", "-N", "16", "-O", opts, "-d", filepath.Join(dir, "src"), p).CombinedOutput(); err != nil {
				f.Fatalf("mkfs.ext4: %v %s", err, out)
			}
			seed, _ := os.ReadFile(p)
			bases = append(bases, seed)
		}
	}
	bases = append(bases, make([]byte, 4096))
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		d := fuzzpatch.Apply(bases, input)
		v, err := ext4.Open(bytes.NewReader(d), int64(len(d)))
		if err != nil {
			return
		}
		fs.WalkDir(v, ".", func(p string, e fs.DirEntry, err error) error {
			if err != nil || strings.Count(p, "/") > 32 {
				return fs.SkipDir
			}
			if e.Type().IsRegular() {
				fs.ReadFile(v, p)
			}
			if e.Type()&fs.ModeSymlink != 0 {
				fs.ReadLink(v, p)
			}
			return nil
		})
	})
}
