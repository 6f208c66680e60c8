package chain_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/faultfile"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/vdi"
	_ "github.com/vdiskio/vdisk/vhd"
)

// vdiChain makes base.vdi (s0) and top.vdi over it (convert -B of s1),
// 4 MiB, with qemu-io writing the raw states: top changes data in two
// blocks, zeros a third in part and writes a fourth that base leaves free.
func vdiChain(t *testing.T) (dir string, raws [2]string) { return formatChain(t, "vdi", "vdi") }

// formatChain makes base.EXT and top.EXT (format f) as vdiChain does.
func formatChain(t *testing.T, f, ext string) (dir string, raws [2]string) {
	t.Helper()
	dir = t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "raw", p("s0.raw"), "4M")
	qemutest.IO(t, "raw", p("s0.raw"), "write -P 0x11 0 2M", "write -P 0x12 2560k 512k")
	copyFile(t, p("s0.raw"), p("s1.raw"))
	qemutest.IO(t, "raw", p("s1.raw"), "write -P 0x21 512k 64k", "write -P 0x22 1M 128k", "write -z 2600k 64k", "write -P 0x23 3584k 4k")
	ctx := context.Background()
	for _, j := range []convert.Job{
		{Source: p("s0.raw"), Target: p("base." + ext), Format: f},
		{Source: p("s1.raw"), Target: p("top." + ext), Format: f, Backing: "base." + ext, BackingFormat: f},
	} {
		j.SourceOpen = formats.OpenOptions{Format: "raw"}
		if err := convert.Run(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	return dir, [2]string{p("s0.raw"), p("s1.raw")}
}

// readImage reads the whole image at path (VDI parents from parents).
func readImage(t *testing.T, path string, parents ...string) []byte {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Parents: parents})
	if err != nil {
		t.Fatalf("reopening %s: %v", path, err)
	}
	defer img.Close()
	buf := make([]byte, img.Size())
	if _, err := img.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if c, ok := img.(formats.Checker); ok {
		r, err := c.Check(context.Background(), formats.CheckOptions{})
		if err != nil {
			t.Fatalf("check %s: %v", path, err)
		}
		// An interruption between the header and the block map leaves
		// counted blocks no entry uses (leaks): no corruption.
		if r.Corruptions > 0 {
			t.Fatalf("check %s: %+v", path, r)
		}
	}
	return buf
}

// openFaulty opens path writable over a file whose write number failAt
// and later fail.
func openFaulty(t *testing.T, path string, failAt int, parents ...string) (formats.Writable, *faultfile.Writes) {
	return openFaultyAs(t, path, "vdi", failAt, parents...)
}

func openFaultyAs(t *testing.T, path, format string, failAt int, parents ...string) (formats.Writable, *faultfile.Writes) {
	t.Helper()
	f, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	ff := faultfile.FailWrites(f, failAt)
	img, err := formats.OpenFile(context.Background(), ff, formats.OpenOptions{Writable: true, Format: format, Parents: parents})
	if err != nil {
		t.Fatal(err)
	}
	return img.(formats.Writable), ff
}

// TestVDICommitInterruptedAtEveryWrite commits top.vdi into base.vdi with
// the base's writes failing from write n on, for every n: the base passes
// its check and every 1 MiB block of it reads as before or as the top
// (never a mix within a block written whole, nor garbage); the top still
// reads as s1. Then the complete commit empties the top (interrupted at
// every write of MakeEmpty too: the top reads as s1 throughout, as the
// base already holds its data).
func TestVDICommitInterruptedAtEveryWrite(t *testing.T) {
	dir, raws := vdiChain(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	s0, s1 := readFile(t, raws[0]), readFile(t, raws[1])
	pristineBase, pristineTop := readFile(t, p("base.vdi")), readFile(t, p("top.vdi"))
	commit := func(failAt int) (int, error) {
		return commitFaulty(t, "vdi", p("top.vdi"), p("base.vdi"), failAt, p("base.vdi"))
	}
	total, err := commit(-1)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImage(t, p("base.vdi")); !bytes.Equal(got, s1) {
		t.Fatal("the committed base does not read as the top")
	}
	for n := 0; n < total; n++ {
		os.WriteFile(p("base.vdi"), pristineBase, 0o644)
		if _, err := commit(n); !errors.Is(err, syscall.EIO) {
			t.Fatalf("write %d of %d failing: commit returned %v", n, total, err)
		}
		requireOldOrNew(t, readImage(t, p("base.vdi")), s0, s1, 1<<20, "block", n)
		if !bytes.Equal(readImage(t, p("top.vdi"), p("base.vdi")), s1) {
			t.Fatalf("write %d failing: the top no longer reads as before", n)
		}
	}
	// Emptying after a complete commit, interrupted at every write.
	os.WriteFile(p("base.vdi"), pristineBase, 0o644)
	if _, err := commit(-1); err != nil {
		t.Fatal(err)
	}
	emptyAtEveryWrite(t, p("top.vdi"), "vdi", pristineTop, func(n int) {
		if !bytes.Equal(readImage(t, p("top.vdi"), p("base.vdi")), s1) {
			t.Fatalf("MakeEmpty with write %d failing: the top no longer reads as s1", n)
		}
	}, p("base.vdi"))
}

// TestVDIRebaseInterruptedAtEveryWrite flattens top.vdi (safe rebase onto
// nothing) with its writes failing from write n on, for every n: the top
// keeps its link to base.vdi (the header is written last) and reads as s1.
func TestVDIRebaseInterruptedAtEveryWrite(t *testing.T) {
	dir, raws := vdiChain(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	s1 := readFile(t, raws[1])
	pristine := readFile(t, p("top.vdi"))
	rebase := func(failAt int) (int, error) {
		top, ff := openFaulty(t, p("top.vdi"), failAt, p("base.vdi"))
		_, err := chain.Rebase(context.Background(), top, nil, chain.RebaseOptions{})
		if cerr := top.Close(); err == nil {
			err = cerr
		}
		return ff.Calls(), err
	}
	total, err := rebase(-1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readImage(t, p("top.vdi")), s1) {
		t.Fatal("the flattened top does not read as s1")
	}
	for n := 0; n < total; n++ {
		os.WriteFile(p("top.vdi"), pristine, 0o644)
		if _, err := rebase(n); err == nil {
			t.Fatalf("write %d of %d failing: rebase succeeded", n, total)
		}
		img, err := formats.Open(context.Background(), p("top.vdi"), formats.OpenOptions{Parents: []string{p("base.vdi")}})
		if err != nil {
			t.Fatalf("write %d failing: reopening: %v", n, err)
		}
		linked := img.(formats.Backer).Backing() != nil
		img.Close()
		if !linked && n < total-1 {
			t.Fatalf("write %d of %d failing: the link was dropped before the last write", n, total)
		}
		if !bytes.Equal(readImage(t, p("top.vdi"), p("base.vdi")), s1) {
			t.Fatalf("write %d failing: the top no longer reads as s1", n)
		}
	}
}

// TestVHDCommitInterruptedAtEveryWrite commits top.vhd into base.vhd (a
// dynamic VHD written in place) with the base's writes failing from write
// n on, for every n: the base opens, passes its check, and every sector
// reads as before or as the top; the top still reads as s1.
func TestVHDCommitInterruptedAtEveryWrite(t *testing.T) {
	dir, raws := formatChain(t, "vpc", "vhd")
	p := func(n string) string { return filepath.Join(dir, n) }
	s0, s1 := readFile(t, raws[0]), readFile(t, raws[1])
	pristine := readFile(t, p("base.vhd"))
	commit := func(failAt int) (int, error) {
		return commitFaulty(t, "vpc", p("top.vhd"), p("base.vhd"), failAt)
	}
	total, err := commit(-1)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImage(t, p("base.vhd")); !bytes.Equal(got[:len(s1)], s1) {
		t.Fatal("the committed base does not read as the top")
	}
	for n := 0; n < total; n++ {
		os.WriteFile(p("base.vhd"), pristine, 0o644)
		if _, err := commit(n); err == nil {
			t.Fatalf("write %d of %d failing: commit succeeded", n, total)
		}
		requireOldOrNew(t, readImage(t, p("base.vhd")), s0, s1, 512, "sector", n)
		if !bytes.Equal(readImage(t, p("top.vhd"))[:len(s1)], s1) {
			t.Fatalf("write %d failing: the top no longer reads as before", n)
		}
	}
}
