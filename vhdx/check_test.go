package vhdx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

func fileSHA(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirtyLog(t *testing.T) {
	path, digest := qemutest.Corpus(t, "iotest-dirtylog-10G-4M.vhdx")
	before := fileSHA(t, path)

	// Read-only: replayed in memory, the file untouched, check reports it.
	img := openPath(t, path, formats.OpenOptions{})
	if len(img.entries) == 0 {
		t.Fatal("no pending log found")
	}
	if got := qemutest.BlockSHA(t, img); got != digest.SHA {
		t.Errorf("digest %s, want %s", got, digest.SHA)
	}
	rep, err := img.Check(context.Background(), formats.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CheckErrors != 1 || rep.Corruptions != 0 || rep.CorruptionsFixed != 0 {
		t.Errorf("check without repair: %+v", rep)
	}
	if _, err := img.Check(context.Background(), formats.CheckOptions{RepairAll: true}); err == nil {
		t.Error("repair through a read-only file succeeded")
	}
	img.Close()
	if fileSHA(t, path) != before {
		t.Fatal("opening and reading modified the source file")
	}

	// check -r all: replayed on disk, as qemu does it.
	ours, theirs := tempPath(t, "ours.vhdx"), tempPath(t, "theirs.vhdx")
	copyFile(t, path, ours)
	copyFile(t, path, theirs)
	img = openPath(t, ours, formats.OpenOptions{Writable: true})
	rep, err = img.Check(context.Background(), formats.CheckOptions{RepairAll: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CorruptionsFixed != 1 || rep.Corruptions != 0 || rep.CheckErrors != 0 {
		t.Errorf("check -r all: %+v", rep)
	}
	if len(img.entries) != 0 {
		t.Error("log still pending after repair")
	}
	if got := qemutest.BlockSHA(t, img); got != digest.SHA {
		t.Errorf("digest after repair %s, want %s", got, digest.SHA)
	}
	img.Close()
	if r := qemutest.Check(t, "vhdx", ours); r.Code != 0 || bytes.Contains([]byte(r.Stdout), []byte("fixed")) {
		t.Fatalf("qemu-img check after our repair: exit %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	qemutest.Img(t, "check", "-q", "-r", "all", "-f", "vhdx", theirs)
	qemutest.RequireSame(t, "vhdx", ours, "vhdx", theirs)
	a, _ := os.ReadFile(ours)
	b, _ := os.ReadFile(theirs)
	if len(a) != len(b) {
		t.Errorf("file sizes after replay: ours %d, qemu's %d", len(a), len(b))
	} else if !bytes.Equal(a[region1Offset:], b[region1Offset:]) {
		t.Error("replayed files differ outside the headers")
	}
	img = openPath(t, ours, formats.OpenOptions{})
	defer img.Close()
	if len(img.entries) != 0 {
		t.Error("reopened image still has a pending log")
	}
}

func TestCheckClean(t *testing.T) {
	path := tempPath(t, "c.vhdx")
	w := create(t, path, 16<<20, "block_size=1M")
	writeConcurrently(t, w, makePattern(16<<20, 3))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	img := openPath(t, path, formats.OpenOptions{})
	defer img.Close()
	rep, err := img.Check(context.Background(), formats.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Corruptions+rep.CheckErrors+rep.Leaks != 0 {
		t.Errorf("clean image: %+v", rep)
	}
}
