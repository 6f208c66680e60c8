package convert

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Options tune Copy. The zero value means qemu-img's defaults.
type Options struct {
	// Workers is the number of chunks read, scanned and compressed at once
	// (-m). Zero means 8, but no more than the CPUs (and at least 2); an
	// explicit count is honoured up to MaxWorkers, since reads from a slow
	// or remote source want many in flight whatever the CPUs.
	Workers    int
	ChunkBytes int64 // unit of work; default 2 MiB, rounded to the target cluster
	// SparseBytes is the zero-detection granularity (-S); default 4 KiB.
	// Zero runs of at least this size (aligned) are not written.
	SparseBytes int64
	// NoSparse (-S 0) copies every byte: holes and zeros are written, and
	// the target ends up fully allocated.
	NoSparse bool
	// Compress (-c) stores clusters compressed; the target must implement
	// formats.CompressedWriter.
	Compress bool
	// OutOfOrder (-W) lets workers write as they finish, in any order.
	// Ignored for sequential and compressed targets; always the case for
	// targets without a cluster size (raw), whose layout cannot depend on it.
	OutOfOrder bool
	// TargetIsZero says the target already reads as zeros (a new image, or
	// --target-is-zero): zero ranges are then not written at all.
	TargetIsZero bool
	// TopLayerOnly (-B) copies only what the source's top layer allocates;
	// its Zero ranges are written as zeros, Unallocated ones are left to the
	// target's backing file.
	TopLayerOnly bool
	// Progress, when set, is called with bytes done and total, from one
	// goroutine at a time, with done never decreasing.
	Progress func(done, total int64)
	// Salvage (--salvage) keeps going past input read errors: a failing
	// range is retried in halves down to single sectors, and only the
	// sectors that still fail are written as zeros. An input whose
	// allocation cannot be read is copied as if it were all data.
	Salvage bool
	// OnReadError, with Salvage, is told of each unreadable range (which
	// the output holds as zeros). It may be called from several goroutines.
	OnReadError func(off, length int64, err error)
	// CopyOffload (-C) lets the kernel copy data ranges that both images
	// store verbatim in files (raw, flat VMDK extents, fixed VHD): a
	// reflink where the file system shares blocks, else copy_file_range;
	// whatever it declines is copied the ordinary way. Zero runs inside
	// such data ranges are then copied as they are, as qemu-img -C does.
	// Ignored with Hash, Salvage, Compress and NoSparse.
	CopyOffload bool
	// Hash, when set, is written the guest bytes in offset order, every
	// one of them (zero and unallocated ranges as zeros, salvaged sectors as
	// the zeros written), in the same pass as the copy: no second read.
	// Writes are then committed in offset order. Not with TopLayerOnly.
	Hash io.Writer
}

// MaxWorkers is the most workers Copy runs; a larger Options.Workers is
// lowered to it. Each worker holds one chunk buffer (2 MiB by default).
const MaxWorkers = 64

const (
	defaultWorkers     = 8
	defaultChunkBytes  = 2 << 20
	defaultSparseBytes = 4 << 10
	planWindowBytes    = 1 << 30 // extents are asked for this much at a time
)

// task is one unit of work, in offset order.
type task struct {
	off, length int64
	data        bool         // read and scan; else a zero range
	offload     bool         // data copied by the kernel (Options.CopyOffload)
	done        chan *result // ordered mode: the worker's result
}

// op is one write a task produces.
type op struct {
	off        int64
	buf        []byte // nil for a zero range
	length     int64
	compressed bool
}

type result struct {
	ops     []op
	buf     []byte // the chunk buffer to return to the pool after the writes
	release func() // frees compressed output, when any
	err     error
	// reported is the part of the task's length already counted as
	// progress (by a long offload task, as it went).
	reported int64
}

// copier holds the state of one Copy.
type copier struct {
	opts       Options
	src        formats.Image
	dst        formats.Writable
	zw         formats.ZeroWriter // nil when the target cannot record zeros
	cw         formats.CompressedWriter
	ordered    bool
	grainBytes int64 // zero-detection granularity
	chunkBytes int64
	pool       chan []byte // chunk buffers; its capacity bounds memory
	progress   progress
	hash       *hasher     // nil unless Options.Hash
	outPool    sync.Pool   // compressed output buffers
	writeMu    *sync.Mutex // serialises out-of-order writes; nil for a ConcurrentWriter
	offload    bool        // Options.CopyOffload applies to these images
	// kernelMu makes the kernel copies of offload tasks take turns: the
	// kernel copies into one target file under its inode lock, where a
	// second copier spins (raw→raw -C, medians of 7: one at a time took
	// the same wall time, 0.476 s against 0.469, at 0.456 s CPU against
	// 0.640).
	kernelMu sync.Mutex
}

// Copy copies src's content into dst (of at least src's size). It returns
// when every write is done; the caller then Flushes and Closes dst.
func Copy(ctx context.Context, dst formats.Writable, src formats.Image, opts Options) error {
	c, err := newCopier(dst, src, opts)
	if err != nil {
		return err
	}
	if err := c.run(ctx); err != nil {
		c.hash.stop()
		return err
	}
	return c.hash.finish(src.Size())
}

func newCopier(dst formats.Writable, src formats.Image, opts Options) (*copier, error) {
	if dst.Size() < src.Size() {
		return nil, fmt.Errorf("output is smaller than input (%d < %d bytes)", dst.Size(), src.Size())
	}
	opts.Workers = workers(opts.Workers)
	c := &copier{opts: opts, src: src, dst: dst}
	if cw, ok := dst.(formats.ConcurrentWriter); !ok || !cw.ConcurrentWrites() {
		c.writeMu = new(sync.Mutex)
	}
	c.zw, _ = dst.(formats.ZeroWriter)
	if opts.Compress {
		cw, ok := dst.(formats.CompressedWriter)
		if !ok {
			return nil, fmt.Errorf("%w: compression not supported for this file format (%s)", formats.ErrUnsupported, dst.Format())
		}
		c.cw = cw
	}
	seq := false
	if sw, ok := dst.(formats.SequentialWriter); ok {
		seq = sw.Sequential()
	}
	// Targets that allocate as they are written (they have a cluster size)
	// get their writes in offset order, as qemu-img does, unless -W; a
	// target whose layout does not depend on write order (raw) never waits.
	_, allocating := dst.(formats.ClusterSizer)
	c.ordered = seq || opts.Compress || (allocating && !opts.OutOfOrder) || opts.Hash != nil
	var err error
	if c.hash, err = newHasher(opts.Hash, opts, c.release); err != nil {
		return nil, err
	}
	c.grainBytes, c.chunkBytes = c.geometry()
	c.pool = make(chan []byte, opts.Workers+2)
	for range cap(c.pool) {
		c.pool <- make([]byte, c.chunkBytes)
	}
	c.progress = progress{fn: opts.Progress, total: src.Size()}
	c.offload = c.offloads()
	c.outPool.New = func() any { b := make([]byte, 0, c.chunkBytes); return &b }
	return c, nil
}

// workers is the worker count for a requested one: the default is tied to
// the CPUs, because on a local source more workers than CPUs only add thread
// hand-offs and kernel contention (measured: 8 workers on 2 CPUs spend 3-4x
// the system time of 2); an explicit request is the caller's knowledge of
// its source (a remote one wants many reads in flight) and is honoured up
// to MaxWorkers.
func workers(requested int) int {
	if requested <= 0 {
		return min(defaultWorkers, max(2, runtime.GOMAXPROCS(0)))
	}
	return min(requested, MaxWorkers)
}

// geometry picks the zero-detection grain and the chunk size: the grain is
// the sparse size (a power of two) or the target's cluster if larger (and not
// larger than a chunk); chunks are a multiple of the grain.
func (c *copier) geometry() (grain, chunk int64) {
	chunk = c.opts.ChunkBytes
	if chunk <= 0 {
		chunk = defaultChunkBytes
	}
	grain = c.opts.SparseBytes
	if grain <= 0 {
		grain = defaultSparseBytes
	}
	grain = int64(1) << (63 - bits.LeadingZeros64(uint64(grain))) // pow2floor
	if cs, ok := c.dst.(formats.ClusterSizer); ok {
		if cl := cs.ClusterSize(); cl > grain && (cl <= chunk || c.cw != nil) {
			grain = cl
		}
	}
	if grain&(grain-1) != 0 || grain > planWindowBytes {
		grain = defaultSparseBytes
	}
	chunk = (chunk + grain - 1) / grain * grain
	return grain, chunk
}

func (c *copier) run(ctx context.Context) error {
	if done, err := c.cloneWhole(ctx); done || err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	work := make(chan *task, c.opts.Workers)
	var order chan *task
	if c.ordered {
		order = make(chan *task, c.opts.Workers+1)
	}
	g.Go(func() error {
		defer close(work)
		if order != nil {
			defer close(order)
		}
		return c.plan(ctx, func(t *task) error {
			if order != nil {
				t.done = make(chan *result, 1)
				select {
				case order <- t:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			select {
			case work <- t:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	for range c.opts.Workers {
		g.Go(func() error { return c.worker(ctx, work) })
	}
	if order != nil {
		g.Go(func() error { return c.commitInOrder(ctx, order) })
	}
	return g.Wait()
}

// worker processes tasks until work is closed. It takes a chunk buffer
// before it takes a task, and keeps it across tasks that need none: tasks
// leave work in offset order, so the oldest task not yet committed always
// holds a buffer. (Taking the task first, a worker could wait for a buffer
// while results after its task, waiting to be committed in order behind
// it, held them all.)
func (c *copier) worker(ctx context.Context, work <-chan *task) error {
	var buf []byte
	defer func() {
		if buf != nil {
			c.pool <- buf
		}
	}()
	for {
		if buf == nil {
			select {
			case buf = <-c.pool:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		t, ok := <-work
		if !ok {
			return nil
		}
		res := c.process(ctx, t, buf)
		if res.buf != nil {
			buf = nil // the result returns it to the pool once committed
		}
		if t.done != nil {
			t.done <- res
			if res.err != nil {
				return res.err
			}
			continue
		}
		if err := c.commit(t, res); err != nil {
			return err
		}
	}
}

func (c *copier) commitInOrder(ctx context.Context, order <-chan *task) error {
	for t := range order {
		var res *result
		select {
		case res = <-t.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := c.commit(t, res); err != nil {
			return err
		}
	}
	return nil
}

// commit performs a task's writes (or returns its error) and returns its
// buffers to the pool.
func (c *copier) commit(t *task, res *result) error {
	if res.err != nil {
		c.release(res)
		return res.err
	}
	for _, o := range res.ops {
		if err := c.write(o); err != nil {
			c.release(res)
			return err
		}
	}
	if c.hash != nil {
		c.hash.task(t, res) // hashed, then released, by the hasher
	} else {
		c.release(res)
	}
	c.progress.add(t.length - res.reported)
	return nil
}

func (c *copier) release(res *result) {
	if res.buf != nil {
		c.pool <- res.buf[:cap(res.buf)]
	}
	if res.release != nil {
		res.release()
	}
}

func (c *copier) write(o op) error {
	if c.writeMu != nil {
		c.writeMu.Lock() // the target does not take concurrent writes
		defer c.writeMu.Unlock()
	}
	var err error
	switch {
	case o.compressed:
		err = c.cw.WriteCompressed(o.off, o.buf)
	case o.buf != nil:
		_, err = c.dst.WriteAt(o.buf, o.off)
	default:
		err = c.writeZeroes(o.off, o.length)
	}
	if err != nil {
		return fmt.Errorf("writing output at offset %d: %w", o.off, err)
	}
	return nil
}

func (c *copier) writeZeroes(off, length int64) error {
	if c.zw != nil {
		return c.zw.WriteZeroes(off, length)
	}
	return fileio.WriteZeros(c.dst, off, length)
}

// process turns a task into writes: a zero range as is, a data chunk read
// into buf (a chunk buffer from the pool, which the result then holds) and
// split at the grain into data and zero runs (compressed per cluster).
func (c *copier) process(ctx context.Context, t *task, buf []byte) *result {
	if err := ctx.Err(); err != nil {
		return &result{err: err}
	}
	if !t.data {
		return &result{ops: []op{{off: t.off, length: t.length}}}
	}
	if t.offload {
		return c.processOffload(ctx, t, buf)
	}
	buf = buf[:t.length]
	res := &result{buf: buf}
	if err := c.read(buf, t.off); err != nil {
		res.err = err
		return res
	}
	data := buf
	if c.cw == nil {
		data = data[:c.clipToStreamEnd(t.off, len(data))]
	}
	switch {
	case len(data) == 0:
	case c.opts.NoSparse:
		res.ops = []op{{off: t.off, buf: data, length: int64(len(data))}}
	case c.cw != nil:
		res.err = c.compress(t, data, res)
	default:
		res.ops = c.splitZeros(t.off, data)
	}
	return res
}

// clipToStreamEnd is how many of the n bytes read at off lie before the
// end of a stream input that has ended (its final size as the output
// takes it, see finalSize): nothing past it is written, so an output
// created at the provisional size can take the final one at the end (a
// stream output cannot be cut back; a block format allocates nothing
// past it). A compressed cluster stays whole (zeros past the end, inside
// the last cluster).
func (c *copier) clipToStreamEnd(off int64, n int) int {
	end, ok := streamEnd(c.src)
	if !ok {
		return n
	}
	end = finalSize(c.dst, end)
	switch {
	case off >= end:
		return 0
	case off+int64(n) > end:
		return int(end - off)
	}
	return n
}

// splitZeros cuts buf (at virtual offset off) into data and zero runs at the
// grain, aligned to absolute offsets. Zero runs are dropped when the target
// already reads as zeros.
func (c *copier) splitZeros(off int64, buf []byte) []op {
	var ops []op
	for pos := 0; pos < len(buf); {
		end := min(len(buf), int(alignUp(off+int64(pos)+1, c.grainBytes)-off))
		isZero := zero.Is(buf[pos:end])
		if n := len(ops); n > 0 && (ops[n-1].buf == nil) == isZero {
			ops[n-1].length += int64(end - pos)
			if !isZero {
				ops[n-1].buf = buf[int(ops[n-1].off-off):end]
			}
		} else if isZero {
			ops = append(ops, op{off: off + int64(pos), length: int64(end - pos)})
		} else {
			ops = append(ops, op{off: off + int64(pos), buf: buf[pos:end], length: int64(end - pos)})
		}
		pos = end
	}
	if c.dropZeros() {
		kept := ops[:0]
		for _, o := range ops {
			if o.buf != nil {
				kept = append(kept, o)
			}
		}
		ops = kept
	}
	return ops
}

// compress compresses each non-zero cluster of a chunk (chunks are cluster
// aligned for compressed targets); clusters that do not shrink are written
// plainly.
func (c *copier) compress(t *task, buf []byte, res *result) error {
	cluster := c.cw.ClusterSize()
	out := c.outPool.Get().(*[]byte)
	dst := (*out)[:0]
	var pieces []op
	for pos := 0; pos < len(buf); {
		end := min(len(buf), int(alignUp(t.off+int64(pos)+1, cluster)-t.off))
		clusterBytes := buf[pos:end]
		virt := t.off + int64(pos)
		pos = end
		if zero.Is(clusterBytes) {
			if !c.dropZeros() {
				pieces = append(pieces, op{off: virt, length: int64(len(clusterBytes))})
			}
			continue
		}
		before := len(dst)
		var ok bool
		var err error
		dst, ok, err = c.cw.Compress(dst, clusterBytes)
		if err != nil {
			return fmt.Errorf("compressing cluster at offset %d: %w", virt, err)
		}
		if !ok {
			dst = dst[:before]
			pieces = append(pieces, op{off: virt, buf: clusterBytes, length: int64(len(clusterBytes))})
			continue
		}
		pieces = append(pieces, op{off: virt, buf: dst[before:len(dst):len(dst)], length: int64(len(clusterBytes)), compressed: true})
	}
	*out = dst
	res.ops = pieces
	res.release = func() { c.outPool.Put(out) }
	return nil
}

// dropZeros says zero runs found inside data need not be written: the target
// reads as zeros and no backing file shows through.
func (c *copier) dropZeros() bool { return c.opts.TargetIsZero && !c.opts.TopLayerOnly }

func alignUp(x, a int64) int64 { return (x + a - 1) / a * a }

// progress reports monotonic progress from any goroutine.
type progress struct {
	mu    sync.Mutex
	fn    func(done, total int64)
	done  int64
	total int64
}

func (p *progress) add(n int64) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.fn(p.done, p.total)
}
