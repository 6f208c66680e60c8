package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestConvertCompressedRawOutputs: convert -O raw --compression=K writes
// a file (and, to '-', a stream) that the stock tool tests and
// decompresses to the image qemu-img sees in the source; vdisk reads the
// xz and zstd outputs back as the same image.
func TestConvertCompressedRawOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", src, "12M")
	qemutest.IO(t, "qcow2", src, "write -P 0x5a 0 64k", "write -P 0xa5 5M 3M", "write -P 0x11 11M 3k")
	for _, kind := range []string{"xz", "zstd", "gzip"} {
		t.Run(kind, func(t *testing.T) {
			tool := qemutest.Tool(t, kind)
			out := filepath.Join(dir, "out.raw."+kind)
			if _, stderr, code := vdisk(t, "convert", "-O", "raw", "--compression="+kind, src, out); code != 0 {
				t.Fatalf("convert: %s", stderr)
			}
			stdout, stderr, code := vdisk(t, "convert", "-O", "raw", "--compression="+kind, src, "-")
			if code != 0 {
				t.Fatalf("convert to stdout: %s", stderr)
			}
			piped := out + ".piped"
			if err := os.WriteFile(piped, []byte(stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{out, piped} {
				if b, err := exec.Command(tool, "-t", f).CombinedOutput(); err != nil {
					t.Fatalf("%s -t %s: %v %s", kind, f, err, b)
				}
				dec := f + ".dec"
				if b, err := exec.Command("sh", "-c", tool+` -dc "$0" > "$1"`, f, dec).CombinedOutput(); err != nil {
					t.Fatalf("%s -dc: %v %s", kind, err, b)
				}
				qemutest.RequireSame(t, "qcow2", src, "raw", dec)
			}
			back := filepath.Join(dir, kind+".back.qcow2")
			if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", out, back); code != 0 {
				t.Fatalf("reading %s back: %s", out, stderr)
			}
			qemutest.RequireSame(t, "qcow2", src, "qcow2", back)
		})
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(left) != 0 {
		t.Errorf("temporaries left: %v", left)
	}
	for _, args := range [][]string{
		{"convert", "-O", "qcow2", "--compression=xz", src, filepath.Join(dir, "x.qcow2")},
		{"convert", "-O", "raw", "--compression=lz4", src, filepath.Join(dir, "x.raw")},
	} {
		if _, stderr, code := vdisk(t, args...); code == 0 || !strings.Contains(stderr, "compression") {
			t.Errorf("vdisk %v: exit %d %q", args, code, stderr)
		}
	}
}

// TestConvertRawAndStreamOptimizedToStdout: '-' takes raw and
// streamOptimized VMDK as it takes a fixed VHD; qemu-img reads what came
// out as the source.
func TestConvertRawAndStreamOptimizedToStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", src, "8M")
	qemutest.IO(t, "qcow2", src, "write -P 0x5a 1M 64k", "write -P 0x11 7M 3k")
	for _, c := range []struct{ format, opts, file string }{
		{"raw", "", "out.raw"},
		{"vmdk", "subformat=streamOptimized", "out.vmdk"},
	} {
		args := []string{"convert", "-O", c.format}
		if c.opts != "" {
			args = append(args, "-o", c.opts)
		}
		stdout, stderr, code := vdisk(t, append(args, src, "-")...)
		if code != 0 {
			t.Fatalf("%v: %s", args, stderr)
		}
		path := filepath.Join(dir, c.file)
		if err := os.WriteFile(path, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		qemutest.RequireSame(t, "qcow2", src, c.format, path)
	}
}

// TestMultiBlockXzLikeQemu: a qcow2 compressed by `xz -T2 --block-size`
// (read in place) converts to the raw bytes qemu-img makes of the
// decompressed file.
func TestMultiBlockXzLikeQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", src, "12M")
	qemutest.IO(t, "qcow2", src, "write -P 0x5a 0 64k", "write -P 0xa5 5M 3M", "write -P 0x11 11M 3k")
	qemutest.Tool(t, "xz")
	script := `xz -c -T2 --block-size=512KiB "$0" > "$0.xz" && xz -dc "$0.xz" > "$0.dec" && qemu-img convert -f qcow2 -O raw "$0.dec" "$0.qemu.raw"`
	if b, err := exec.Command("sh", "-c", script, src).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, b)
	}
	out := filepath.Join(dir, "vdisk.raw")
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", src+".xz", out); code != 0 {
		t.Fatal(stderr)
	}
	want, err := os.ReadFile(src + ".qemu.raw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != string(want) {
		t.Errorf("vdisk's raw of the .xz differs from qemu-img's of the decompressed file (%v)", err)
	}
}
