package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// rebaseFixture makes base.raw <- top.qcow2 and new.qcow2 (over base.raw)
// with qemu-img and qemu-io, each writing its own data and zeros, and a copy
// of top.qcow2 for qemu-img to rebase.
func rebaseFixture(t *testing.T) (dir string) {
	dir = t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "raw", p("base.raw"), "4M")
	qemutest.IO(t, "raw", p("base.raw"), "write -P 0x11 0 1M", "write -P 0x12 3M 512k")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", p("base.raw"), "-F", "raw", p("top.qcow2"))
	qemutest.IO(t, "qcow2", p("top.qcow2"), "write -P 0x31 512k 64k", "write -z 3M 64k")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", p("base.raw"), "-F", "raw", p("new.qcow2"))
	qemutest.IO(t, "qcow2", p("new.qcow2"), "write -P 0x41 256k 128k", "write -P 0x42 2M 64k")
	b, err := os.ReadFile(p("top.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("q.qcow2"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRebaseCLIMatchesQemu runs vdisk rebase and qemu-img rebase with the
// same flags on copies of one image: qemu-img compares the results equal
// (and equal to the top's content before, in safe mode), maps them alike,
// and checks vdisk's clean.
func TestRebaseCLIMatchesQemu(t *testing.T) {
	t.Parallel()
	for _, flags := range [][]string{
		{"-b", "NEW", "-F", "qcow2"},
		{"-p", "-b", ""},
		{"-u", "-b", "NEW", "-F", "qcow2"},
	} {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			dir := rebaseFixture(t)
			p := func(n string) string { return filepath.Join(dir, n) }
			before := qemutest.ToRaw(t, "qcow2", p("top.qcow2"))
			args := make([]string, len(flags))
			for i, f := range flags {
				args[i] = strings.ReplaceAll(f, "NEW", p("new.qcow2"))
			}
			qemutest.Img(t, append(append([]string{"rebase", "-f", "qcow2"}, args...), p("q.qcow2"))...)
			if out, errs, code := vdisk(t, append(append([]string{"rebase", "-f", "qcow2"}, args...), p("top.qcow2"))...); code != 0 {
				t.Fatalf("vdisk rebase: exit %d: %s%s", code, out, errs)
			}
			qemutest.RequireClean(t, "qcow2", p("top.qcow2"))
			qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "qcow2", p("q.qcow2"))
			if flags[0] != "-u" {
				qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "raw", before)
			}
			m := func(n string) string { return qemutest.Img(t, "map", "--output=json", "-f", "qcow2", p(n)) }
			if got, want := m("top.qcow2"), m("q.qcow2"); got != want {
				t.Errorf("map after vdisk rebase:\n%s\nafter qemu-img rebase:\n%s", got, want)
			}
		})
	}
}

// TestRebaseCLIErrors holds vdisk's messages to qemu-img's for the same
// mistakes, and shows the image unchanged after each.
func TestRebaseCLIErrors(t *testing.T) {
	t.Parallel()
	dir := rebaseFixture(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, args := range [][]string{
		{"rebase", p("top.qcow2")},
		{"rebase", "-b", p("new.qcow2"), p("top.qcow2")},
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
	qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "qcow2", p("q.qcow2"))
	if got := qemutest.Info(t, "qcow2", p("top.qcow2"))["backing-filename"]; got != p("base.raw") {
		t.Errorf("backing after the refused rebases: %v", got)
	}
}
