package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestConvertCopyOffload: convert -C into every raw-stored target (raw, a
// monolithicFlat and a twoGbMaxExtentFlat VMDK, a fixed VHD) and from
// raw-stored sources (a flat VMDK, a fixed VHD) gives images qemu-img
// compare finds identical to the source and as sparse as qemu-img -C
// makes them; a target that stores nothing verbatim (qcow2) falls back.
// On this machine's /tmp the kernel copies (copy_file_range; a reflink on
// XFS/btrfs); across file systems (a source in /dev/shm) it declines with
// EXDEV and the ordinary copy takes over.
func TestConvertCopyOffload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	qemutest.IO(t, "raw", src, "write -P 0x33 63M 1M") // data up to the end
	sources := map[string]string{"raw": src}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "vdisk-offload-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			other := filepath.Join(shm, "src.raw")
			qemutest.Img(t, "convert", "-f", "raw", "-O", "raw", src, other)
			sources["raw on another file system"] = other
		}
	}
	flat := filepath.Join(dir, "src-flat.vmdk")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", src, flat)
	fixed := filepath.Join(dir, "src-fixed.vpc")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", src, fixed)
	srcFormats := map[string]string{"raw": "raw", "raw on another file system": "raw"}
	sources["flat vmdk"], srcFormats["flat vmdk"] = flat, "vmdk"
	sources["fixed vhd"], srcFormats["fixed vhd"] = fixed, "vpc"
	targets := []struct {
		name, format string
		opts         []string
	}{
		{"raw", "raw", nil},
		{"vmdk monolithicFlat", "vmdk", []string{"-o", "subformat=monolithicFlat"}},
		{"vmdk twoGbMaxExtentFlat", "vmdk", []string{"-o", "subformat=twoGbMaxExtentFlat"}},
		{"vhd fixed", "vpc", []string{"-o", "subformat=fixed,force_size=on"}},
		{"qcow2 (no offload)", "qcow2", nil},
	}
	for srcName, path := range sources {
		for _, tg := range targets {
			t.Run(srcName+" to "+tg.name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out."+tg.format)
				args := append(append([]string{"convert", "-C", "-f", srcFormats[srcName], "-O", tg.format}, tg.opts...), path, out)
				if _, stderr, code := vdisk(t, args...); code != 0 {
					t.Fatalf("vdisk %v: exit %d: %s", args, code, stderr)
				}
				qemutest.RequireSame(t, "raw", src, tg.format, out)
				if tg.format == "raw" {
					// qemu-img -C keeps the holes the source's block status
					// shows; so must vdisk.
					theirs := filepath.Join(t.TempDir(), "qemu.raw")
					qemutest.Img(t, "convert", "-C", "-f", srcFormats[srcName], "-O", "raw", path, theirs)
					if a, b := allocatedKiB(t, out), allocatedKiB(t, theirs); a > b+64 {
						t.Errorf("vdisk -C output allocates %d KiB, qemu-img -C's %d KiB", a, b)
					}
				}
			})
		}
	}
}

// TestConvertCopyOffloadConflicts: -C with -c, -S or --salvage is refused
// as qemu-img refuses it, in its words.
func TestConvertCopyOffloadConflicts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	for _, extra := range [][]string{{"-c", "-O", "qcow2"}, {"-S", "4k", "-O", "raw"}, {"--salvage", "-O", "raw"}} {
		args := append(append([]string{"convert", "-C"}, extra...), src, filepath.Join(dir, "out"))
		theirs := qemutest.Exec(t, "qemu-img", args...)
		_, stderr, code := vdisk(t, args...)
		want := strings.TrimPrefix(strings.TrimSpace(theirs.Stderr), "qemu-img: ")
		if code != 1 || theirs.Code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v: vdisk exit %d %q; qemu-img exit %d %q", extra, code, stderr, theirs.Code, theirs.Stderr)
		}
	}
}

// allocatedKiB is what du reports for path.
func allocatedKiB(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return blocksKiB(st)
}
