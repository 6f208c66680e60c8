package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestReferencesLocalDefault: Packer's create with an absolute backing file
// outside the image's directory works with the CLI's default policy (local)
// and with every policy but strict (the user named it); qemu-img reads the
// result; VDISK_REFERENCES sets the default and --references overrides it.
func TestReferencesLocalDefault(t *testing.T) {
	root := t.TempDir()
	cache := filepath.Join(root, "cache")
	out := filepath.Join(root, "output")
	for _, d := range []string{cache, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Packer names the downloaded cloud image by the hash of its URL with an
	// .iso suffix, and passes its absolute path.
	base := filepath.Join(cache, "x.iso")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", base, "64M")
	qemutest.IO(t, "qcow2", base, "write -P 0x5a 1M 64k")
	disk := filepath.Join(out, "packer-disk")
	t.Setenv(referencesEnv, "")
	if _, stderr, code := vdisk(t, "create", "-f", "qcow2", "-b", base, "-F", "qcow2", disk, "40960M"); code != 0 {
		t.Fatalf("packer create: exit %d: %s", code, stderr)
	}
	if got := qemutest.Info(t, "qcow2", disk)["backing-filename"]; got != base {
		t.Errorf("qemu-img info: backing-filename %v, want %s", got, base)
	}
	qemutest.IO(t, "qcow2", disk, "read -P 0x5a 1M 64k")
	// The default (local) opens the absolute backing file of an existing
	// image, as Lima's diffdisk needs; safe refuses it naming local.
	if _, stderr, code := vdisk(t, "map", disk); code != 0 {
		t.Errorf("info with the default policy: exit %d: %s", code, stderr)
	}
	t.Setenv(referencesEnv, "safe")
	if _, stderr, code := vdisk(t, "map", disk); code != 1 || !strings.Contains(stderr, "--references=local") {
		t.Errorf("info under VDISK_REFERENCES=safe: exit %d: %s", code, stderr)
	}
	if _, stderr, code := vdisk(t, "map", "--references=local", disk); code != 0 {
		t.Errorf("--references=local over VDISK_REFERENCES=safe: exit %d: %s", code, stderr)
	}
	// A backing file named on the command line is the user's choice.
	os.Remove(disk)
	if _, stderr, code := vdisk(t, "create", "-f", "qcow2", "-b", base, "-F", "qcow2", disk, "1G"); code != 0 {
		t.Errorf("create -b under safe: exit %d: %s", code, stderr)
	}
	src := filepath.Join(out, "src.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", src)
	qemutest.IO(t, "qcow2", src, "write -P 0x11 0 64k")
	overlay := filepath.Join(out, "overlay.qcow2")
	if _, stderr, code := vdisk(t, "convert", "--references=local", "-O", "qcow2", "-B", base, "-F", "qcow2", src, overlay); code != 0 {
		t.Fatalf("convert -B: exit %d: %s", code, stderr)
	}
	qemutest.RequireSame(t, "qcow2", src, "qcow2", overlay)
	os.Remove(overlay)
	t.Setenv(referencesEnv, "strict")
	if _, stderr, code := vdisk(t, "create", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay, "1G"); code != 1 || !strings.Contains(stderr, "strict") {
		t.Errorf("create -b under strict: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(overlay); !os.IsNotExist(err) {
		t.Errorf("a refused create left %s (%v)", overlay, err)
	}
	t.Setenv(referencesEnv, "bogus")
	if _, stderr, code := vdisk(t, "info", disk); code != 1 || !strings.Contains(stderr, "bogus") {
		t.Errorf("VDISK_REFERENCES=bogus: exit %d: %s", code, stderr)
	}
}
