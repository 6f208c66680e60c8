package chain_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
)

// vhdNewOverlay adds new.vhd to formatChain's VHD chain: an overlay of
// base.vhd (convert -B) holding s2, s0 with other changes.
func vhdNewOverlay(t *testing.T, dir string) []byte { return newOverlay(t, dir, "vpc", "vhd") }

// newOverlay adds new.EXT (format f) to formatChain's chain, as
// vhdNewOverlay does.
func newOverlay(t *testing.T, dir, f, ext string) []byte {
	t.Helper()
	p := func(n string) string { return filepath.Join(dir, n) }
	s2 := readFile(t, p("s0.raw"))
	for i := 1<<20 + 4096; i < 1<<20+300<<10; i++ {
		s2[i] = 0x5a
	}
	if err := os.WriteFile(p("s2.raw"), s2, 0o644); err != nil {
		t.Fatal(err)
	}
	j := convert.Job{Source: p("s2.raw"), Target: p("new." + ext), Format: f, Backing: "base." + ext, BackingFormat: f,
		SourceOpen: formats.OpenOptions{Format: "raw"}}
	if err := convert.Run(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return s2
}

// TestVHDRebaseInterruptedAtEveryWrite rebases top.vhd in place (safe,
// onto new.vhd, and flattening) with its writes failing from write n on,
// for every n: the top always opens with its chain, passes vdisk's check
// and reads as s1; the link it has is the old one until the header is
// written (the last write but the footer copies).
func TestVHDRebaseInterruptedAtEveryWrite(t *testing.T) {
	for _, onto := range []string{"new.vhd", ""} {
		t.Run("onto="+onto, func(t *testing.T) {
			dir, raws := formatChain(t, "vpc", "vhd")
			p := func(n string) string { return filepath.Join(dir, n) }
			vhdNewOverlay(t, dir)
			s1 := readFile(t, raws[1])
			pristine := readFile(t, p("top.vhd"))
			rebase := func(failAt int) (int, error) {
				top, ff := openFaultyAs(t, p("top.vhd"), "vpc", failAt)
				var nb formats.Image
				if onto != "" {
					var err error
					if nb, err = formats.Open(context.Background(), p(onto), formats.OpenOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				_, err := chain.Rebase(context.Background(), top, nb, chain.RebaseOptions{Name: onto, Format: map[bool]string{true: "vpc"}[onto != ""], BackingPath: p(onto)})
				if err != nil && nb != nil {
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
			if got := readImage(t, p("top.vhd")); !bytes.Equal(got[:len(s1)], s1) {
				t.Fatal("the rebased top does not read as s1")
			}
			if got := backingName(t, p("top.vhd")); got != onto {
				t.Fatalf("backing after rebase: %q, want %q", got, onto)
			}
			for n := 0; n < total; n++ {
				if err := os.WriteFile(p("top.vhd"), pristine, 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := rebase(n); err == nil {
					t.Fatalf("write %d of %d failing: rebase succeeded", n, total)
				}
				requireVHDReads(t, p("top.vhd"), s1, n, total)
			}
		})
	}
}

// requireVHDReads requires the VHD at path to open with its chain and read
// as want after write n of total failed. vdisk's check must find nothing,
// except, between the two footer writes of a disk-type change, footer
// copies that differ; check -r all must then repair them.
func requireVHDReads(t *testing.T, path string, want []byte, n, total int) {
	t.Helper()
	ctx := context.Background()
	img, err := formats.Open(ctx, path, formats.OpenOptions{})
	if err != nil {
		t.Fatalf("write %d of %d failing: reopening: %v", n, total, err)
	}
	got := make([]byte, len(want))
	_, err = img.ReadAt(got, 0)
	if err == nil && !bytes.Equal(got, want) {
		err = errors.New("it reads differently")
	}
	if err != nil {
		img.Close()
		t.Fatalf("write %d of %d failing: the top no longer reads as before: %v", n, total, err)
	}
	r, err := img.(formats.Checker).Check(ctx, formats.CheckOptions{})
	img.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r.Corruptions == 0 {
		return
	}
	for _, m := range r.Messages {
		if !strings.Contains(m, "footer at the end of the file differs from the copy at offset 0") {
			t.Fatalf("write %d of %d failing: check: %v", n, total, r.Messages)
		}
	}
	w, err := formats.Open(ctx, path, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err = w.(formats.Checker).Check(ctx, formats.CheckOptions{RepairAll: true})
	w.Close()
	if err != nil || r.Corruptions != 0 {
		t.Fatalf("write %d of %d failing: check -r all left %+v (%v)", n, total, r, err)
	}
}

// backingName is the backing reference of the image at path, as opened.
func backingName(t *testing.T, path string) string {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	return img.(formats.Backer).BackingName()
}

// TestVHDMakeEmptyInterruptedAtEveryWrite commits top.vhd into base.vhd,
// then empties the top with its writes failing from write n on, for every
// n: the top reads as s1 throughout (its blocks, or the base's copy of
// them) and passes vdisk's check; complete, it allocates nothing.
func TestVHDMakeEmptyInterruptedAtEveryWrite(t *testing.T) {
	dir, raws := formatChain(t, "vpc", "vhd")
	p := func(n string) string { return filepath.Join(dir, n) }
	s1 := readFile(t, raws[1])
	if _, err := commitFaulty(t, "vpc", p("top.vhd"), p("base.vhd"), -1); err != nil {
		t.Fatal(err)
	}
	emptyAtEveryWrite(t, p("top.vhd"), "vpc", readFile(t, p("top.vhd")), func(n int) {
		if got := readImage(t, p("top.vhd")); !bytes.Equal(got[:len(s1)], s1) {
			t.Fatalf("MakeEmpty with write %d failing: the top no longer reads as s1", n)
		}
	})
	requireUnallocated(t, p("top.vhd"))
}
