// Package replace rebases, commits into and empties images by writing a
// new image of the same format beside the old one and renaming it over it.
// The vdisk CLI uses it only where a driver cannot make the change in
// place: a VHDX that gains or loses its parent (rebase -b "" of a
// differencing VHDX, or a parent for a dynamic one), which changes what
// its BAT means. Every other rebase and commit is done in place (package
// chain and the drivers' formats.BackingSetter and formats.Emptier).
//
// The rename is the commit point: an interruption leaves the old image as
// it was (and a temporary file that the next run beside it removes), never
// a half-written one. The new image gets the driver's default create
// options (cluster or block size, subformat) and a new identity (VMDK CID,
// VHD unique id, VHDX DataWriteGuid): images linked to the old one by that
// identity must be relinked (Commit relinks the layer above the base; other
// children of a base that was committed into no longer read as before,
// as with qemu-img commit).
package replace

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/chain"
	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
)

// Rebase writes a new image at path in top's format that reads as top over
// newBacking (opts.Name, opts.Format; "" flattens). In safe mode it holds
// top's own clusters and, where top allocates nothing, the clusters where
// top's old chain and newBacking differ (chain.Difference with the own
// layer kept); with opts.Unsafe only top's own clusters are copied (top may
// be opened without its backing). newBacking, nil when flattening, is only
// read; the caller closes both images afterwards. open is how the new
// image opens its backing file (the driver stores the backing's identity).
func Rebase(ctx context.Context, path string, top, newBacking formats.Image, opts chain.RebaseOptions, open formats.OpenOptions) error {
	src, copyOpts := top, convert.Options{Progress: opts.Progress}
	switch {
	case opts.Unsafe:
		copyOpts.TopLayerOnly = true
	case opts.Name != "":
		if newBacking == nil {
			return fmt.Errorf("%s: safe rebase needs the new backing file %q open: %w", path, opts.Name, formats.ErrInvalidOption)
		}
		newPath, _ := open.References().Resolve(path, opts.Name)
		src = chain.NewDifference(top, newBacking, newPath, grainFor(top)).KeepOwnLayer()
		copyOpts.TopLayerOnly = true
	}
	return write(ctx, path, top.Format(), max(top.Size(), 0), opts.Name, opts.Format, open, func(dst formats.Writable) error {
		return convert.Copy(ctx, dst, src, copyOpts)
	})
}

// Empty replaces the image at path (img, of any format with backing files)
// by an empty image of its format and size with the same backing link:
// it reads as its backing file (qemu-img commit without -d).
func Empty(ctx context.Context, path string, img formats.Image, open formats.OpenOptions) error {
	b, ok := img.(formats.Backer)
	if !ok || b.BackingName() == "" {
		return formats.Unsupportedf(path, "emptying an image without a backing file")
	}
	return write(ctx, path, img.Format(), img.Size(), linkName(b), b.BackingFormat(), open, func(formats.Writable) error { return nil })
}

// Commit merges the depth layers from top down into base (the layer below
// them, at basePath, opened read-only with its own chain) by writing a
// new base: base's own clusters, then every range allocated above it, as
// top reads there (zeros as zeros). The new base keeps base's own backing
// link. The layer directly above base (above, opened at abovePath) is then
// relinked to the new base (its own clusters copied over the new base's
// identity) unless emptyTop is set and above is top, in which case top is
// replaced by an empty image over the new base. An interruption before the
// base's rename leaves everything as it was; between the renames the
// layer above refuses to open (its link names the old base's identity)
// until `rebase -u` relinks it.
func Commit(ctx context.Context, top formats.Image, topPath string, base formats.Image, basePath string,
	above formats.Image, abovePath string, opts chain.CommitOptions, open formats.OpenOptions) (chain.CommitStats, error) {
	var st chain.CommitStats
	size := max(top.Size(), base.Size())
	name, format := "", ""
	if b, ok := base.(formats.Backer); ok && b.BackingName() != "" {
		name, format = linkName(b), b.BackingFormat()
	}
	err := write(ctx, basePath, base.Format(), size, name, format, open, func(dst formats.Writable) error {
		if err := convert.Copy(ctx, dst, base, convert.Options{TopLayerOnly: name != ""}); err != nil {
			return err
		}
		var err error
		st, err = chain.Commit(ctx, top, dst, chain.CommitOptions{Depth: opts.Depth, Progress: opts.Progress})
		return err
	})
	if err != nil {
		return st, err
	}
	ab, ok := above.(formats.Backer)
	if !ok {
		return st, nil
	}
	// qcow2 names its backing file only: its link holds as it is.
	relink := above.Format() != "qcow2"
	switch {
	case opts.Empty && above == top && !relink:
		if em, ok := top.(formats.Emptier); ok {
			return st, em.MakeEmpty()
		}
		return st, Empty(ctx, topPath, top, open)
	case opts.Empty && above == top:
		return st, Empty(ctx, topPath, top, open)
	case !relink:
		return st, nil
	}
	newBase, err := formats.OpenReference(ctx, abovePath, ab.BackingName(), ab.BackingFormat(), open)
	if err != nil {
		return st, fmt.Errorf("%s: reopening the committed base to relink: %w", abovePath, err)
	}
	defer newBase.Close()
	return st, Rebase(ctx, abovePath, above, newBase, chain.RebaseOptions{Name: linkName(ab), Format: ab.BackingFormat(), Unsafe: true}, open)
}

// linkName is the backing reference to store again: the stored name, or
// for formats that store none (VDI: a UUID) the path it was found at.
func linkName(b formats.Backer) string {
	if n := b.BackingName(); n != "" && n[0] != '{' {
		return n
	}
	return b.BackingPath()
}

// write creates the new image of format at path (size bytes, backing
// name/format when name is set), lets fill write it, flushes, closes and
// renames it into place (synced), or removes it on error.
func write(ctx context.Context, path, format string, size int64, name, backingFmt string, open formats.OpenOptions,
	fill func(formats.Writable) error) error {
	drv, err := formats.Lookup(format)
	if err != nil {
		return err
	}
	opts, err := formats.ParseOptions(drv.CreateOptions, "")
	if err != nil {
		return err
	}
	if name != "" {
		if err := opts.Set("backing_file", name); err != nil {
			return fmt.Errorf("%s: %w (format %s has no backing files)", path, err, format)
		}
		if backingFmt != "" {
			if err := opts.Set("backing_fmt", backingFmt); err != nil {
				return err
			}
		}
	}
	if err := opts.Set("size", fmt.Sprint(size)); err != nil {
		return err
	}
	open.Writable, open.Snapshot, open.NoBacking = false, "", false
	dst, out, err := imagefile.CreateImage(ctx, path, drv, size, opts, open)
	if err != nil {
		return err
	}
	if err := fill(dst); err != nil {
		dst.Close()
		out.Abort()
		return err
	}
	if err := dst.Flush(); err != nil {
		dst.Close()
		out.Abort()
		return err
	}
	if err := dst.Close(); err != nil {
		out.Abort()
		return err
	}
	if err := ctx.Err(); err != nil {
		out.Abort()
		return err
	}
	return out.Commit(true)
}

// grainFor is the comparison grain for top's format: its cluster size when
// smaller than the default.
func grainFor(img formats.Image) int64 {
	if cs, ok := img.(formats.ClusterSizer); ok && cs.ClusterSize() >= formats.SectorBytes && cs.ClusterSize() < chain.DefaultGrainBytes {
		return cs.ClusterSize()
	}
	return chain.DefaultGrainBytes
}
