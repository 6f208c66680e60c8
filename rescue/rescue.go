package rescue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Options tune a rescue. The zero value means ddrescue's defaults.
type Options struct {
	// SectorBytes is the unit of trimming, scraping and retrying (default
	// 512); a device's logical sector size.
	SectorBytes int64
	// ClusterBytes is the read size of the copy phase (default 64 KiB,
	// ddrescue's 128 sectors).
	ClusterBytes int64
	// Retries is the number of retry passes over bad sectors (-r).
	Retries int
	// Reverse runs the copy phase's first pass from the end backwards.
	Reverse bool
	// NoSkip disables skipping ahead after a read error in the first pass.
	NoSkip bool
	// Fill, when set, is written over what stays unreadable (default: the
	// output keeps zeros there).
	Fill *byte
	// SaveBytes is how much progress is made between two saves of the map
	// (default 64 MiB); the map is also saved at the end of every phase,
	// when interrupted and when done.
	SaveBytes int64
	// Save persists the map (a mapfile). It is called after the output is
	// flushed, so the map never claims more than the output holds.
	Save func(*Map) error
	// Progress, when set, is called after each read with the map.
	Progress func(*Map)
}

const (
	defaultSectorBytes  = 512
	defaultClusterBytes = 64 << 10
	defaultSaveBytes    = 64 << 20
	maxSkipBytes        = 1 << 30
)

// rescuer is the state of one Run.
type rescuer struct {
	src     io.ReaderAt
	dst     formats.Writable
	m       *Map
	opts    Options
	buf     []byte // one cluster, aligned for O_DIRECT
	unsaved int64  // bytes of progress since the last save
}

// Run rescues src (m.Size bytes, read only) into dst, working on what m
// says is left: a new map (NewMap) starts from scratch, a loaded one
// resumes. m is updated as the rescue goes. dst must read as zeros where m
// is non-tried (a new image, or the one an earlier run wrote). Run returns
// ctx.Err() when interrupted (after saving the map); unreadable sectors are
// not an error: see m.Bad.
func Run(ctx context.Context, src io.ReaderAt, dst formats.Writable, m *Map, opts Options) error {
	if opts.SectorBytes <= 0 {
		opts.SectorBytes = defaultSectorBytes
	}
	if opts.ClusterBytes <= 0 {
		opts.ClusterBytes = defaultClusterBytes
	}
	opts.ClusterBytes = max(opts.SectorBytes, opts.ClusterBytes/opts.SectorBytes*opts.SectorBytes)
	if opts.SaveBytes <= 0 {
		opts.SaveBytes = defaultSaveBytes
	}
	if dst.Size() < m.Size {
		return fmt.Errorf("output is smaller than the source (%d < %d bytes)", dst.Size(), m.Size)
	}
	r := &rescuer{src: src, dst: dst, m: m, opts: opts, buf: alignedBuffer(int(opts.ClusterBytes))}
	phases := []func(context.Context) error{
		func(ctx context.Context) error { return r.copyPass(ctx, 1, opts.Reverse, !opts.NoSkip) },
		func(ctx context.Context) error { return r.copyPass(ctx, 2, !opts.Reverse, false) },
		r.trim,
		r.scrape,
		r.retry,
		r.fill,
	}
	for _, phase := range phases {
		err := phase(ctx)
		if err == nil {
			err = r.save()
		} else if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			if serr := r.save(); serr != nil {
				return serr
			}
		}
		if err != nil {
			return err
		}
	}
	m.Phase, m.Pass, m.Pos = Finished, 1, m.Size
	return r.save()
}

// save flushes the output, then persists the map.
func (r *rescuer) save() error {
	r.unsaved = 0
	if err := r.dst.Flush(); err != nil {
		return fmt.Errorf("flushing output: %w", err)
	}
	if r.opts.Save == nil {
		return nil
	}
	return r.opts.Save(r.m)
}

// advance accounts n bytes of progress, saving the map now and then.
func (r *rescuer) advance(ctx context.Context, pos, n int64) error {
	r.m.Pos = pos
	if r.opts.Progress != nil {
		r.opts.Progress(r.m)
	}
	if r.unsaved += n; r.unsaved >= r.opts.SaveBytes {
		if err := r.save(); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// read reads len(p) bytes at off; good is how many leading bytes are
// valid (whole sectors), err why the rest is not. The request is rounded up
// to whole sectors in the buffer (O_DIRECT wants it) and clipped to the
// source size.
func (r *rescuer) read(p []byte, off int64) (good int, err error) {
	want := len(p)
	req := int(min(int64(cap(p)), (int64(want)+r.opts.SectorBytes-1)/r.opts.SectorBytes*r.opts.SectorBytes))
	n, err := r.src.ReadAt(p[:req], off)
	if n >= want {
		return want, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = fmt.Errorf("short read at offset %d: %w", off+int64(n), io.ErrUnexpectedEOF)
	}
	return int(int64(n) / r.opts.SectorBytes * r.opts.SectorBytes), err
}

// write stores p at off; fresh ranges (non-tried) are zeros in the output
// already, so zero data there is not written.
func (r *rescuer) write(p []byte, off int64, fresh bool) error {
	if len(p) == 0 || (fresh && zero.Is(p)) {
		return nil
	}
	if _, err := r.dst.WriteAt(p, off); err != nil {
		return fmt.Errorf("writing output at offset %d: %w", off, err)
	}
	return nil
}

// copyPass reads the non-tried blocks in clusters on the cluster grid;
// after a failed read it skips ahead (doubling) when skip is set.
func (r *rescuer) copyPass(ctx context.Context, pass int, reverse, skip bool) error {
	r.m.Phase, r.m.Pass = NonTried, pass
	blocks := r.m.With(NonTried)
	if reverse {
		slices.Reverse(blocks)
	}
	cluster := r.opts.ClusterBytes
	skipBytes := cluster
	maxSkip := min(maxSkipBytes, max(cluster, r.m.Size/100))
	for _, b := range blocks {
		lo, hi := b.Pos, b.End() // [lo, hi) is still to do
		for lo < hi {
			var start, end int64
			if reverse {
				start, end = max(lo, (hi-1)/cluster*cluster), hi
			} else {
				start, end = lo, min(hi, (lo/cluster+1)*cluster)
			}
			p := r.buf[:end-start]
			good, err := r.read(p, start)
			if werr := r.write(p[:good], start, true); werr != nil {
				return werr
			}
			r.m.Set(start, int64(good), Finished)
			if err != nil {
				r.m.Set(start+int64(good), end-start-int64(good), NonTrimmed)
			}
			if reverse {
				hi = start
			} else {
				lo = end
			}
			if err != nil && skip {
				if reverse {
					hi = max(lo, hi-skipBytes)
				} else {
					lo = min(hi, lo+skipBytes)
				}
				skipBytes = min(2*skipBytes, maxSkip)
			} else if err == nil {
				skipBytes = cluster
			}
			if err := r.advance(ctx, start, end-start); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSector reads the sector at pos (shorter at the source's end) and
// records it as finished, or as a bad sector.
func (r *rescuer) readSector(ctx context.Context, pos int64, fresh bool) (bool, error) {
	n := min(r.opts.SectorBytes, r.m.Size-pos)
	p := r.buf[:n]
	good, err := r.read(p, pos)
	if err != nil || int64(good) < n {
		r.m.Set(pos, n, BadSector)
		return false, r.advance(ctx, pos, n)
	}
	if err := r.write(p, pos, fresh); err != nil {
		return false, err
	}
	r.m.Set(pos, n, Finished)
	return true, r.advance(ctx, pos, n)
}

// trim reads each failed cluster sector by sector from its leading edge
// forwards and from its trailing edge backwards, each until a bad sector;
// what lies between is left to scrape.
func (r *rescuer) trim(ctx context.Context) error {
	r.m.Phase, r.m.Pass = NonTrimmed, 1
	sector := r.opts.SectorBytes
	for _, b := range r.m.With(NonTrimmed) {
		lo, hi := b.Pos, b.End()
		for lo < hi {
			ok, err := r.readSector(ctx, lo, false)
			if err != nil {
				return err
			}
			lo = min(hi, lo+sector)
			if !ok {
				break
			}
		}
		for hi > lo {
			pos := max(lo, (hi-1)/sector*sector)
			ok, err := r.readSector(ctx, pos, false)
			if err != nil {
				return err
			}
			hi = pos
			if !ok {
				break
			}
		}
		r.m.Set(lo, hi-lo, NonScraped)
	}
	return nil
}

// scrape reads every sector of the non-scraped blocks once.
func (r *rescuer) scrape(ctx context.Context) error {
	r.m.Phase, r.m.Pass = NonScraped, 1
	for _, b := range r.m.With(NonScraped) {
		for pos := b.Pos; pos < b.End(); pos += r.opts.SectorBytes {
			if _, err := r.readSector(ctx, pos, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// retry reads the bad sectors again, Retries passes, alternating direction.
func (r *rescuer) retry(ctx context.Context) error {
	sector := r.opts.SectorBytes
	for pass := 1; pass <= r.opts.Retries; pass++ {
		r.m.Phase, r.m.Pass = BadSector, pass
		blocks := r.m.With(BadSector)
		if len(blocks) == 0 {
			return nil
		}
		backwards := pass%2 == 0
		if backwards {
			slices.Reverse(blocks)
		}
		for _, b := range blocks {
			for i := int64(0); i < b.Size; i += sector {
				pos := b.Pos + i
				if backwards {
					pos = b.Pos + (b.Size-1-i)/sector*sector
				}
				if _, err := r.readSector(ctx, pos, false); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fill writes the fill byte over what stays unreadable.
func (r *rescuer) fill(ctx context.Context) error {
	if r.opts.Fill == nil {
		return nil
	}
	for i := range r.buf {
		r.buf[i] = *r.opts.Fill
	}
	for _, b := range r.m.With(BadSector) {
		for pos := b.Pos; pos < b.End(); pos += int64(len(r.buf)) {
			n := min(int64(len(r.buf)), b.End()-pos)
			if _, err := r.dst.WriteAt(r.buf[:n], pos); err != nil {
				return fmt.Errorf("filling output at offset %d: %w", pos, err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// alignedBuffer returns n bytes aligned to 4 KiB (O_DIRECT's requirement
// on every common device).
func alignedBuffer(n int) []byte {
	const align = 4096
	raw := make([]byte, n+align)
	off := 0
	if rem := int(uintptrOf(raw) % align); rem != 0 {
		off = align - rem
	}
	return raw[off : off+n : off+n]
}
