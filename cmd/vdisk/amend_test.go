package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestAmendLikeQemu runs the same amend lines through qemu-img and vdisk on
// copies of one image: the same exit codes, the same messages (one or two
// lines) for what is refused, and for what is done the same qemu-img info
// fields and a clean check.
func TestAmendLikeQemu(t *testing.T) {
	dir := t.TempDir()
	q, v := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "v.qcow2")
	for _, p := range []string{q, v} {
		qemutest.Img(t, "create", "-q", "-f", "qcow2", p, "8M")
		qemutest.IO(t, "qcow2", p, "write -P 0x21 0 1M", "write -z 2M 64k")
	}
	for _, o := range []string{"cluster_size=4096", "foo=bar", "backing_file=x", "refcount_bits=3", "compat=0.9",
		"refcount_bits=8,lazy_refcounts=on", "compat=0.10", "refcount_bits=16,lazy_refcounts=off", "compat=0.10",
		"lazy_refcounts=on", "compat=1.1,refcount_bits=64"} {
		qr := qemutest.Exec(t, "qemu-img", "amend", "-o", o, q)
		_, stderr, code := vdisk(t, "amend", "-o", o, v)
		if code != qr.Code || strings.TrimPrefix(stderr, "vdisk: ") != strings.TrimPrefix(qr.Stderr, "qemu-img: ") {
			t.Errorf("amend -o %s: qemu-img exit %d %q, vdisk exit %d %q", o, qr.Code, qr.Stderr, code, stderr)
		}
		if code != 0 {
			continue // refused: TestAmendRefusals shows the file is untouched
		}
		qemutest.RequireClean(t, "qcow2", v)
		qi := qemutest.Info(t, "qcow2", q)["format-specific"].(map[string]any)["data"].(map[string]any)
		vi := qemutest.Info(t, "qcow2", v)["format-specific"].(map[string]any)["data"].(map[string]any)
		for _, k := range []string{"compat", "lazy-refcounts", "refcount-bits"} {
			if qi[k] != vi[k] {
				t.Errorf("after amend -o %s: %s qemu-img %v, vdisk %v", o, k, qi[k], vi[k])
			}
		}
		qemutest.RequireSame(t, "qcow2", q, "qcow2", v)
	}
	if out, _, code := vdisk(t, "amend", "-o", "help", v); code != 0 || !strings.Contains(out, "refcount_bits=") {
		t.Errorf("amend -o help: exit %d %q", code, out)
	}
}
