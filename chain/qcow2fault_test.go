package chain_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/faultfile"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestCommitIntoQcow2FailsAtEveryWrite commits a qcow2 top into its qcow2
// base through a file that fails at write k, for every k the commit makes:
// qemu-img check of the base reports no corruption (leaked clusters, exit
// 3, are allowed, as after an interrupted qemu write) and every sector of
// the base reads as before the commit or as the top (old or new data).
func TestCommitIntoQcow2FailsAtEveryWrite(t *testing.T) {
	dir := chainFixture(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	pristine, err := os.ReadFile(p("old.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	oldRaw := readFile(t, qemutest.ToRaw(t, "qcow2", p("old.qcow2")))
	newRaw := readFile(t, qemutest.ToRaw(t, "qcow2", p("top.qcow2")))
	commit := func(failAt int) (int, error) {
		if err := os.WriteFile(p("old.qcow2"), pristine, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		top, err := formats.Open(ctx, p("top.qcow2"), formats.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer top.Close()
		f, err := formats.OpenOSFile(p("old.qcow2"), true)
		if err != nil {
			t.Fatal(err)
		}
		ff := faultfile.FailWrites(f, failAt)
		base, err := formats.OpenFile(ctx, ff, formats.OpenOptions{Writable: true, Format: "qcow2"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = chain.Commit(ctx, top, base.(formats.Writable), chain.CommitOptions{Depth: 1})
		if cerr := base.Close(); err == nil {
			err = cerr
		}
		return ff.Calls(), err
	}
	n, err := commit(-1)
	if err != nil {
		t.Fatal(err)
	}
	qemutest.RequireSame(t, "qcow2", p("old.qcow2"), "qcow2", p("top.qcow2"))
	if n < 3 {
		t.Fatalf("the commit made %d writes: the fixture does not exercise the writer", n)
	}
	for k := range n {
		if _, err := commit(k); err == nil {
			t.Fatalf("write %d of %d failed but the commit succeeded", k, n)
		}
		requireNoCorruption(t, k, p("old.qcow2"))
		got := readFile(t, qemutest.ToRaw(t, "qcow2", p("old.qcow2")))
		requireOldOrNew(t, got, oldRaw, newRaw, 512, "sector", k)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requireNoCorruption accepts qemu-img check exit 0 (clean) and 3 (leaks).
func requireNoCorruption(t *testing.T, k int, path string) {
	t.Helper()
	if r := qemutest.Check(t, "qcow2", path); r.Code != 0 && r.Code != 3 {
		t.Fatalf("failure at write %d: qemu-img check exit %d: %s%s", k, r.Code, r.Stdout, r.Stderr)
	}
}
