package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestOutputIsNoSourceFile: every command that writes (convert, dd,
// create, rescue) refuses a
// destination that is any file the input uses (the image, a hard link to
// it, its extents, its backing chain), extra files of multi-file outputs
// included, with one line, exit 1, and every source unchanged.
func TestOutputIsNoSourceFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", in, "8M")
	qemutest.IO(t, "raw", in, "write -P 0x5a 0 8M")
	hard := filepath.Join(dir, "hard.raw")
	if err := os.Link(in, hard); err != nil {
		t.Fatal(err)
	}
	flat := filepath.Join(dir, "disk-flat.vmdk") // a raw file named as qemu names a flat extent
	qemutest.Img(t, "convert", "-O", "raw", in, flat)
	base := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "convert", "-O", "qcow2", in, base)
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	qemutest.IO(t, "qcow2", top, "write -P 0x11 1M 64k")
	split := filepath.Join(dir, "split.vmdk")
	qemutest.Img(t, "convert", "-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", in, split)
	splitExtent := filepath.Join(dir, "split-s001.vmdk")
	chainAsExtent := filepath.Join(dir, "chain-s001.vmdk")
	if err := os.Link(base, chainAsExtent); err != nil {
		t.Fatal(err)
	}
	watched := []string{in, flat, base, top, split, splitExtent}
	sums := map[string][32]byte{}
	for _, p := range watched {
		sums[p] = fileSum(t, p)
	}
	for _, args := range [][]string{
		{"dd", "bs=1M", "count=1", "if=" + in, "of=" + in},
		{"dd", "bs=1M", "count=1", "if=" + in, "of=" + hard},
		{"convert", "-O", "raw", in, hard},
		{"convert", "-O", "vmdk", "-o", "subformat=monolithicFlat", flat, filepath.Join(dir, "disk.vmdk")},
		{"convert", "-O", "raw", top, base},
		{"convert", "-O", "qcow2", split, splitExtent},
		{"convert", "-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", top, filepath.Join(dir, "chain.vmdk")},
		{"convert", "-n", "-O", "raw", top, base},
		{"dd", "-O", "raw", "bs=64k", "count=1", "if=" + top, "of=" + base},
		{"create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", base},
		{"rescue", "-O", "vmdk", "-o", "subformat=monolithicFlat", flat, filepath.Join(dir, "disk.vmdk")},
	} {
		_, stderr, code := vdisk(t, args...)
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "the input uses") && !strings.Contains(stderr, "backing loop") {
			t.Errorf("vdisk %s: exit %d, stderr %q; want one line refusing a source file", strings.Join(args, " "), code, stderr)
		}
		for _, p := range watched {
			if fileSum(t, p) != sums[p] {
				t.Fatalf("vdisk %s changed %s", strings.Join(args, " "), p)
			}
		}
	}
	for _, p := range []string{"disk.vmdk", "chain.vmdk"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("a refused conversion left %s (%v)", p, err)
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmps) != 0 {
		t.Errorf("temporaries left: %v", tmps)
	}
}

// fileSum is the SHA-256 of a file's bytes.
func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
