package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/chain/replace"
	"github.com/vdiskio/vdisk/formats"
)

func newCommitCommand(g *globals) *cobra.Command {
	var format, base string
	var keep, progress bool
	cmd := &cobra.Command{
		Use:   "commit [-f fmt] [-b base] [-d] [-p] [-q] filename",
		Short: "Merge an image into its backing file (or into BASE down the chain)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			empty := !keep && base == "" // -b implies -d, as in qemu-img
			// Locks: the top (a writer's when it is emptied) and the base (a
			// writer's); the chain's own read locks would exclude the base's.
			topOpts, err := g.openOptions(format)
			if err != nil {
				return err
			}
			topOpts.Writable = empty
			top, err := formats.Open(ctx, args[0], topOpts)
			if empty && (errors.Is(err, formats.ErrUnsupported) || errors.Is(err, formats.ErrReadOnly)) {
				// vmdk: emptied by replacing it, so it is read here.
				topOpts.Writable = false
				top, err = formats.Open(ctx, args[0], topOpts)
			}
			if err != nil {
				return couldNotOpen(args[0], err)
			}
			defer top.Close()
			if empty {
				if err := g.locks.LockPath(args[0], top.Format()); err != nil {
					return couldNotOpen(args[0], err)
				}
			}
			basePath, baseFmt, depth, err := findBase(top, args[0], base)
			if err != nil {
				return err
			}
			baseOpts, err := g.openOptions(baseFmt)
			if err != nil {
				return err
			}
			baseOpts.Writable = true // with its backing: zeros over it must be recorded as zeros
			bimg, err := formats.Open(ctx, basePath, baseOpts)
			if errors.Is(err, formats.ErrUnsupported) || errors.Is(err, formats.ErrReadOnly) {
				return g.commitByRewrite(cmd, top, args[0], basePath, depth, empty, progress)
			}
			if err != nil {
				return couldNotOpen(basePath, err)
			}
			if _, ok := bimg.(formats.Writable); !ok {
				bimg.Close()
				return g.commitByRewrite(cmd, top, args[0], basePath, depth, empty, progress)
			}
			if err := g.locks.LockPath(basePath, bimg.Format()); err != nil {
				bimg.Close()
				return couldNotOpen(basePath, err)
			}
			bw, ok := bimg.(formats.Writable)
			if !ok {
				bimg.Close()
				return fmt.Errorf("%s: %w", basePath, formats.ErrReadOnly)
			}
			_, emptier := top.(formats.Emptier)
			opts := chain.CommitOptions{Depth: depth, Empty: empty && emptier}
			var bar *progressBar
			if progress && !g.quiet {
				bar = newProgressBar(cmd.OutOrStdout())
				opts.Progress = bar.update
			}
			_, err = chain.Commit(ctx, top, bw, opts)
			if cerr := bimg.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := g.relinkAbove(cmd, top, args[0], depth); err != nil {
				return err
			}
			if empty && !emptier {
				// vmdk, vpc, vhdx: an empty image with the same link
				// replaces the top.
				if err := replace.Empty(ctx, args[0], top, topOpts); err != nil {
					return err
				}
			}
			if bar != nil {
				bar.finish()
			}
			if !g.quiet {
				fmt.Fprintln(cmd.OutOrStdout(), "Image committed.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.StringVarP(&base, "base", "b", "", "commit into this image of the backing chain (implies -d)")
	f.BoolVarP(&keep, "drop", "d", false, "do not empty the image after the commit")
	f.BoolVarP(&progress, "progress", "p", false, "show progress")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

// findBase walks top's backing chain to the layer named base (its direct
// backing when base is ""): its path, format and how many layers lie above
// it. base is matched as a file, as given or relative to top's directory.
func findBase(top formats.Image, topPath, base string) (string, string, int, error) {
	var want os.FileInfo
	if base != "" {
		fi, err := os.Stat(base)
		if err != nil && !filepath.IsAbs(base) {
			fi, err = os.Stat(filepath.Join(filepath.Dir(topPath), base))
		}
		if err != nil {
			return "", "", 0, fmt.Errorf("Did not find '%s' in the backing chain of '%s'", base, topPath)
		}
		want = fi
	}
	layer := top
	for depth := 1; ; depth++ {
		b, ok := layer.(formats.Backer)
		if !ok || b.Backing() == nil {
			if depth == 1 {
				return "", "", 0, errors.New("Image does not have a backing file")
			}
			return "", "", 0, fmt.Errorf("Did not find '%s' in the backing chain of '%s'", base, topPath)
		}
		path := b.BackingPath()
		if want == nil {
			return path, b.Backing().Format(), depth, nil
		}
		if fi, err := os.Stat(path); err == nil && os.SameFile(fi, want) {
			return path, b.Backing().Format(), depth, nil
		}
		layer = b.Backing()
	}
}

// commitByRewrite commits into a base whose driver cannot write an
// existing image (vmdk, vhdx): a new base replaces it, then the layer
// above it is relinked to it, or emptied when it is the top (chain/replace).
func (g *globals) commitByRewrite(cmd *cobra.Command, top formats.Image, topPath, basePath string, depth int, empty, progress bool) error {
	ctx := cmd.Context()
	above, abovePath := top, topPath
	for range depth - 1 {
		b := above.(formats.Backer) // findBase walked these layers
		above, abovePath = b.Backing(), b.BackingPath()
	}
	base := above.(formats.Backer).Backing()
	if err := g.locks.LockPath(basePath, base.Format()); err != nil {
		return couldNotOpen(basePath, err)
	}
	open, err := g.openOptions("")
	if err != nil {
		return err
	}
	opts := chain.CommitOptions{Depth: depth, Empty: empty}
	var bar *progressBar
	if progress && !g.quiet {
		bar = newProgressBar(cmd.OutOrStdout())
		opts.Progress = bar.update
	}
	if _, err := replace.Commit(ctx, top, topPath, base, basePath, above, abovePath, opts, open); err != nil {
		return err
	}
	if bar != nil {
		bar.finish()
	}
	if !g.quiet {
		fmt.Fprintln(cmd.OutOrStdout(), "Image committed.")
	}
	return nil
}

// relinkAbove points the layer directly above the committed base at it
// again where the link pins the base's content (VMDK: parentCID, VHDX:
// parent_linkage, which the commit's first write changed: the CID, the
// DataWriteGuid): through top itself when it is that layer
// and open writable, else through a writable handle of that layer opened
// without its chain. Between the base's new CID and this, that layer
// refuses to open (its link names the old identity); `rebase -u` relinks
// it.
func (g *globals) relinkAbove(cmd *cobra.Command, top formats.Image, topPath string, depth int) error {
	ctx := cmd.Context()
	above, abovePath := top, topPath
	for range depth - 1 {
		b := above.(formats.Backer) // findBase walked these layers
		above, abovePath = b.Backing(), b.BackingPath()
	}
	ab, ok := above.(formats.Backer)
	if !ok || above.Format() != "vmdk" && above.Format() != "vhdx" || ab.BackingName() == "" {
		return nil
	}
	name, format := ab.BackingName(), ab.BackingFormat()
	open, err := g.openOptions(format, name)
	if err != nil {
		return err
	}
	nb, err := formats.OpenReference(ctx, abovePath, name, format, open)
	if err != nil {
		return fmt.Errorf("%s: reopening the committed base to relink: %w", abovePath, err)
	}
	if s, ok := above.(formats.BackingSetter); ok && above == top {
		if err := s.SetBacking(name, format, nb); err == nil {
			return nil
		} else if !errors.Is(err, formats.ErrReadOnly) {
			nb.Close()
			return err
		}
	}
	aopts, err := g.openOptions(above.Format())
	if err != nil {
		nb.Close()
		return err
	}
	aopts.Writable, aopts.NoBacking = true, true
	img, err := formats.Open(ctx, abovePath, aopts)
	if err != nil {
		nb.Close()
		return couldNotOpen(abovePath, err)
	}
	s, ok := img.(formats.BackingSetter)
	if !ok {
		nb.Close()
		img.Close()
		return fmt.Errorf("%s: relinking after commit: %w", abovePath, formats.ErrUnsupported)
	}
	if err := s.SetBacking(name, format, nb); err != nil {
		nb.Close()
		img.Close()
		return err
	}
	return img.Close()
}
