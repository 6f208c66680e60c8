package chain_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/vhdx"
)

// qemuReadsReplayed has qemu-img read a copy of the VHDX at path after
// qemu-img check -r all replays its log (qemu refuses to read a VHDX with
// a pending log): check must then be clean and the copy read as want.
func qemuReadsReplayed(t *testing.T, path string, want []byte) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy.vhdx")
	copyFile(t, path, cp)
	if r := qemutest.Exec(t, "qemu-img", "check", "-r", "all", "-f", "vhdx", cp); r.Code != 0 {
		t.Fatalf("qemu-img check -r all: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	qemutest.RequireClean(t, "vhdx", cp)
	got := readFile(t, qemutest.ToRaw(t, "vhdx", cp))
	if !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("qemu-img reads %s differently", path)
	}
}

// TestVHDXCommitInterruptedAtEveryWrite commits top.vhdx into base.vhdx
// in place with the base's writes failing from write n on, for every n:
// the base passes vdisk's check, qemu-img reads it (after replaying its
// log on a copy) as vdisk does, and every sector reads as before or as
// the top; from the first header write on the base has a new
// DataWriteGuid, so the top opens only after rebase -u, and then reads as
// before.
func TestVHDXCommitInterruptedAtEveryWrite(t *testing.T) {
	dir, raws := formatChain(t, "vhdx", "vhdx")
	p := func(n string) string { return filepath.Join(dir, n) }
	s0, s1 := readFile(t, raws[0]), readFile(t, raws[1])
	pristineBase, pristineTop := readFile(t, p("base.vhdx")), readFile(t, p("top.vhdx"))
	commit := func(failAt int) (int, error) {
		return commitFaulty(t, "vhdx", p("top.vhdx"), p("base.vhdx"), failAt)
	}
	total, err := commit(-1)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImage(t, p("base.vhdx")); !bytes.Equal(got, s1) {
		t.Fatal("the committed base does not read as the top")
	}
	qemuReadsReplayed(t, p("base.vhdx"), s1)
	relink(t, dir, "vhdx", "vhdx")
	if got := readImage(t, p("top.vhdx")); !bytes.Equal(got, s1) {
		t.Fatal("the relinked top does not read as before")
	}
	for n := 0; n < total; n++ {
		os.WriteFile(p("base.vhdx"), pristineBase, 0o644)
		os.WriteFile(p("top.vhdx"), pristineTop, 0o644)
		if _, err := commit(n); err == nil {
			t.Fatalf("write %d of %d failing: commit succeeded", n, total)
		}
		got := readImage(t, p("base.vhdx"))
		requireOldOrNew(t, got, s0, s1, 512, "sector", n)
		qemuReadsReplayed(t, p("base.vhdx"), got)
		if n > 0 {
			requireRefusedThenRelink(t, dir, "vhdx", "vhdx", "DataWriteGuid", n)
		}
		if !bytes.Equal(readImage(t, p("top.vhdx")), s1) {
			t.Fatalf("write %d failing: the top no longer reads as before", n)
		}
	}
}

// TestVHDXRebaseInterruptedAtEveryWrite rebases top.vhdx in place onto
// new.vhdx (safe) with its writes failing from write n on, for every n:
// the top opens, passes vdisk's check and reads as s1, linked to base.vhdx
// or, once the locator's log entry is complete, to new.vhdx.
func TestVHDXRebaseInterruptedAtEveryWrite(t *testing.T) {
	dir, raws := formatChain(t, "vhdx", "vhdx")
	p := func(n string) string { return filepath.Join(dir, n) }
	newOverlay(t, dir, "vhdx", "vhdx")
	s1 := readFile(t, raws[1])
	pristine := readFile(t, p("top.vhdx"))
	rebase := func(failAt int) (int, error) {
		top, ff := openFaultyAs(t, p("top.vhdx"), "vhdx", failAt)
		nb, err := formats.Open(context.Background(), p("new.vhdx"), formats.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = chain.Rebase(context.Background(), top, nb, chain.RebaseOptions{Name: "new.vhdx", Format: "vhdx", BackingPath: p("new.vhdx")})
		if err != nil {
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
	if !bytes.Equal(readImage(t, p("top.vhdx")), s1) {
		t.Fatal("the rebased top does not read as s1")
	}
	if got := backingName(t, p("top.vhdx")); got != "./new.vhdx" && got != "new.vhdx" {
		t.Fatalf("backing after rebase: %q", got)
	}
	relinked := false
	for n := 0; n < total; n++ {
		os.WriteFile(p("top.vhdx"), pristine, 0o644)
		if _, err := rebase(n); err == nil {
			t.Fatalf("write %d of %d failing: rebase succeeded", n, total)
		}
		if !bytes.Equal(readImage(t, p("top.vhdx")), s1) {
			t.Fatalf("write %d of %d failing: the top no longer reads as s1", n, total)
		}
		switch got := backingName(t, p("top.vhdx")); got {
		case "./base.vhdx", "base.vhdx":
			if relinked {
				t.Fatalf("write %d of %d failing: the old link is back after a later failure showed the new one", n, total)
			}
		default:
			relinked = true
		}
	}
	if !relinked {
		t.Log("no interruption left the new link (the log entry is among the last writes)")
	}
}

// TestVHDXMakeEmptyInterruptedAtEveryWrite commits top.vhdx into
// base.vhdx, relinks it, then empties it with its writes failing from
// write n on, for every n: the top reads as s1 throughout and passes
// vdisk's check; complete, it allocates nothing.
func TestVHDXMakeEmptyInterruptedAtEveryWrite(t *testing.T) {
	dir, raws := formatChain(t, "vhdx", "vhdx")
	p := func(n string) string { return filepath.Join(dir, n) }
	s1 := readFile(t, raws[1])
	if _, err := commitFaulty(t, "vhdx", p("top.vhdx"), p("base.vhdx"), -1); err != nil {
		t.Fatal(err)
	}
	relink(t, dir, "vhdx", "vhdx")
	emptyAtEveryWrite(t, p("top.vhdx"), "vhdx", readFile(t, p("top.vhdx")), func(n int) {
		if !bytes.Equal(readImage(t, p("top.vhdx")), s1) {
			t.Fatalf("MakeEmpty with write %d failing: the top no longer reads as s1", n)
		}
	})
	requireUnallocated(t, p("top.vhdx"))
}
