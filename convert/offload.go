package convert

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/offload"
)

// offloadTaskBytes is the most one copy-offload task moves: reflinks and
// in-kernel copies are cheap per byte, so tasks are far larger than a
// chunk (the planning window bounds them anyway).
const offloadTaskBytes = planWindowBytes

// offloadStepBytes is what the kernel is asked to copy at a time, between
// checks for cancellation and progress reports.
const offloadStepBytes = 64 << 20

// offloads says whether Options.CopyOffload can apply at all: both sides
// store ranges verbatim in files, and nothing needs the bytes in user
// space (a hash, salvaged reads, compression, a full write of zeros).
func (c *copier) offloads() bool {
	if !c.opts.CopyOffload || c.opts.Hash != nil || c.opts.Salvage || c.opts.Compress || c.opts.NoSparse {
		return false
	}
	_, srcOK := c.src.(formats.RawRanger)
	_, dstOK := c.dst.(formats.RawRanger)
	return srcOK && dstOK
}

// offloadable returns how many bytes from off (at most max) the kernel can
// copy in one task: both images store them verbatim in OS files. 0 means
// the range at off is copied the ordinary way.
func (c *copier) offloadable(off, max int64) int64 {
	src, _, srcN := c.src.(formats.RawRanger).RawRange(off)
	dst, _, dstN := c.dst.(formats.RawRanger).RawRange(off)
	if srcN <= 0 || dstN <= 0 || !isOSFile(src) || !isOSFile(dst) {
		return 0
	}
	return min(max, srcN, dstN, offloadTaskBytes)
}

func isOSFile(f formats.File) bool {
	o, ok := f.(formats.OSFiler)
	return ok && o.OSFile() != nil
}

// processOffload copies an offload task in the kernel; whatever the kernel
// declines (another file system, no support, the source's end) is copied
// through user space here, chunk by chunk through buf, written as it is
// read: the ranges are stored verbatim, so the order of writes changes no
// layout.
func (c *copier) processOffload(ctx context.Context, t *task, buf []byte) *result {
	res := &result{}
	done, err := c.kernelCopy(ctx, t.off, t.length, res)
	if err != nil {
		res.err = err
		return res
	}
	for off := t.off + done; off < t.off+t.length; {
		n := min(t.off+t.length-off, c.chunkBytes-off%c.chunkBytes)
		if err := c.copyThrough(buf[:n], off); err != nil {
			res.err = err
			return res
		}
		c.progress.add(n)
		res.reported += n
		off += n
	}
	return res
}

// kernelCopy offloads [off, off+length) (which both sides store verbatim)
// and returns the prefix the kernel copied, counting progress in res.
func (c *copier) kernelCopy(ctx context.Context, off, length int64, res *result) (int64, error) {
	src, srcOff, _ := c.src.(formats.RawRanger).RawRange(off)
	dst, dstOff, _ := c.dst.(formats.RawRanger).RawRange(off)
	if c.writeMu != nil {
		c.writeMu.Lock() // the target does not take concurrent writes
		defer c.writeMu.Unlock()
	}
	var done int64
	for done < length {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		step := min(length-done, offloadStepBytes)
		c.kernelMu.Lock()
		n, err := offload.Copy(dst.(formats.OSFiler).OSFile(), dstOff+done, src.(formats.OSFiler).OSFile(), srcOff+done, step)
		c.kernelMu.Unlock()
		done += n
		c.progress.add(n)
		res.reported += n
		if err != nil {
			return done, fmt.Errorf("writing output at offset %d: %w", off+done, err)
		}
		if n < step {
			return done, nil // declined from here on
		}
	}
	return done, nil
}

// copyThrough copies one chunk (len(buf) bytes at off) the ordinary way:
// read, zero runs split off, written at once.
func (c *copier) copyThrough(buf []byte, off int64) error {
	if err := c.read(buf, off); err != nil {
		return err
	}
	for _, o := range c.splitZeros(off, buf) {
		if err := c.write(o); err != nil {
			return err
		}
	}
	return nil
}

// cloneWhole reflinks the whole disk in a few calls when both images
// store all of it verbatim (raw to raw): holes and extents alike, with no
// extent walk. It reports false when the kernel declines; the ordinary
// plan (which offloads extent by extent) then runs and rewrites whatever
// a failed clone left behind.
func (c *copier) cloneWhole(ctx context.Context) (bool, error) {
	size := c.src.Size()
	if !c.offload || c.opts.TopLayerOnly || size == 0 || c.offloadable(0, size) != size {
		return false, nil
	}
	src, srcOff, _ := c.src.(formats.RawRanger).RawRange(0)
	dst, dstOff, _ := c.dst.(formats.RawRanger).RawRange(0)
	if err := ctx.Err(); err != nil {
		return false, err
	}
	ok, err := offload.CloneAll(dst.(formats.OSFiler).OSFile(), dstOff, src.(formats.OSFiler).OSFile(), srcOff, size)
	if err != nil {
		return false, fmt.Errorf("writing output: %w", err)
	}
	if ok {
		c.progress.add(size)
	}
	return ok, nil
}
