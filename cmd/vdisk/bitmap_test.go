package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestBitmapLikeQemu runs the same qemu-img bitmap lines through qemu-img
// and vdisk on copies of one image: the same exit codes and messages, the
// same bitmaps in qemu-img info, the same dirty ranges (qemu-nbd's export
// read by nbdinfo), a clean check.
func TestBitmapLikeQemu(t *testing.T) {
	t.Parallel()
	qemutest.Tool(t, "nbdinfo")
	dir := t.TempDir()
	q, v := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "v.qcow2")
	other := filepath.Join(dir, "other.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", other, "8M")
	qemutest.Img(t, "bitmap", "--add", "-g", "16k", other, "src")
	qemutest.IO(t, "qcow2", other, "write -P 9 5M 20k")
	for _, p := range []string{q, v} {
		qemutest.Img(t, "create", "-q", "-f", "qcow2", p, "8M")
	}
	v2 := filepath.Join(dir, "v2.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2, "1M")
	steps := [][]string{
		{"--add", "{}", "b1"},
		{"--add", "{}", "b1"},
		{"--add", "-g", "4k", "--disable", "{}", "b2"},
		{"--add", "-g", "3k", "{}", "odd"},
		{"--add", "{}", ""},
		{"--remove", "{}", "zz"},
		{"--clear", "{}", "zz"},
		{"--enable", "{}", "zz"},
		{"--merge", "zz", "{}", "b1"},
		{"{}", "b1"},
		{"-g", "4k", "{}", "b1"},
		{"--add", "--remove", "{}", "tmp"},
		{"--merge", "src", "-b", other, "-F", "qcow2", "{}", "b2"},
		{"--merge", "b2", "{}", "b1"},
		{"--disable", "--clear", "{}", "b2"},
		{"--enable", "{}", "b2"},
		{"--add", v2, "x"},
	}
	for i, s := range steps {
		qa, va := make([]string, len(s)), make([]string, len(s))
		for k, a := range s {
			qa[k], va[k] = strings.ReplaceAll(a, "{}", q), strings.ReplaceAll(a, "{}", v)
		}
		if i > 0 {
			qemutest.IO(t, "qcow2", q, "write -P 1 1M 4k")
			qemutest.IO(t, "qcow2", v, "write -P 1 1M 4k")
		}
		qr := qemutest.Exec(t, "qemu-img", append([]string{"bitmap"}, qa...)...)
		_, stderr, code := vdisk(t, append([]string{"bitmap"}, va...)...)
		qmsg := strings.TrimPrefix(strings.ReplaceAll(qr.Stderr, q, "IMG"), "qemu-img: ")
		vmsg := strings.TrimPrefix(strings.ReplaceAll(stderr, v, "IMG"), "vdisk: ")
		if i == len(steps)-1 { // qemu names the node, vdisk the file
			qmsg, vmsg = qmsg[:min(len(qmsg), 50)], vmsg[:min(len(vmsg), 50)]
		}
		// vdisk prints every error as one line with single spaces.
		qmsg, vmsg = strings.Join(strings.Fields(qmsg), " "), strings.Join(strings.Fields(vmsg), " ")
		if code != qr.Code || qmsg != vmsg {
			t.Errorf("bitmap %v: qemu-img exit %d %q, vdisk exit %d %q", s, qr.Code, qr.Stderr, code, stderr)
		}
		qemutest.RequireClean(t, "qcow2", v)
		qb := qemutest.Info(t, "qcow2", q)["format-specific"].(map[string]any)["data"].(map[string]any)["bitmaps"]
		vb := qemutest.Info(t, "qcow2", v)["format-specific"].(map[string]any)["data"].(map[string]any)["bitmaps"]
		if d := cmp.Diff(qb, vb); d != "" {
			t.Fatalf("after bitmap %v: info bitmaps (-qemu-img +vdisk):\n%s", s, d)
		}
	}
	for _, name := range []string{"b1", "b2"} {
		if d := cmp.Diff(qemutest.DirtyRanges(t, q, name), qemutest.DirtyRanges(t, v, name)); d != "" {
			t.Errorf("bitmap %s dirty ranges (-qemu-img +vdisk):\n%s", name, d)
		}
	}
}
