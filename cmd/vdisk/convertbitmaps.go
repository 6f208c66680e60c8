package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/qcow2"
)

// bitmapConvert are convert's bitmap flags: --bitmaps copies the source's
// persistent bitmaps into the qcow2 output (qemu-img's); --bitmap NAME
// with -B BASE writes only the ranges that bitmap marks (the changed-block
// export of backup tools; vdisk's own).
type bitmapConvert struct {
	copyAll, skipBroken bool
	export              string
}

func (b *bitmapConvert) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&b.copyAll, "bitmaps", false, "copy the persistent dirty bitmaps of a qcow2 input into the qcow2 output")
	f.BoolVar(&b.skipBroken, "skip-broken-bitmaps", false, "with --bitmaps, leave out the inconsistent (in-use) bitmaps instead of failing")
	f.StringVar(&b.export, "bitmap", "", "with -B BASE: write only the ranges this bitmap of the qcow2 input marks (an incremental export)")
}

// sourceBitmaps opens the job's source and reads its bitmaps.
func sourceBitmaps(g *globals, cmd *cobra.Command, job convert.Job) ([]*qcow2.Bitmap, int64, error) {
	open := job.SourceOpen
	open.NoBacking = true
	img, err := formats.Open(cmd.Context(), job.Source, open)
	if err != nil {
		return nil, 0, err
	}
	defer img.Close()
	q, ok := img.(*qcow2.Image)
	if !ok {
		return nil, 0, fmt.Errorf("Source lacks bitmap support")
	}
	list, err := q.ReadBitmaps()
	return list, q.Size(), err
}

// prepare checks the flags against the job and sets up --bitmap.
func (b *bitmapConvert) prepare(g *globals, cmd *cobra.Command, job *convert.Job) error {
	if b.skipBroken && !b.copyAll {
		return fmt.Errorf("--skip-broken-bitmaps requires --bitmaps")
	}
	if b.copyAll && job.Format != "qcow2" {
		return fmt.Errorf("%w: --bitmaps needs qcow2 output (-O qcow2)", formats.ErrUnsupported)
	}
	if b.export == "" {
		return nil
	}
	if job.Backing == "" {
		return fmt.Errorf("--bitmap %s needs -B BASE: the ranges it does not mark are left to the base", b.export)
	}
	list, _, err := sourceBitmaps(g, cmd, *job)
	if err != nil {
		return err
	}
	for _, bm := range list {
		if bm.Name != b.export {
			continue
		}
		if bm.InUse {
			return fmt.Errorf("Bitmap '%s' is inconsistent and cannot be used", bm.Name)
		}
		var size int64
		job.OverlayFilter = func(img formats.Image) formats.Image {
			size = img.Size()
			return chain.NewMasked(img, bm.Marked(size))
		}
		return nil
	}
	return fmt.Errorf("Dirty bitmap '%s' not found", b.export)
}

// finish copies the bitmaps into the finished output (--bitmaps).
func (b *bitmapConvert) finish(g *globals, cmd *cobra.Command, job convert.Job) error {
	if !b.copyAll {
		return nil
	}
	list, size, err := sourceBitmaps(g, cmd, job)
	if err != nil {
		return err
	}
	open := job.SourceOpen
	open.Format, open.Writable, open.NoBacking, open.Snapshot = "qcow2", true, true, ""
	img, err := formats.Open(cmd.Context(), job.Target, open)
	if err != nil {
		return err
	}
	q, ok := img.(*qcow2.Image)
	if !ok {
		img.Close()
		return fmt.Errorf("%w: --bitmaps needs qcow2 output", formats.ErrUnsupported)
	}
	for _, bm := range list {
		if bm.InUse {
			if b.skipBroken {
				continue
			}
			img.Close()
			return fmt.Errorf("Cannot copy inconsistent bitmap '%s'", bm.Name)
		}
		if err = q.AddBitmap(bm.Name, bm.Granularity, bm.Enabled); err == nil {
			err = q.MergeBitmap(bm.Name, bm, size)
		}
		if err != nil {
			img.Close()
			return fmt.Errorf("copying bitmap %s: %w", bm.Name, err)
		}
	}
	return img.Close()
}
