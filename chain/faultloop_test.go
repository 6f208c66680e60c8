package chain_test

import (
	"context"
	"os"
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
