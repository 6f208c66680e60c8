package chain_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
)

// chainFixture makes, with qemu-img and qemu-io, base.raw <- old.qcow2 <-
// top.qcow2 and a different new.qcow2 (over base.raw), each layer writing
// its own pattern, zero clusters and ranges that overlap the others.
func chainFixture(t *testing.T) string {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-f", "raw", p("base.raw"), "8M")
	qemutest.IO(t, "raw", p("base.raw"), "write -P 0x11 0 2M", "write -P 0x12 5M 1M")
	qemutest.Img(t, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p("old.qcow2"))
	qemutest.IO(t, "qcow2", p("old.qcow2"), "write -P 0x21 1M 1M", "write -z 5M 64k", "write -P 0x22 6M 512k")
	qemutest.Img(t, "create", "-f", "qcow2", "-b", "old.qcow2", "-F", "qcow2", p("top.qcow2"))
	qemutest.IO(t, "qcow2", p("top.qcow2"), "write -P 0x31 1536k 64k", "write -z 6M 64k", "write -P 0x32 7M 100k")
	qemutest.Img(t, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p("new.qcow2"))
	qemutest.IO(t, "qcow2", p("new.qcow2"), "write -P 0x21 1M 512k", "write -P 0x41 3M 1M", "write -P 0x42 6M 128k")
	return dir
}

// copyFile copies src to dst (the fixture is rebased twice: by vdisk and
// by qemu-img).
func copyFile(t *testing.T, src, dst string) {
	if filepath.Ext(src) != ".raw" {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Holes kept: qemu-img map reports a raw file's holes as zeros.
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v: %s", src, err, out)
	}
}

// vdiskRebase rebases dir/name onto newName (format newFmt) with the library.
func vdiskRebase(t *testing.T, ctx context.Context, path, newName, newFmt string, unsafe bool) error {
	t.Helper()
	return vdiskRebaseOpts(t, ctx, path, chain.RebaseOptions{Name: newName, Format: newFmt, Unsafe: unsafe})
}

func vdiskRebaseOpts(t *testing.T, ctx context.Context, path string, ro chain.RebaseOptions) error {
	t.Helper()
	newName, newFmt := ro.Name, ro.Format
	bg := context.Background()
	img, err := formats.Open(bg, path, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	var nb formats.Image
	if newName != "" {
		if nb, err = formats.OpenReference(bg, path, newName, newFmt, formats.OpenOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = chain.Rebase(ctx, img.(formats.Writable), nb, ro)
	if err != nil && nb != nil {
		nb.Close()
	}
	if cerr := img.Close(); err == nil {
		err = cerr
	}
	return err
}

func mapJSON(t *testing.T, path string) string {
	return qemutest.Img(t, "map", "--output=json", "-f", "qcow2", path)
}

func TestRebaseAgainstQemu(t *testing.T) {
	cases := []struct {
		name, newName, newFmt string
		unsafe                bool
	}{
		{"safe-new-qcow2", "new.qcow2", "qcow2", false},
		{"safe-base-raw", "base.raw", "raw", false},
		{"flatten", "", "", false},
		{"unsafe", "new.qcow2", "qcow2", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := chainFixture(t)
			p := func(n string) string { return filepath.Join(dir, n) }
			before := qemutest.ToRaw(t, "qcow2", p("top.qcow2"))
			copyFile(t, p("top.qcow2"), p("q.qcow2"))
			args := []string{"rebase", "-f", "qcow2", "-b", tc.newName}
			if tc.newFmt != "" {
				args = append(args, "-F", tc.newFmt)
			}
			if tc.unsafe {
				args = append(args, "-u")
			}
			qemutest.Img(t, append(args, p("q.qcow2"))...)
			if err := vdiskRebase(t, context.Background(), p("top.qcow2"), tc.newName, tc.newFmt, tc.unsafe); err != nil {
				t.Fatal(err)
			}
			qemutest.RequireClean(t, "qcow2", p("top.qcow2"))
			qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "qcow2", p("q.qcow2"))
			if !tc.unsafe {
				qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "raw", before)
			}
			if got, want := mapJSON(t, p("top.qcow2")), mapJSON(t, p("q.qcow2")); got != want {
				t.Errorf("map after vdisk rebase:\n%s\nqemu-img rebase:\n%s", got, want)
			}
			gi, qi := qemutest.Info(t, "qcow2", p("top.qcow2")), qemutest.Info(t, "qcow2", p("q.qcow2"))
			for _, k := range []string{"backing-filename", "backing-filename-format"} {
				if gi[k] != qi[k] {
					t.Errorf("info %s: vdisk %v, qemu-img %v", k, gi[k], qi[k])
				}
			}
		})
	}
}

// TestRebaseCancelledKeepsOldLink cancels a safe flattening rebase after
// its first chunk was written: the top keeps its old link and reads as before (qemu-img
// compare against its content taken before), and qemu-img check is clean.
func TestRebaseCancelledKeepsOldLink(t *testing.T) {
	dir := chainFixture(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	before := qemutest.ToRaw(t, "qcow2", p("top.qcow2"))
	mapBefore := mapJSON(t, p("top.qcow2"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	progress := func(done, total int64) {
		if calls++; calls == 2 {
			cancel()
		}
	}
	err := vdiskRebaseOpts(t, ctx, p("top.qcow2"), chain.RebaseOptions{Progress: progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("rebase with a cancelled context: %v, want context.Canceled", err)
	}
	if got := qemutest.Info(t, "qcow2", p("top.qcow2"))["backing-filename"]; got != "old.qcow2" {
		t.Fatalf("backing after the cancelled rebase: %v, want old.qcow2", got)
	}
	if mapJSON(t, p("top.qcow2")) == mapBefore {
		t.Fatal("the cancelled rebase wrote nothing: the test interrupted nothing")
	}
	qemutest.RequireClean(t, "qcow2", p("top.qcow2"))
	qemutest.RequireSame(t, "qcow2", p("top.qcow2"), "raw", before)
}
