package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestVDIParentModified: a differencing VDI records its parent's
// modification UUID (header offset 440); when the parent's changes after
// the link was made (VirtualBox gives an image a new one when it writes to
// it: here the field is changed in the file, as VirtualBox would), opening
// the chain is one line naming the link (both UUIDs) in info
// --backing-chain, convert and compare, and nothing is written;
// rebase -u relinks the image to the parent as it is now, after which the
// chain reads as the raw image (made by qemu-io) it was converted from.
// The VDI parent with another creation UUID is TestBadLinks's case.
func TestVDIParentModified(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "raw", p("base.raw"), "4M")
	qemutest.IO(t, "raw", p("base.raw"), "write -P 0x11 0 3M")
	copyFile(t, p("base.raw"), p("top.raw"))
	qemutest.IO(t, "raw", p("top.raw"), "write -P 0x22 1M 1M", "write -z 2M 512k")
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "vdi", p("base.raw"), p("base.vdi"))
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "vdi", "-B", "base.vdi", "-F", "vdi", p("top.raw"), p("top.vdi"))
	parent := []string{"--parent", p("base.vdi")}
	vdiskOK(t, append(append([]string{"compare", "-q"}, parent...), p("top.vdi"), p("top.raw"))...)

	// The parent gets a new modification UUID (offset 408).
	b, err := os.ReadFile(p("base.vdi"))
	if err != nil {
		t.Fatal(err)
	}
	b[408] ^= 0xff
	if err := os.WriteFile(p("base.vdi"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	top, err := os.ReadFile(p("top.vdi"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"top.vdi", "base.vdi", "modification UUID", "parent changed", "rebase -u"}
	vdiskFails(t, want, append(append([]string{"info"}, parent...), "--backing-chain", p("top.vdi"))...)
	vdiskFails(t, want, append(append([]string{"convert"}, parent...), "-O", "raw", p("top.vdi"), p("out.raw"))...)
	if _, err := os.Stat(p("out.raw")); err == nil {
		t.Error("a refused convert left its output")
	}
	vdiskFails(t, want, append(append([]string{"compare"}, parent...), p("top.vdi"), p("top.raw"))...)
	if after, err := os.ReadFile(p("top.vdi")); err != nil || string(after) != string(top) {
		t.Fatalf("a refused open changed top.vdi (%v)", err)
	}

	vdiskOK(t, append(append([]string{"rebase", "-u", "-b", "base.vdi", "-F", "vdi"}, parent...), p("top.vdi"))...)
	vdiskOK(t, append(append([]string{"info"}, parent...), "--backing-chain", p("top.vdi"))...)
	vdiskOK(t, append(append([]string{"compare", "-q"}, parent...), p("top.vdi"), p("top.raw"))...)
	vdiskOK(t, append(append([]string{"convert", "-q"}, parent...), "-O", "raw", p("top.vdi"), p("out.raw"))...)
	qemutest.RequireSame(t, "raw", p("out.raw"), "raw", p("top.raw"))
}
