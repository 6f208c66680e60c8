package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestChecksumCLI: --linear prints what sha256sum and md5sum print for the
// raw export, and the block digest is the same for the raw and a qcow2 copy.
func TestChecksumCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	qcow := filepath.Join(dir, "copy.qcow2")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "qcow2", "-c", src, qcow)
	for _, tool := range []string{"sha256sum", "md5sum"} {
		want, err := exec.Command(tool, src).Output()
		if err != nil {
			t.Skipf("%s: %v", tool, err)
		}
		got, stderr, code := vdisk(t, "checksum", "--linear", "-a", strings.TrimSuffix(tool, "sum"), src)
		if code != 0 || got != string(want) {
			t.Errorf("vdisk checksum --linear: exit %d %s\n got %q\nwant %q (%s)", code, stderr, got, want, tool)
		}
	}
	raw, _, code1 := vdisk(t, "checksum", src)
	q, _, code2 := vdisk(t, "checksum", qcow)
	if code1 != 0 || code2 != 0 || strings.Fields(raw)[0] != strings.Fields(q)[0] {
		t.Errorf("block digests differ: raw %q, qcow2 %q", raw, q)
	}
	if _, stderr, code := vdisk(t, "checksum", "-a", "md5,sha1", src); code == 0 || !strings.Contains(stderr, "--linear") {
		t.Errorf("several algorithms without --linear: exit %d %q", code, stderr)
	}
	if _, stderr, code := vdisk(t, "checksum", "-a", "crc", src); code == 0 || !strings.Contains(stderr, "crc") {
		t.Errorf("unknown algorithm: exit %d %q", code, stderr)
	}
}
