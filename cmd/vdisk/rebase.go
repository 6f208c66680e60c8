package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/chain/replace"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
)

func newRebaseCommand(g *globals) *cobra.Command {
	var format, backing, backingFmt string
	var unsafe, progress bool
	cmd := &cobra.Command{
		Use:   "rebase [-f fmt] [-u] [-p] [-q] -b backing_file [-F backing_fmt] filename",
		Short: "Change the backing file of an image (-b \"\" makes it standalone)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("backing") && !unsafe {
				return errors.New("Must specify backing file (-b) or use unsafe mode (-u)")
			}
			if backing != "" && backingFmt == "" {
				return fmt.Errorf("Could not change the backing file to '%s': backing format must be specified", backing)
			}
			ctx := cmd.Context()
			inPlace, err := g.relinksInPlace(ctx, args[0], format, backing)
			if err != nil {
				return err
			}
			if !inPlace {
				return g.rebaseByRewrite(cmd, args[0], format, backing, backingFmt, unsafe, progress)
			}
			img, err := g.openAs(ctx, args[0], format, imagefile.LockWrite, func(o *formats.OpenOptions) {
				o.Writable, o.NoBacking = true, unsafe
			})
			if err != nil {
				return err
			}
			closed := false
			defer func() {
				if !closed {
					img.Close()
				}
			}()
			w, ok := img.(formats.Writable)
			if _, canSet := img.(formats.BackingSetter); !ok || !canSet {
				return fmt.Errorf("Could not change the backing file to '%s': Operation not supported", backing)
			}
			var nb formats.Image
			if backing != "" {
				opts, err := g.openOptions(backingFmt, backing)
				if err != nil {
					return err
				}
				// -u needs no data, but VDI, VHD and VMDK store the new
				// parent's identity (UUIDs, unique id, CID): it is opened
				// too, and may be missing for qcow2.
				if nb, err = formats.OpenReference(ctx, args[0], backing, backingFmt, opts); err != nil && (!unsafe || img.Format() != "qcow2") {
					return fmt.Errorf("Could not open new backing file '%s': %w", backing, err)
				}
			}
			ro := chain.RebaseOptions{Name: backing, Format: backingFmt, Unsafe: unsafe}
			if backing != "" {
				opts, err := g.openOptions(backingFmt, backing)
				if err != nil {
					return err
				}
				ro.BackingPath, _ = opts.References().Resolve(args[0], backing)
			}
			var bar *progressBar
			if progress && !g.quiet {
				bar = newProgressBar(cmd.OutOrStdout())
				ro.Progress = bar.update
			}
			if _, err := chain.Rebase(ctx, w, nb, ro); err != nil {
				if nb != nil {
					nb.Close()
				}
				return fmt.Errorf("Could not change the backing file to '%s': %w", backing, err)
			}
			if bar != nil {
				bar.finish()
			}
			closed = true
			return img.Close()
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.StringVarP(&backing, "backing", "b", "", "new backing file (\"\" flattens the image)")
	f.StringVarP(&backingFmt, "backing-format", "F", "", "format of the new backing file")
	f.BoolVarP(&unsafe, "unsafe", "u", false, "change only the link, not the content")
	f.BoolVarP(&progress, "progress", "p", false, "show progress")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

// relinksInPlace reports whether the image's driver rewrites its backing
// link in place (formats.BackingSetter: qcow2, vdi, vmdk, vpc, and vhdx
// between parents); a VHDX that gains or loses its parent is rebased by
// writing a new image (package chain/replace): that changes what its BAT
// means.
func (g *globals) relinksInPlace(ctx context.Context, path, format, backing string) (bool, error) {
	opts, err := g.openOptions(format)
	if err != nil {
		return false, err
	}
	opts.NoBacking = true // no locks taken: the real open below takes them
	img, err := formats.Open(ctx, path, opts)
	if err != nil {
		return false, couldNotOpen(path, err)
	}
	defer img.Close()
	_, ok := img.(formats.BackingSetter)
	if b, isB := img.(formats.Backer); ok && isB && img.Format() == "vhdx" && (backing == "" || b.BackingName() == "") {
		return false, nil
	}
	if !ok {
		if _, has := img.(formats.Backer); !has {
			return false, fmt.Errorf("Could not change the backing file of '%s': format %s has no backing files: Operation not supported", path, img.Format())
		}
	}
	return ok, nil
}

// rebaseByRewrite rebases an image whose format cannot be relinked in
// place: a new image over the new backing replaces it (chain/replace).
func (g *globals) rebaseByRewrite(cmd *cobra.Command, path, format, backing, backingFmt string, unsafe, progress bool) error {
	ctx := cmd.Context()
	img, err := g.openAs(ctx, path, format, imagefile.LockWrite, func(o *formats.OpenOptions) { o.NoBacking = unsafe })
	if err != nil {
		return err
	}
	defer img.Close()
	opts, err := g.openOptions(backingFmt, backing)
	if err != nil {
		return err
	}
	var nb formats.Image
	if backing != "" && !unsafe {
		if nb, err = formats.OpenReference(ctx, path, backing, backingFmt, opts); err != nil {
			return fmt.Errorf("Could not open new backing file '%s': %w", backing, err)
		}
		defer nb.Close()
	}
	ro := chain.RebaseOptions{Name: backing, Format: backingFmt, Unsafe: unsafe}
	var bar *progressBar
	if progress && !g.quiet {
		bar = newProgressBar(cmd.OutOrStdout())
		ro.Progress = bar.update
	}
	if err := replace.Rebase(ctx, path, img, nb, ro, opts); err != nil {
		return fmt.Errorf("Could not change the backing file to '%s': %w", backing, err)
	}
	if bar != nil {
		bar.finish()
	}
	return nil
}
