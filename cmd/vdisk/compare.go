package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// compare exit codes, as qemu-img's.
const (
	compareSame      = 0
	compareDiffer    = 1
	compareOpenError = 2
	compareStatusErr = 3
	compareReadError = 4
)

const compareChunk = 2 << 20

func newCompareCommand(g *globals) *cobra.Command {
	var fmt1, fmt2 string
	var strict, progress bool
	cmd := &cobra.Command{
		Use:   "compare [-f fmt] [-F fmt] [-p] [-q] [-s] filename1 filename2",
		Short: "Compare the contents of two images (exit 0 same, 1 different, 2+ error)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			imgs := make([]formats.Image, 2)
			for i, f := range []string{fmt1, fmt2} {
				img, err := g.open(cmd.Context(), args[i], f, nil)
				if err != nil {
					return exitWith(compareOpenError, err)
				}
				defer img.Close()
				imgs[i] = img
			}
			out := cmd.OutOrStdout()
			if g.quiet {
				out = io.Discard
			}
			c := comparer{a: imgs[0], b: imgs[1], strict: strict, out: out}
			return c.run()
		},
	}
	f := cmd.Flags()
	f.StringVarP(&fmt1, "format", "f", "", "first image format")
	f.StringVarP(&fmt2, "second-format", "F", "", "second image format")
	f.BoolVarP(&strict, "strict", "s", false, "strict mode: sizes and allocation must match too")
	f.BoolVarP(&progress, "progress", "p", false, "accepted for qemu-img compatibility")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

type comparer struct {
	a, b   formats.Image
	strict bool
	out    io.Writer
}

func (c *comparer) run() error {
	common := min(c.a.Size(), c.b.Size())
	if c.a.Size() != c.b.Size() {
		if c.strict {
			fmt.Fprintln(c.out, "Strict mode: Image size mismatch!")
			return exitWith(compareDiffer, nil)
		}
		fmt.Fprintln(c.out, "Warning: Image size mismatch!")
	}
	if c.strict {
		if err := c.compareStatus(common); err != nil {
			return err
		}
	}
	if err := c.compareRange(common); err != nil {
		return err
	}
	longer := c.a
	if c.b.Size() > c.a.Size() {
		longer = c.b
	}
	if err := c.checkZeroTail(longer, common); err != nil {
		return err
	}
	fmt.Fprintln(c.out, "Images are identical.")
	return nil
}

// compareRange compares [0, size) of both images, skipping ranges that both
// report as zeros.
func (c *comparer) compareRange(size int64) error {
	bufA, bufB := make([]byte, compareChunk), make([]byte, compareChunk)
	for off := int64(0); off < size; {
		n := min(size-off, compareChunk)
		za, errA := knownZero(c.a, off, n)
		zb, errB := knownZero(c.b, off, n)
		if errA != nil || errB != nil {
			return exitWith(compareStatusErr, fmt.Errorf("error checking sector allocation at offset %d: %v", off, firstErr(errA, errB)))
		}
		if !(za && zb) {
			if err := c.compareChunk(bufA[:n], bufB[:n], off); err != nil {
				return err
			}
		}
		off += n
	}
	return nil
}

func (c *comparer) compareChunk(a, b []byte, off int64) error {
	if err := readFull(c.a, a, off); err != nil {
		return err
	}
	if err := readFull(c.b, b, off); err != nil {
		return err
	}
	if bytes.Equal(a, b) {
		return nil
	}
	for i := 0; i < len(a); i += 512 {
		end := min(len(a), i+512)
		if !bytes.Equal(a[i:end], b[i:end]) {
			fmt.Fprintf(c.out, "Content mismatch at offset %d!\n", off+int64(i))
			return exitWith(compareDiffer, nil)
		}
	}
	return nil
}

// blockStatus is the part of qemu's block status that strict mode compares:
// data, zero, whether any layer allocates the range, and whether the run
// reaches the end of the image (qemu's BDRV_BLOCK_EOF is part of the value
// it compares, so two identical runs differ when only one ends the image).
type blockStatus struct {
	kind formats.ExtentKind
	eof  bool
}

// statusWalker yields the block status of an image run by run.
type statusWalker struct {
	img  formats.Image
	exts []formats.Extent
}

// at returns the status at off and how far it lasts.
func (w *statusWalker) at(off int64) (blockStatus, int64, error) {
	for len(w.exts) > 0 && w.exts[0].Offset+w.exts[0].Length <= off {
		w.exts = w.exts[1:]
	}
	if len(w.exts) == 0 {
		exts, err := formats.ChainExtents(w.img, off, min(w.img.Size()-off, 1<<30))
		if err != nil || len(exts) == 0 {
			return blockStatus{}, 0, fmt.Errorf("error checking sector allocation at offset %d: %v", off, err)
		}
		w.exts = exts
	}
	e := w.exts[0]
	end := e.Offset + e.Length
	return blockStatus{kind: e.Kind, eof: end >= w.img.Size()}, end - off, nil
}

// compareStatus is strict mode's allocation comparison: the first offset
// where the two images' block status differs is a mismatch, as qemu-img
// compare -s reports it.
func (c *comparer) compareStatus(size int64) error {
	wa, wb := &statusWalker{img: c.a}, &statusWalker{img: c.b}
	for off := int64(0); off < size; {
		sa, na, err := wa.at(off)
		if err != nil {
			return exitWith(compareStatusErr, err)
		}
		sb, nb, err := wb.at(off)
		if err != nil {
			return exitWith(compareStatusErr, err)
		}
		if sa != sb {
			fmt.Fprintf(c.out, "Strict mode: Offset %d block status mismatch!\n", off)
			return exitWith(compareDiffer, nil)
		}
		off += min(na, nb)
	}
	return nil
}

// checkZeroTail verifies that img reads as zeros from off to its end.
func (c *comparer) checkZeroTail(img formats.Image, off int64) error {
	buf := make([]byte, compareChunk)
	for off < img.Size() {
		n := min(img.Size()-off, compareChunk)
		z, err := knownZero(img, off, n)
		if err != nil {
			return exitWith(compareStatusErr, err)
		}
		if !z {
			if err := readFull(img, buf[:n], off); err != nil {
				return err
			}
			for i := 0; i < int(n); i += 512 {
				end := min(int(n), i+512)
				if !zero.Is(buf[i:end]) {
					fmt.Fprintf(c.out, "Content mismatch at offset %d!\n", off+int64(i))
					return exitWith(compareDiffer, nil)
				}
			}
		}
		off += n
	}
	return nil
}

// knownZero reports whether every extent of the range, through the chain, is
// zero or unallocated.
func knownZero(img formats.Image, off, n int64) (bool, error) {
	exts, err := formats.ChainExtents(img, off, n)
	if err != nil {
		return false, err
	}
	for _, e := range exts {
		if e.Kind == formats.Data {
			return false, nil
		}
	}
	return true, nil
}

func readFull(img formats.Image, p []byte, off int64) error {
	if n, err := img.ReadAt(p, off); n < len(p) {
		return exitWith(compareReadError, fmt.Errorf("error while reading offset %d: %v", off+int64(n), err))
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
