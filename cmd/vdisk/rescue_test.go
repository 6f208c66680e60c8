package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestRescueCLI: vdisk rescue and convert --salvage --mapfile image a file
// into qcow2 and vdi that qemu-img finds identical to it, with a mapfile
// ddrescuelog says is finished; a second run resumes (nothing left to do);
// the source's bytes and mtime are unchanged.
func TestRescueCLI(t *testing.T) {
	t.Parallel()
	ddrescuelog, err := exec.LookPath("ddrescuelog")
	if err != nil {
		t.Skip("ddrescuelog (gddrescue) not found")
	}
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	before := agedSource(t, src)
	for i, args := range [][]string{
		{"rescue", "-O", "qcow2", "--retries", "2", "--mapfile", filepath.Join(dir, "a.map"), src, filepath.Join(dir, "a.qcow2")},
		{"convert", "--salvage", "--mapfile", filepath.Join(dir, "b.map"), "-O", "vdi", src, filepath.Join(dir, "b.vdi")},
	} {
		for run := 0; run < 2; run++ {
			stdout, stderr, code := vdisk(t, args...)
			if code != 0 || !strings.Contains(stdout, "not rescued: 0 bytes in 0 areas") {
				t.Fatalf("vdisk %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
			}
		}
		n := len(args)
		format := strings.TrimPrefix(filepath.Ext(args[n-1]), ".")
		qemutest.RequireSame(t, "raw", src, format, args[n-1])
		mapfile := filepath.Join(dir, []string{"a.map", "b.map"}[i])
		if out, err := exec.Command(ddrescuelog, "-D", mapfile).CombinedOutput(); err != nil {
			t.Errorf("ddrescuelog -D %s: %v %s", mapfile, err, out)
		}
	}
	if after := stateOf(t, src); after != before {
		t.Errorf("the source changed: %+v -> %+v", before, after)
	}
	if _, stderr, code := vdisk(t, "convert", "--mapfile", filepath.Join(dir, "c.map"), src, filepath.Join(dir, "c.raw")); code == 0 || !strings.Contains(stderr, "--salvage") {
		t.Errorf("--mapfile without --salvage: exit %d %q", code, stderr)
	}
	if _, stderr, code := vdisk(t, "rescue", "--fill", "300", src, filepath.Join(dir, "d.raw")); code == 0 || !strings.Contains(stderr, "--fill") {
		t.Errorf("--fill 300: exit %d %q", code, stderr)
	}
}
