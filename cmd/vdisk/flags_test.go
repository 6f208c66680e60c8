package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// sideBySide runs one command line with qemu-img in one directory and with
// vdisk in another ("{}/" in an argument stands for the directory) and
// returns both results.
type sideBySide struct {
	t          *testing.T
	qdir, vdir string
}

func newSideBySide(t *testing.T) *sideBySide {
	return &sideBySide{t: t, qdir: t.TempDir(), vdir: t.TempDir()}
}

func (s *sideBySide) in(dir string, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "{}", dir)
	}
	return out
}

func (s *sideBySide) run(args ...string) (q qemutest.Result, v qemutest.Result) {
	s.t.Helper()
	q = qemutest.Exec(s.t, "qemu-img", s.in(s.qdir, args)...)
	v.Stdout, v.Stderr, v.Code = vdisk(s.t, s.in(s.vdir, args)...)
	return q, v
}

// same runs args both ways and fails unless both exit with code.
func (s *sideBySide) same(code int, args ...string) (q, v qemutest.Result) {
	s.t.Helper()
	q, v = s.run(args...)
	if q.Code != code || v.Code != code {
		s.t.Errorf("%s: qemu-img exit %d (%s), vdisk exit %d (%s); want %d", strings.Join(args, " "),
			q.Code, strings.TrimSpace(q.Stderr), v.Code, strings.TrimSpace(v.Stderr), code)
	}
	return q, v
}

// sameImage asserts both directories' name hold images qemu-img reads as
// the same virtual size and content.
func (s *sideBySide) sameImage(format, name string) {
	s.t.Helper()
	q, v := filepath.Join(s.qdir, name), filepath.Join(s.vdir, name)
	qi, vi := qemutest.Info(s.t, format, q), qemutest.Info(s.t, format, v)
	if qi["virtual-size"] != vi["virtual-size"] {
		s.t.Errorf("%s: virtual-size qemu-img %v, vdisk %v", name, qi["virtual-size"], vi["virtual-size"])
	}
	qemutest.RequireSame(s.t, format, q, format, v)
}

// TestClientFlags: flags clients pass qemu-img give the same exit codes
// and the same images with vdisk.
func TestClientFlags(t *testing.T) {
	t.Parallel()
	s := newSideBySide(t)
	s.same(0, "create", "-q", "-f", "raw", "{}/hex.raw", "0x100000")
	s.sameImage("raw", "hex.raw")
	s.same(0, "create", "-q", "-f", "vpc", "-o", "subformat=fixed,force_size", "{}/fixed.vhd", "100M")
	s.sameImage("vpc", "fixed.vhd")
	s.same(0, "create", "-q", "-f", "vmdk", "-o", "compat6", "{}/c6.vmdk", "10M")
	s.sameImage("vmdk", "c6.vmdk")
	s.same(0, "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts", "{}/lazy.qcow2", "10M")
	for _, name := range []string{"lazy.qcow2"} {
		qi := qemutest.Info(t, "qcow2", filepath.Join(s.qdir, name))
		vi := qemutest.Info(t, "qcow2", filepath.Join(s.vdir, name))
		ql := qi["format-specific"].(map[string]any)["data"].(map[string]any)["lazy-refcounts"]
		vl := vi["format-specific"].(map[string]any)["data"].(map[string]any)["lazy-refcounts"]
		if ql != true || vl != true {
			t.Errorf("-o lazy_refcounts: qemu-img %v, vdisk %v", ql, vl)
		}
	}
	// resize: --preallocation, "-- -10M", --shrink after the file name.
	s.same(0, "create", "-q", "-f", "raw", "{}/r.raw", "20M")
	actual := func(dir string) float64 {
		return qemutest.Info(t, "raw", filepath.Join(dir, "r.raw"))["actual-size"].(float64)
	}
	q0, v0 := actual(s.qdir), actual(s.vdir) // qemu allocates the first 4 KiB at create
	s.same(0, "resize", "-q", "--preallocation=falloc", "-f", "raw", "{}/r.raw", "30M")
	s.same(0, "resize", "-q", "--preallocation=full", "-f", "raw", "{}/r.raw", "+2M")
	s.same(1, "resize", "-q", "--preallocation=sometimes", "-f", "raw", "{}/r.raw", "+2M")
	s.same(1, "resize", "-q", "-f", "raw", "{}/r.raw", "--", "-10M")
	s.same(0, "resize", "-q", "-f", "raw", "--shrink", "{}/r.raw", "--", "-10M")
	s.sameImage("raw", "r.raw")
	if dq, dv := actual(s.qdir)-q0, actual(s.vdir)-v0; dq != dv || dv < 2<<20 {
		t.Errorf("bytes allocated by resize --preallocation: qemu-img %v, vdisk %v", dq, dv)
	}
	// -o help without files, and help inside an option list.
	for _, args := range [][]string{
		{"convert", "-O", "qcow2", "-o", "help"},
		{"convert", "-O", "qcow2", "-o", "cluster_size=64k,help"},
		{"create", "-f", "qcow2", "-o", "?"},
	} {
		q, v := s.same(0, args...)
		if !strings.HasPrefix(q.Stdout, "Supported qcow2 options:") || !strings.HasPrefix(v.Stdout, "Supported qcow2 options:") {
			t.Errorf("%v: qemu-img %.40q, vdisk %.40q", args, q.Stdout, v.Stdout)
		}
	}
	// Cache modes, valid and not.
	s.same(0, "create", "-q", "-f", "raw", "{}/src.raw", "4M")
	for _, mode := range []string{"none", "writeback", "unsafe", "directsync", "writethrough"} {
		s.same(0, "convert", "-t", mode, "-T", mode, "-O", "qcow2", "{}/src.raw", "{}/c-"+mode+".qcow2")
	}
	for _, args := range [][]string{{"-t", "sometimes"}, {"-T", "sometimes"}} {
		_, v := s.same(1, append(append([]string{"convert"}, args...), "{}/src.raw", "{}/bad.raw")...)
		if !strings.Contains(v.Stderr, "cache option: sometimes") {
			t.Errorf("convert %v: %q", args, v.Stderr)
		}
	}
	// 0-byte raw images open, convert and resize; also one vdisk made.
	if err := os.WriteFile(filepath.Join(s.qdir, "empty.raw"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.vdir, "empty.raw"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.same(0, "create", "-q", "-f", "raw", "{}/zero.raw", "0")
	for _, name := range []string{"empty.raw", "zero.raw"} {
		q, v := s.same(0, "info", "--output=json", "{}/"+name)
		if strings.ReplaceAll(q.Stdout, s.qdir, "") != strings.ReplaceAll(v.Stdout, s.vdir, "") {
			t.Errorf("info %s:\nqemu-img %s\nvdisk    %s", name, q.Stdout, v.Stdout)
		}
		s.same(0, "convert", "-O", "qcow2", "{}/"+name, "{}/"+name+".qcow2")
		s.sameImage("qcow2", name+".qcow2")
		s.same(0, "resize", "-q", "-f", "raw", "{}/"+name, "1M")
		s.sameImage("raw", name)
	}
	// Bare invocation.
	s.same(1)
}

// TestCompareStrictMatchesQemu: compare -s reports the first block status
// mismatch (data, zero, allocation, end of image) where qemu-img does.
func TestCompareStrictMatchesQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "raw", p("a.raw"), "8M")
	qemutest.IO(t, "raw", p("a.raw"), "write -P 1 1M 64k")
	qemutest.Img(t, "convert", "-O", "qcow2", p("a.raw"), p("a.qcow2"))
	qemutest.Img(t, "convert", "-S", "0", "-O", "raw", p("a.raw"), p("full.raw"))
	qemutest.Img(t, "convert", "-O", "qcow2", p("a.raw"), p("c.qcow2"))
	qemutest.Img(t, "convert", "-O", "raw", p("a.raw"), p("b.raw"))
	qemutest.IO(t, "raw", p("b.raw"), "write -z 3M 64k")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", p("z.qcow2"), "8M")
	qemutest.IO(t, "qcow2", p("z.qcow2"), "write -P 1 1M 64k", "write -z 2M 64k")
	for _, pair := range [][2]string{
		{"a.raw", "a.qcow2"}, {"a.raw", "full.raw"}, {"a.qcow2", "z.qcow2"}, {"a.raw", "b.raw"},
		{"a.qcow2", "a.raw"}, {"a.qcow2", "c.qcow2"}, {"b.raw", "b.raw"}, {"z.qcow2", "a.qcow2"},
	} {
		args := []string{"compare", "-s", p(pair[0]), p(pair[1])}
		q := qemutest.Exec(t, "qemu-img", args...)
		out, stderr, code := vdisk(t, args...)
		if code != q.Code || out != q.Stdout {
			t.Errorf("compare -s %s %s: vdisk exit %d %q %s, qemu-img exit %d %q", pair[0], pair[1], code, out, stderr, q.Code, q.Stdout)
		}
	}
}
