package chain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// vmdkFaultChain makes base.vmdk <- top.vmdk and new.vmdk (over base)
// with qemu-img and qemu-io, 4 MiB each, and returns the raw contents of
// base and top as qemu-img reads them.
func vmdkFaultChain(t *testing.T) (dir string, base, top []byte) {
	t.Helper()
	dir = t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "vmdk", p("base.vmdk"), "4M")
	qemutest.IO(t, "vmdk", p("base.vmdk"), "write -P 0x11 0 2M", "write -P 0x12 2560k 512k")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", p("top.vmdk"))
	qemutest.IO(t, "vmdk", p("top.vmdk"), "write -P 0x21 512k 64k", "write -P 0x22 1M 192k", "write -z 2600k 64k", "write -P 0x23 3584k 4k")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", p("new.vmdk"))
	qemutest.IO(t, "vmdk", p("new.vmdk"), "write -P 0x41 1536k 1M")
	return dir, readFile(t, qemutest.ToRaw(t, "vmdk", p("base.vmdk"))), readFile(t, qemutest.ToRaw(t, "vmdk", p("top.vmdk")))
}

// TestVMDKCommitInterruptedAtEveryWrite commits top.vmdk into base.vmdk
// in place with the base's writes failing from write n on, for every n:
// qemu-img check finds the base clean and every 64 KiB grain of it reads
// as before or as the top; the base has a new CID from its first write,
// so the top opens only after rebase -u, and then reads as before.
func TestVMDKCommitInterruptedAtEveryWrite(t *testing.T) {
	dir, s0, s1 := vmdkFaultChain(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	pristineBase, pristineTop := readFile(t, p("base.vmdk")), readFile(t, p("top.vmdk"))
	commit := func(failAt int) (int, error) {
		return commitFaulty(t, "vmdk", p("top.vmdk"), p("base.vmdk"), failAt)
	}
	total, err := commit(-1)
	if err != nil {
		t.Fatal(err)
	}
	relink(t, dir, "vmdk", "vmdk")
	qemutest.RequireSame(t, "vmdk", p("base.vmdk"), "raw", writeRawFile(t, dir, s1))
	qemutest.RequireSame(t, "vmdk", p("top.vmdk"), "raw", writeRawFile(t, dir, s1))
	if total < 3 {
		t.Fatalf("the commit made %d writes: the test interrupts nothing", total)
	}
	for n := 0; n < total; n++ {
		os.WriteFile(p("base.vmdk"), pristineBase, 0o644)
		os.WriteFile(p("top.vmdk"), pristineTop, 0o644)
		if _, err := commit(n); err == nil {
			t.Fatalf("write %d of %d failing: commit succeeded", n, total)
		}
		qemutest.RequireClean(t, "vmdk", p("base.vmdk"))
		got := readFile(t, qemutest.ToRaw(t, "vmdk", p("base.vmdk")))
		requireOldOrNew(t, got, s0, s1, 64<<10, "grain", n)
		if n > 0 {
			requireRefusedThenRelink(t, dir, "vmdk", "vmdk", "CID", n)
		}
		if !bytes.Equal(readVMDK(t, p("top.vmdk")), s1) {
			t.Fatalf("write %d failing: the top no longer reads as before", n)
		}
	}
}

// TestVMDKRebaseInterruptedAtEveryWrite rebases top.vmdk in place (safe,
// onto new.vmdk, and flattening) with its writes failing from write n on,
// for every n: the top opens with its old link (the descriptor's link is
// written last), is clean under qemu-img check and reads as before.
func TestVMDKRebaseInterruptedAtEveryWrite(t *testing.T) {
	for _, onto := range []string{"new.vmdk", ""} {
		t.Run("onto="+onto, func(t *testing.T) {
			dir, _, s1 := vmdkFaultChain(t)
			p := func(n string) string { return filepath.Join(dir, n) }
			pristine := readFile(t, p("top.vmdk"))
			rebase := func(failAt int) (int, error) {
				top, ff := openFaultyAs(t, p("top.vmdk"), "vmdk", failAt)
				var nb formats.Image
				format := ""
				if onto != "" {
					var err error
					if nb, err = formats.Open(context.Background(), p(onto), formats.OpenOptions{}); err != nil {
						t.Fatal(err)
					}
					format = "vmdk"
				}
				_, err := chain.Rebase(context.Background(), top, nb, chain.RebaseOptions{Name: onto, Format: format, BackingPath: p(onto)})
				if err != nil && nb != nil {
					nb.Close()
				}
				if cerr := top.Close(); err == nil {
					err = cerr
				}
				return ff.Calls(), err
			}
			total, err := rebase(-1)
			if err != nil {
				t.Fatal(err)
			}
			qemutest.RequireSame(t, "vmdk", p("top.vmdk"), "raw", writeRawFile(t, dir, s1))
			if got := backingName(t, p("top.vmdk")); got != onto {
				t.Fatalf("backing after rebase: %q, want %q", got, onto)
			}
			for n := 0; n < total; n++ {
				os.WriteFile(p("top.vmdk"), pristine, 0o644)
				if _, err := rebase(n); err == nil {
					t.Fatalf("write %d of %d failing: rebase succeeded", n, total)
				}
				if got := backingName(t, p("top.vmdk")); got != "base.vmdk" {
					t.Fatalf("write %d of %d failing: link %q before the rebase completed", n, total, got)
				}
				qemutest.RequireClean(t, "vmdk", p("top.vmdk"))
				if !bytes.Equal(readVMDK(t, p("top.vmdk")), s1) {
					t.Fatalf("write %d of %d failing: the top no longer reads as before", n, total)
				}
			}
		})
	}
}

// readVMDK reads the VMDK at path with its chain, with vdisk and with
// qemu-img (which must agree). vdisk's check is not asked: between the
// redundant grain table's write and the primary's it reports the copies
// disagreeing (the primary, which readers use, holds the old entry);
// qemu-img check, which the tests ask, does not compare them.
func readVMDK(t *testing.T, path string) []byte {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatalf("reopening %s: %v", path, err)
	}
	defer img.Close()
	buf := make([]byte, img.Size())
	if _, err := img.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if q := readFile(t, qemutest.ToRaw(t, "vmdk", path)); !bytes.Equal(q, buf) {
		t.Fatalf("vdisk and qemu-img read %s differently", path)
	}
	return buf
}

// writeRawFile writes b to a new file in dir and returns its path.
func writeRawFile(t *testing.T, dir string, b []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "*.raw")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// TestVMDKMakeEmptyInterruptedAtEveryWrite commits top.vmdk into base.vmdk
// and relinks it, then empties the top with its writes failing from write
// n on, for every n: the top reads as before throughout (its grains, or
// the base's copy of them); complete, qemu-img map shows it allocates
// nothing and qemu-img check is clean.
func TestVMDKMakeEmptyInterruptedAtEveryWrite(t *testing.T) {
	dir, _, s1 := vmdkFaultChain(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	if _, err := commitFaulty(t, "vmdk", p("top.vmdk"), p("base.vmdk"), -1); err != nil {
		t.Fatal(err)
	}
	relink(t, dir, "vmdk", "vmdk")
	emptyAtEveryWrite(t, p("top.vmdk"), "vmdk", readFile(t, p("top.vmdk")), func(n int) {
		qemutest.RequireClean(t, "vmdk", p("top.vmdk"))
		if !bytes.Equal(readVMDK(t, p("top.vmdk")), s1) {
			t.Fatalf("MakeEmpty with write %d failing: the top no longer reads as before", n)
		}
	})
	qemutest.RequireClean(t, "vmdk", p("top.vmdk"))
	if own := ownBytesQemu(t, p("top.vmdk")); own != 0 {
		t.Fatalf("the emptied top allocates %d bytes (qemu-img map)", own)
	}
}

// ownBytesQemu is what qemu-img map says img's own layer allocates.
func ownBytesQemu(t *testing.T, img string) int64 {
	t.Helper()
	var exts []struct {
		Length int64 `json:"length"`
		Depth  int   `json:"depth"`
	}
	out := qemutest.Img(t, "map", "--output=json", "-f", "vmdk", img)
	if err := json.Unmarshal([]byte(out), &exts); err != nil {
		t.Fatalf("qemu-img map %s: %v\n%s", img, err, out)
	}
	var n int64
	for _, e := range exts {
		if e.Depth == 0 {
			n += e.Length
		}
	}
	return n
}
