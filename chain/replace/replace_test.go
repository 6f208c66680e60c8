package replace_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/chain/replace"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// vmdkChain makes base.vmdk <- top.vmdk and new.vmdk (over base.vmdk) with
// qemu-img and qemu-io, 8 MiB each.
func vmdkChain(t *testing.T) string {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "vmdk", p("base.vmdk"), "8M")
	qemutest.IO(t, "vmdk", p("base.vmdk"), "write -P 0x11 0 3M", "write -P 0x12 5M 2M")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", p("top.vmdk"))
	qemutest.IO(t, "vmdk", p("top.vmdk"), "write -P 0x31 1M 64k", "write -z 5M 64k", "write -P 0x32 7M 512k")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", p("new.vmdk"))
	qemutest.IO(t, "vmdk", p("new.vmdk"), "write -P 0x41 2M 2M", "write -P 0x42 6M 64k")
	return dir
}

func open(t *testing.T, path string) formats.Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// requireUnchanged fails unless dir holds exactly the files of before,
// byte for byte (no temporary left, nothing half-written).
func requireUnchanged(t *testing.T, dir string, before map[string][]byte, what string) {
	t.Helper()
	after := snapshot(t, dir)
	for n, b := range before {
		if !bytes.Equal(after[n], b) {
			t.Fatalf("%s: %s changed", what, n)
		}
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			t.Fatalf("%s: %s left behind", what, n)
		}
	}
}

// cancelAt returns a context and a progress function that cancels it on
// its nth call, and reports whether it got that far.
func cancelAt(n int) (context.Context, func(int64, int64), func() bool) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	return ctx, func(int64, int64) {
			if calls++; calls == n {
				cancel()
			}
		}, func() bool {
			defer cancel()
			return calls >= n
		}
}

// TestRebaseInterrupted cancels a safe rebase of top.vmdk onto new.vmdk at
// every progress report: the directory is left byte for byte as it was;
// uninterrupted, the rebase keeps top's content (qemu-img compare).
func TestRebaseInterrupted(t *testing.T) {
	dir := vmdkChain(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	before := qemutest.ToRaw(t, "vmdk", p("top.vmdk"))
	files := snapshot(t, dir)
	for n := 1; ; n++ {
		ctx, progress, reached := cancelAt(n)
		top, nb := open(t, p("top.vmdk")), open(t, p("new.vmdk"))
		err := replace.Rebase(ctx, p("top.vmdk"), top, nb, chain.RebaseOptions{Name: "new.vmdk", Format: "vmdk", Progress: progress}, formats.OpenOptions{})
		top.Close()
		nb.Close()
		if !reached() {
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				t.Fatal("the rebase reported no progress: the test interrupted nothing")
			}
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at report %d: %v", n, err)
		}
		requireUnchanged(t, dir, files, "rebase cancelled")
	}
	qemutest.RequireSame(t, "vmdk", p("top.vmdk"), "raw", before)
	qemutest.RequireClean(t, "vmdk", p("top.vmdk"))
	if got := qemutest.Info(t, "vmdk", p("top.vmdk"))["backing-filename"]; got != "new.vmdk" {
		t.Fatalf("backing after rebase: %v", got)
	}
}

// TestCommitInterrupted cancels a commit of top.vmdk into base.vmdk at every
// progress report: nothing changes; uninterrupted, base reads as top did,
// the emptied top reads the same over it, and qemu-img check is clean.
func TestCommitInterrupted(t *testing.T) {
	dir := vmdkChain(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	before := qemutest.ToRaw(t, "vmdk", p("top.vmdk"))
	files := snapshot(t, dir)
	for n := 1; ; n++ {
		ctx, progress, reached := cancelAt(n)
		top := open(t, p("top.vmdk"))
		base := top.(formats.Backer).Backing()
		_, err := replace.Commit(ctx, top, p("top.vmdk"), base, p("base.vmdk"), top, p("top.vmdk"),
			chain.CommitOptions{Depth: 1, Empty: true, Progress: progress}, formats.OpenOptions{})
		top.Close()
		if !reached() {
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				t.Fatal("the commit reported no progress: the test interrupted nothing")
			}
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled at report %d: %v", n, err)
		}
		requireUnchanged(t, dir, files, "commit cancelled")
	}
	for _, n := range []string{"base.vmdk", "top.vmdk"} {
		qemutest.RequireSame(t, "vmdk", p(n), "raw", before)
		qemutest.RequireClean(t, "vmdk", p(n))
	}
}
