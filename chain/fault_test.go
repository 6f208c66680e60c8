package chain_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

var errInjected = errors.New("injected write failure")

// failingWrites is a formats.File whose writes fail once budget bytes have
// been written (the disk filling up or dying mid-operation).
type failingWrites struct {
	formats.File
	budget int64
}

func (f *failingWrites) WriteAt(p []byte, off int64) (int, error) {
	if f.budget < int64(len(p)) {
		return 0, errInjected
	}
	f.budget -= int64(len(p))
	return f.File.WriteAt(p, off)
}

// TestCommitWriteFailureLeavesBaseReadable commits into a base whose file
// stops accepting writes after a few chunks, at several points: the commit
// fails with the injected error, the top still reads as before (it is not
// emptied), and the base opens and reads to its end under qemu-img (whose
// check may report leaked clusters, which check -r leaks repairs, but no
// corruption).
// (TestCommitIntoQcow2FailsAtEveryWrite fails the base at every write.)
func TestCommitWriteFailureLeavesBaseReadable(t *testing.T) {
	for _, budget := range []int64{4 << 10, 64 << 10} {
		dir := chainFixture(t)
		p := func(n string) string { return filepath.Join(dir, n) }
		before := qemutest.ToRaw(t, "qcow2", p("top.qcow2"))
		ctx := context.Background()
		top, err := formats.Open(ctx, p("top.qcow2"), formats.OpenOptions{Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := formats.OpenOSFile(p("old.qcow2"), true)
		if err != nil {
			t.Fatal(err)
		}
		base, err := formats.OpenFile(ctx, &failingWrites{File: f, budget: budget}, formats.OpenOptions{Writable: true, Format: "qcow2"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = chain.Commit(ctx, top, base.(formats.Writable), chain.CommitOptions{Depth: 1, Empty: true})
		base.Close()
		top.Close()
		if !errors.Is(err, errInjected) {
			t.Fatalf("budget %d: commit: %v, want the injected failure", budget, err)
		}
		qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "raw", before)
		r := qemutest.Check(t, "qcow2", p("old.qcow2"))
		if r.Code != 0 && r.Code != 3 {
			t.Fatalf("budget %d: qemu-img check of the base: exit %d (want 0, or 3 for leaks only): %s%s", budget, r.Code, r.Stdout, r.Stderr)
		}
		qemutest.ToRaw(t, "qcow2", p("old.qcow2")) // the base reads to the end
	}
}
