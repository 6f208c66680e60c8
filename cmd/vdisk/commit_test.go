package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// commitFixture makes base.raw <- mid.qcow2 <- top.qcow2 in a new
// directory with qemu-img and qemu-io (the same content on every call).
func commitFixture(t *testing.T) string {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "raw", p("base.raw"), "4M")
	qemutest.IO(t, "raw", p("base.raw"), "write -P 0x11 0 1M")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", p("base.raw"), "-F", "raw", p("mid.qcow2"))
	qemutest.IO(t, "qcow2", p("mid.qcow2"), "write -P 0x21 512k 1M", "write -z 3M 64k")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", p("mid.qcow2"), "-F", "qcow2", p("top.qcow2"))
	qemutest.IO(t, "qcow2", p("top.qcow2"), "write -P 0x31 768k 64k", "write -z 0 64k", "write -P 0x32 2M 100k")
	return dir
}

// TestCommitCLIMatchesQemu runs vdisk commit and qemu-img commit with the
// same flags on two equal chains: every layer compares equal under
// qemu-img, the committed base reads as the top did, the tops map alike
// (emptied, or unchanged with -d and -b), and qemu-img check is clean.
func TestCommitCLIMatchesQemu(t *testing.T) {
	t.Parallel()
	for _, flags := range [][]string{{}, {"-d"}, {"-p"}, {"-b", "base.raw"}} {
		t.Run(strings.Join(append([]string{"commit"}, flags...), " "), func(t *testing.T) {
			vd, qd := commitFixture(t), commitFixture(t)
			before := qemutest.ToRaw(t, "qcow2", filepath.Join(vd, "top.qcow2"))
			args := func(dir string) []string {
				a := []string{"commit", "-f", "qcow2"}
				for _, f := range flags {
					if f == "base.raw" {
						f = filepath.Join(dir, f)
					}
					a = append(a, f)
				}
				return append(a, filepath.Join(dir, "top.qcow2"))
			}
			q := qemutest.Img(t, args(qd)...)
			out, errs, code := vdisk(t, args(vd)...)
			if code != 0 {
				t.Fatalf("vdisk commit: exit %d: %s%s", code, out, errs)
			}
			if !strings.Contains(out, "Image committed.") || !strings.Contains(q, "Image committed.") {
				t.Errorf("output: vdisk %q, qemu-img %q", out, q)
			}
			baseName, baseFmt := "mid.qcow2", "qcow2"
			if len(flags) == 2 {
				baseName, baseFmt = "base.raw", "raw"
			}
			qemutest.RequireSame(t, baseFmt, filepath.Join(vd, baseName), "raw", before)
			for _, l := range []struct{ name, format string }{{"base.raw", "raw"}, {"mid.qcow2", "qcow2"}, {"top.qcow2", "qcow2"}} {
				qemutest.RequireSame(t, l.format, filepath.Join(vd, l.name), l.format, filepath.Join(qd, l.name))
				if l.format == "qcow2" {
					qemutest.RequireClean(t, "qcow2", filepath.Join(vd, l.name))
				}
			}
			m := func(dir string) string {
				out := qemutest.Img(t, "map", "--output=json", "-f", "qcow2", filepath.Join(dir, "top.qcow2"))
				return strings.ReplaceAll(out, dir, "DIR")
			}
			if got, want := m(vd), m(qd); got != want {
				t.Errorf("top's map after vdisk commit:\n%s\nafter qemu-img commit:\n%s", got, want)
			}
		})
	}
}

// TestCommitCLIErrors holds vdisk's messages to qemu-img's.
func TestCommitCLIErrors(t *testing.T) {
	t.Parallel()
	dir := commitFixture(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, args := range [][]string{
		{"commit", "-f", "raw", p("base.raw")},
		{"commit", "-b", p("nope.qcow2"), p("top.qcow2")},
	} {
		q := qemutest.Exec(t, "qemu-img", args...)
		_, errs, code := vdisk(t, args...)
		if code != 1 || q.Code != 1 {
			t.Fatalf("%v: vdisk exit %d, qemu-img exit %d", args, code, q.Code)
		}
		want := strings.TrimPrefix(strings.SplitN(q.Stderr, "\n", 2)[0], "qemu-img: ")
		if !strings.Contains(errs, want) {
			t.Errorf("%v: vdisk says %q, qemu-img %q", args, errs, want)
		}
	}
}
