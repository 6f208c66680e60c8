package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestSetBackingDescriptorLimits: a new link whose descriptor does not fit
// the embedded area is refused by name (ErrLimit) and changes nothing; a
// flat disk cannot become a delta disk; a streamOptimized disk is not
// opened writable. A link that fits is what qemu-img info reads.
func TestSetBackingDescriptorLimits(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "vmdk", p("base.vmdk"), "4M")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", p("top.vmdk"))
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", p("flat.vmdk"), "4M")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", p("stream.vmdk"), "4M")
	ctx := context.Background()
	open := func(path string, o formats.OpenOptions) formats.Image {
		t.Helper()
		img, err := formats.Open(ctx, path, o)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	// The embedded area made 2 sectors (1 KiB) long: the descriptor still
	// fits, a 1 KiB parent name does not.
	hdr, _ := os.ReadFile(p("top.vmdk"))
	binary.LittleEndian.PutUint64(hdr[36:], 2)
	if err := os.WriteFile(p("top.vmdk"), hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p("top.vmdk"))
	top := open(p("top.vmdk"), formats.OpenOptions{Writable: true, NoBacking: true})
	base := open(p("base.vmdk"), formats.OpenOptions{})
	long := strings.Repeat("d/", 512) + "base.vmdk"
	err := top.(formats.BackingSetter).SetBacking(long, "vmdk", base)
	if !errors.Is(err, formats.ErrLimit) || !strings.Contains(err.Error(), "embedded area") {
		t.Fatalf("SetBacking with a 1 KiB name: %v, want ErrLimit naming the embedded area", err)
	}
	if now, _ := os.ReadFile(p("top.vmdk")); !bytes.Equal(now, before) {
		t.Fatal("the refused relink changed the file")
	}
	if err := top.(formats.BackingSetter).SetBacking(strings.Repeat("x", 5000), "vmdk", base); !errors.Is(err, formats.ErrInvalidOption) {
		t.Fatalf("SetBacking with a 5000-byte name: %v, want ErrInvalidOption", err)
	}
	if err := top.(formats.BackingSetter).SetBacking("base.vmdk", "vmdk", base); err != nil {
		t.Fatal(err)
	}
	if err := top.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(p("top.vmdk")); !bytes.Equal(before, after) {
		// Same parent, same CID: the descriptor reads as before.
		if got := qemutest.Info(t, "vmdk", p("top.vmdk"))["backing-filename"]; got != "base.vmdk" {
			t.Fatalf("backing after relinking: %v", got)
		}
	}
	qemutest.RequireClean(t, "vmdk", p("top.vmdk"))

	flat := open(p("flat.vmdk"), formats.OpenOptions{Writable: true})
	base = open(p("base.vmdk"), formats.OpenOptions{})
	if err := flat.(formats.BackingSetter).SetBacking("base.vmdk", "vmdk", base); !errors.Is(err, formats.ErrUnsupported) {
		t.Fatalf("a backing file for a flat VMDK: %v, want ErrUnsupported", err)
	}
	base.Close()
	flat.Close()
	if _, err := formats.Open(ctx, p("stream.vmdk"), formats.OpenOptions{Writable: true}); !errors.Is(err, formats.ErrUnsupported) {
		t.Fatalf("opening a streamOptimized VMDK writable: %v, want ErrUnsupported", err)
	}
}
