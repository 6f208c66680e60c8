package chain_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/formats"
)

// commitFaulty commits top (opened with VDI parents, if any) into base, a
// format image whose writes fail from write failAt on (never when < 0):
// it returns the base's write calls and the commit's (or the base's
// Close's) error.
func commitFaulty(t *testing.T, format, top, base string, failAt int, parents ...string) (int, error) {
	t.Helper()
	ctx := context.Background()
	img, err := formats.Open(ctx, top, formats.OpenOptions{Parents: parents})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	b, ff := openFaultyAs(t, base, format, failAt)
	_, err = chain.Commit(ctx, img, b, chain.CommitOptions{Depth: 1})
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return ff.Calls(), err
}

// emptyAtEveryWrite empties path (format, VDI parents if any) with its
// writes failing from write n on, for n = 0, 1, ... until MakeEmpty
// succeeds, from the bytes pristine each time; check(n) judges what each
// run left. MakeEmpty may succeed only once no write failed.
func emptyAtEveryWrite(t *testing.T, path, format string, pristine []byte, check func(n int), parents ...string) {
	t.Helper()
	for n := 0; ; n++ {
		if err := os.WriteFile(path, pristine, 0o644); err != nil {
			t.Fatal(err)
		}
		img, ff := openFaultyAs(t, path, format, n, parents...)
		err := img.(formats.Emptier).MakeEmpty()
		img.Close()
		check(n)
		if err == nil {
			if ff.Calls() > n {
				t.Fatalf("MakeEmpty succeeded although write %d failed", n)
			}
			return
		}
	}
}

// requireUnallocated fails unless the image at path allocates nothing.
func requireUnallocated(t *testing.T, path string) {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exts {
		if e.Kind != formats.Unallocated {
			t.Fatalf("the emptied top still allocates %+v", e)
		}
	}
}

// requireOldOrNew fails unless every unit (unitBytes long, named unit) of
// got's first len(old) bytes reads as that unit of old or of new: what a
// commit interrupted at write n may leave in the base, unit by unit.
func requireOldOrNew(t *testing.T, got, old, new []byte, unitBytes int, unit string, n int) {
	t.Helper()
	if len(got) < len(old) || len(new) < len(old) {
		t.Fatalf("write %d failing: the base reads %d bytes, before %d, the top %d", n, len(got), len(old), len(new))
	}
	for off := 0; off < len(old); off += unitBytes {
		end := min(off+unitBytes, len(old))
		if b := got[off:end]; !bytes.Equal(b, old[off:end]) && !bytes.Equal(b, new[off:end]) {
			t.Fatalf("write %d failing: %s at %d of the base reads neither as before nor as the top", n, unit, off)
		}
	}
}

// relink points top.EXT at base.EXT again (rebase -u to the same file):
// a commit's first write gave the base a new identity (VHDX DataWriteGuid,
// VMDK CID), which the top's link no longer matches.
func relink(t *testing.T, dir, ext, format string) {
	t.Helper()
	ctx := context.Background()
	top, err := formats.Open(ctx, filepath.Join(dir, "top."+ext), formats.OpenOptions{Writable: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	base, err := formats.Open(ctx, filepath.Join(dir, "base."+ext), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := top.(formats.BackingSetter).SetBacking("base."+ext, format, base); err != nil {
		t.Fatal(err)
	}
	if err := top.Close(); err != nil {
		t.Fatal(err)
	}
}

// requireRefusedThenRelink requires top.EXT to refuse to open over
// base.EXT, whose identity (named identity) a commit interrupted at write
// n changed, and then relinks it.
func requireRefusedThenRelink(t *testing.T, dir, ext, format, identity string, n int) {
	t.Helper()
	if img, err := formats.Open(context.Background(), filepath.Join(dir, "top."+ext), formats.OpenOptions{}); err == nil {
		img.Close()
		t.Fatalf("write %d failing: the top opens over a base with a new %s", n, identity)
	}
	relink(t, dir, ext, format)
}
