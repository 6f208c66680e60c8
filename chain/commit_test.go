package chain_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// copyDir copies the fixture's files into a new directory (the chain's
// links are relative, so the copy is a chain of its own).
func copyDir(t *testing.T, dir string) string {
	out := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(dir, e.Name()), filepath.Join(out, e.Name()))
	}
	return out
}

// vdiskCommit commits dir/top.qcow2 into basePath (depth layers) with the
// library.
func vdiskCommit(t *testing.T, ctx context.Context, dir, baseName, baseFmt string, opts chain.CommitOptions) error {
	t.Helper()
	bg := context.Background()
	top, err := formats.Open(bg, filepath.Join(dir, "top.qcow2"), formats.OpenOptions{Writable: opts.Empty})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	base, err := formats.Open(bg, filepath.Join(dir, baseName), formats.OpenOptions{Writable: true, Format: baseFmt})
	if err != nil {
		t.Fatal(err)
	}
	_, err = chain.Commit(ctx, top, base.(formats.Writable), opts)
	if cerr := base.Close(); err == nil {
		err = cerr
	}
	return err
}

func TestCommitAgainstQemu(t *testing.T) {
	cases := []struct {
		name, base, baseFmt string
		qemuArgs            []string
		opts                chain.CommitOptions
	}{
		{"into-backing", "old.qcow2", "qcow2", nil, chain.CommitOptions{Depth: 1, Empty: true}},
		{"keep-top", "old.qcow2", "qcow2", []string{"-d"}, chain.CommitOptions{Depth: 1}},
		{"into-raw-base", "base.raw", "raw", []string{"-b", "base.raw"}, chain.CommitOptions{Depth: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := chainFixture(t)
			qdir := copyDir(t, dir)
			p := func(n string) string { return filepath.Join(dir, n) }
			q := func(n string) string { return filepath.Join(qdir, n) }
			before := qemutest.ToRaw(t, "qcow2", p("top.qcow2"))
			mapBefore := mapJSON(t, p("top.qcow2"))
			args := append(append([]string{"commit", "-f", "qcow2"}, tc.qemuArgs...), q("top.qcow2"))
			qemutest.Img(t, fixBase(args, qdir)...)
			if err := vdiskCommit(t, context.Background(), dir, tc.base, tc.baseFmt, tc.opts); err != nil {
				t.Fatal(err)
			}
			if tc.baseFmt == "qcow2" {
				qemutest.RequireClean(t, "qcow2", p(tc.base))
			}
			qemutest.RequireClean(t, "qcow2", p("top.qcow2"))
			qemutest.RequireSame(t, tc.baseFmt, p(tc.base), tc.baseFmt, q(tc.base))
			qemutest.RequireSame(t, tc.baseFmt, p(tc.base), "raw", before)
			qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "qcow2", q("top.qcow2"))
			got, want := mapJSON(t, p("top.qcow2")), mapJSON(t, q("top.qcow2"))
			if got != want {
				t.Errorf("top's map after vdisk commit:\n%s\nqemu-img commit:\n%s", got, want)
			}
			if !tc.opts.Empty && got != mapBefore {
				t.Errorf("top changed without emptying:\n%s\nwas:\n%s", got, mapBefore)
			}
		})
	}
}

// fixBase makes a -b argument name the copy's file.
func fixBase(args []string, dir string) []string {
	for i := range args {
		if i > 0 && args[i-1] == "-b" {
			args[i] = filepath.Join(dir, args[i])
		}
	}
	return args
}

// TestCommitInterrupted cancels a commit after its first chunk: the base
// is clean under qemu-img check and holds part of the top's data (each
// chunk reads as the base before or as the top), and the top still reads
// as before (it is emptied only after a complete commit).
func TestCommitInterrupted(t *testing.T) {
	dir := chainFixture(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	before := qemutest.ToRaw(t, "qcow2", p("top.qcow2"))
	oldBefore := qemutest.ToRaw(t, "qcow2", p("old.qcow2"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	opts := chain.CommitOptions{Depth: 1, Empty: true, Progress: func(done, total int64) {
		if calls++; calls == 2 {
			cancel()
		}
	}}
	if err := vdiskCommit(t, ctx, dir, "old.qcow2", "qcow2", opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("commit with a cancelled context: %v, want context.Canceled", err)
	}
	qemutest.RequireClean(t, "qcow2", p("old.qcow2"))
	qemutest.RequireClean(t, "qcow2", p("top.qcow2"))
	qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "raw", before)
	if qemutest.Compare(t, "qcow2", p("old.qcow2"), "raw", oldBefore).Code == 0 {
		t.Fatal("the interrupted commit wrote nothing into the base: the test interrupted nothing")
	}
	if qemutest.Compare(t, "qcow2", p("old.qcow2"), "raw", before).Code == 0 {
		t.Fatal("the interrupted commit completed")
	}
}
