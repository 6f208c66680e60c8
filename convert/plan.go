package convert

import (
	"context"
	"fmt"
	"sort"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// plan walks the source's extents in windows and emits tasks in offset
// order: data ranges (rounded out to the grain, cut on the chunk grid) and
// the zero ranges between them that must be written.
func (c *copier) plan(ctx context.Context, emit func(*task) error) error {
	size := c.src.Size()
	if c.opts.NoSparse {
		return c.emitData(0, size, emit)
	}
	for start := int64(0); start < size; start += planWindowBytes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if end, ok := streamEnd(c.src); ok && start >= end {
			return nil // a stream read to its end: the rest is the provisional size's
		}
		window := min(planWindowBytes, size-start)
		exts, err := c.extents(start, window)
		if err != nil && c.opts.Salvage {
			exts = imageio.AllData(start, window) // read it all; the reads salvage what they can
		} else if err != nil {
			return fmt.Errorf("reading allocation of input at offset %d: %w", start, err)
		}
		if err := c.planWindow(start, start+window, exts, emit); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) extents(off, length int64) ([]formats.Extent, error) {
	if c.opts.TopLayerOnly {
		return c.src.Extents(off, length)
	}
	return formats.ChainExtents(c.src, off, length)
}

// planWindow emits the tasks of [start, end) (grain aligned except at the
// image's end). Data extents are widened to whole grains; what lies between
// them is a gap made of zero and unallocated extents.
func (c *copier) planWindow(start, end int64, exts []formats.Extent, emit func(*task) error) error {
	pos := start // everything before pos has been emitted
	for i := 0; i < len(exts); i++ {
		e := exts[i]
		if e.Kind != formats.Data || e.End() <= pos {
			continue
		}
		dataStart := max(pos, e.Offset/c.grainBytes*c.grainBytes)
		dataEnd := min(end, alignUp(e.End(), c.grainBytes))
		// Swallow following data extents that touch the widened range.
		for i+1 < len(exts) && exts[i+1].Offset <= dataEnd {
			if exts[i+1].Kind == formats.Data {
				dataEnd = min(end, max(dataEnd, alignUp(exts[i+1].End(), c.grainBytes)))
			}
			i++
		}
		if err := c.emitGap(pos, dataStart, exts, emit); err != nil {
			return err
		}
		if err := c.emitData(dataStart, dataEnd, emit); err != nil {
			return err
		}
		pos = dataEnd
	}
	return c.emitGap(pos, end, exts, emit)
}

// emitData cuts [start, end) on the chunk grid, or, with copy offload,
// into ranges the kernel copies.
func (c *copier) emitData(start, end int64, emit func(*task) error) error {
	for off := start; off < end; {
		if streamEnd, ok := streamEnd(c.src); ok && off >= streamEnd {
			return nil
		}
		if c.offload {
			if n := c.offloadable(off, end-off); n > 0 {
				if err := emit(&task{off: off, length: n, data: true, offload: true}); err != nil {
					return err
				}
				off += n
				continue
			}
		}
		next := min(end, alignUp(off+1, c.chunkBytes))
		if err := emit(&task{off: off, length: next - off, data: true}); err != nil {
			return err
		}
		off = next
	}
	return nil
}

// emitGap emits the parts of [start, end) that must be written as zeros:
// all of it when the target does not read as zeros, only the source's Zero
// extents in top-layer mode (they hide the backing file), else nothing (but
// progress still counts it).
func (c *copier) emitGap(start, end int64, exts []formats.Extent, emit func(*task) error) error {
	if start >= end {
		return nil
	}
	if !c.opts.TopLayerOnly {
		if c.opts.TargetIsZero {
			c.progress.add(end - start)
			return nil
		}
		return c.emitZeros(start, end, emit)
	}
	// exts is sorted: start at the first extent reaching past start, so a
	// window with many gaps is walked once, not once per gap.
	first := sort.Search(len(exts), func(i int) bool { return exts[i].End() > start })
	for _, e := range exts[first:] {
		if e.Offset >= end {
			break
		}
		lo, hi := max(start, e.Offset), min(end, e.End())
		if e.Kind == formats.Zero {
			if err := c.emitZeros(lo, hi, emit); err != nil {
				return err
			}
		} else {
			c.progress.add(hi - lo)
		}
	}
	return nil
}

func (c *copier) emitZeros(start, end int64, emit func(*task) error) error {
	for off := start; off < end; {
		next := min(end, off+planWindowBytes)
		if err := emit(&task{off: off, length: next - off}); err != nil {
			return err
		}
		off = next
	}
	return nil
}
