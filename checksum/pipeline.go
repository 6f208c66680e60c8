package checksum

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/vdiskio/vdisk/formats"
)

// Options tune Block and Linear. The zero value means blksum's defaults.
type Options struct {
	// Algorithm is the digest for Block (default sha256).
	Algorithm string
	// BlockBytes is blkhash's block size (default 64 KiB, blksum's); a
	// different size gives a different digest.
	BlockBytes int64
	// Workers read and hash in parallel; default the number of CPUs.
	Workers int
	// ReadBytes is the unit of reading (default 4 MiB, rounded to blocks).
	ReadBytes int64
	// Progress, when set, is called with bytes done and total, in order.
	Progress func(done, total int64)
}

const (
	defaultBlockBytes = 64 << 10
	defaultReadBytes  = 4 << 20
	windowBytes       = 1 << 30 // extents are asked for this much at a time
)

func (o Options) withDefaults() Options {
	if o.Algorithm == "" {
		o.Algorithm = DefaultAlgorithm
	}
	if o.BlockBytes <= 0 {
		o.BlockBytes = defaultBlockBytes
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.ReadBytes <= 0 {
		o.ReadBytes = defaultReadBytes
	}
	o.ReadBytes = max(o.BlockBytes, o.ReadBytes/o.BlockBytes*o.BlockBytes)
	return o
}

// segment is a range of the image, in offset order: data to read, or a run
// the image records as zeros (or unallocated through its whole chain).
type segment struct {
	off, length int64
	data        bool
	buf         []byte // the bytes read, for the committer (Linear)
	sums        []byte // block digests (Block)
	done        chan error
}

// pipeline reads an image's data segments with parallel workers and hands
// every segment, data or zero, to commit in offset order.
type pipeline struct {
	img     formats.Image
	opts    Options
	pool    chan []byte
	process func(s *segment) error // in a worker, after the read
	commit  func(s *segment) error // in order, one at a time
}

func (p *pipeline) run(ctx context.Context) error {
	p.pool = make(chan []byte, p.opts.Workers+2)
	for range cap(p.pool) {
		p.pool <- make([]byte, p.opts.ReadBytes)
	}
	g, ctx := errgroup.WithContext(ctx)
	work := make(chan *segment, p.opts.Workers)
	order := make(chan *segment, p.opts.Workers*2+2)
	g.Go(func() error {
		defer close(work)
		defer close(order)
		return p.plan(ctx, func(s *segment) error {
			s.done = make(chan error, 1)
			if s.data {
				// Buffers are taken here, in offset order, not by the
				// workers: the oldest segment not yet committed always
				// has its buffer, so later ones cannot starve it.
				select {
				case s.buf = <-p.pool:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			select {
			case order <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !s.data {
				s.done <- nil
				return nil
			}
			select {
			case work <- s:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	for range p.opts.Workers {
		g.Go(func() error {
			for s := range work {
				err := p.read(ctx, s)
				if err == nil {
					err = p.process(s)
				}
				s.done <- err
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		var done int64
		for s := range order {
			var err error
			select {
			case err = <-s.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err == nil {
				err = p.commit(s)
			}
			if s.buf != nil {
				p.pool <- s.buf[:cap(s.buf)]
				s.buf = nil
			}
			if err != nil {
				return err
			}
			done += s.length
			if p.opts.Progress != nil {
				p.opts.Progress(done, p.img.Size())
			}
		}
		return nil
	})
	return g.Wait()
}

func (p *pipeline) read(ctx context.Context, s *segment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.buf = s.buf[:s.length]
	n, err := p.img.ReadAt(s.buf, s.off)
	if n == len(s.buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading image at offset %d: %w", s.off+int64(n), err)
}

// plan emits the image as segments on the ReadBytes grid: a grid cell with
// any data is read whole; runs of cells without data are merged into one
// zero segment.
func (p *pipeline) plan(ctx context.Context, emit func(*segment) error) error {
	size := p.img.Size()
	grid := p.opts.ReadBytes
	var zero *segment // pending zero run
	flush := func() error {
		if zero == nil {
			return nil
		}
		z := zero
		zero = nil
		return emit(z)
	}
	for start := int64(0); start < size; start += windowBytes {
		if err := ctx.Err(); err != nil {
			return err
		}
		window := min(windowBytes, size-start)
		exts, err := formats.ChainExtents(p.img, start, window)
		if err != nil {
			return fmt.Errorf("reading allocation at offset %d: %w", start, err)
		}
		i := 0
		for off := start; off < start+window; off += grid {
			end := min(off+grid, start+window)
			for i < len(exts) && exts[i].End() <= off {
				i++
			}
			hasData := false
			for j := i; j < len(exts) && exts[j].Offset < end; j++ {
				if exts[j].Kind == formats.Data {
					hasData = true
					break
				}
			}
			if !hasData {
				if zero == nil {
					zero = &segment{off: off}
				}
				zero.length = end - zero.off
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			if err := emit(&segment{off: off, length: end - off, data: true}); err != nil {
				return err
			}
		}
	}
	return flush()
}
