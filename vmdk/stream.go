package vmdk

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/deflate"
	"github.com/vdiskio/vdisk/internal/imageio"
	"github.com/vdiskio/vdisk/internal/zero"
)

// streamWindow is the deflate window of stream grains: qemu writes them
// with zlib's compress() (level 6, 32 KiB window) and every reader
// inflates with the full window. vdisk's own encoder matches its size at
// level 6 (general-purpose Go encoders give up on text-like data).
const streamWindow = 32768

// streamWriter writes a streamOptimized extent in one increasing pass, in
// VMware's canonical layout: header (gdOffset = GD_AT_END), descriptor,
// grains with markers, each GT after its grains, the GD, the footer and the
// end-of-stream marker. It never reads its output back, so it works on a
// pipe (fileio.Stream).
type streamWriter struct {
	f          formats.File
	name       string
	hdr        sparseHeader
	size       int64
	grainBytes int64
	level      int       // zlib level (compression_level)
	zpool      sync.Pool // *deflate.Encoder

	mu      sync.Mutex // serialises WriteAt, WriteCompressed, Flush
	pos     int64      // next file offset
	high    int64      // virtual offset written up to
	cur     int64      // grain held in buf, -1 for none
	buf     []byte     // partial grain being assembled
	gd      []uint32   // GT sectors (0: no GT)
	gtIndex int64      // GT being filled, -1 for none
	gt      []uint32
	done    bool
	rec     []byte   // grain record buffer
	spares  [][]byte // compressed grain buffers reused by writeWholeGrains
	// descFor is the embedded descriptor for a capacity (FinishSize
	// rewrites it).
	descFor func(size int64) []byte
}

// spare returns a reusable empty buffer for the i-th grain of a batch.
func (w *streamWriter) spare(i int) []byte {
	return w.spares[i][:0]
}

func createStream(cfg *createConfig) (formats.Writable, error) {
	if cfg.parent != nil {
		return nil, formats.Unsupportedf(cfg.req.Name, "streamOptimized delta disks")
	}
	descFor := cfg.monolithicDescriptor(subStreamOptimized)
	text := descFor(cfg.size)
	descSectors := int64(embeddedDescSectors)
	grainBytes := int64(defaultGrain * sectorSize)
	numGTs := int64(ceilDiv(ceilDiv(uint64(cfg.size), uint64(grainBytes)), defaultGTEs))
	if err := cfg.req.Open.Limits.CheckTable(cfg.req.Name, "grain directory", -1, uint64(numGTs), gteBytes); err != nil {
		return nil, err
	}
	h := sparseHeader{Magic: sparseMagic, Version: 3, Flags: flagNewlineTest | flagCompressed | flagMarkers,
		Capacity: uint64(cfg.size / sectorSize), GrainSize: defaultGrain, DescriptorOffset: 1,
		DescriptorSize: uint64(descSectors), NumGTEsPerGT: defaultGTEs, GDOffset: gdAtEnd,
		OverHead: streamOverheadBytes / sectorSize, NewlineCheck: newlineCheck, CompressAlgo: compressDeflate}
	w := &streamWriter{f: cfg.req.File, name: cfg.req.Name, hdr: h, size: cfg.size, grainBytes: grainBytes, level: cfg.level,
		pos: streamOverheadBytes, cur: -1, gd: make([]uint32, numGTs), gtIndex: -1, gt: make([]uint32, defaultGTEs), descFor: descFor}
	head := make([]byte, streamOverheadBytes)
	copy(head, h.encode())
	copy(head[sectorSize:(1+descSectors)*sectorSize], text)
	if _, err := w.f.WriteAt(head, 0); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *streamWriter) Size() int64        { return w.size }
func (w *streamWriter) Format() string     { return Name }
func (w *streamWriter) ClusterSize() int64 { return w.grainBytes }
func (w *streamWriter) Sequential() bool   { return true }

// ReadAt is refused: the output is written once, in order.
func (w *streamWriter) ReadAt(p []byte, off int64) (int, error) {
	return 0, formats.Unsupportedf(w.name, "reading back a streamOptimized image being written")
}

func (w *streamWriter) Extents(off, length int64) ([]formats.Extent, error) {
	return imageio.AllData(off, min(length, w.size-off)), nil
}

// Close writes the trailer if Flush was not called and closes the file.
func (w *streamWriter) Close() error {
	err := w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// compress appends the zlib stream of a grain (padded to a whole grain) to dst.
func (w *streamWriter) compress(dst, grain []byte) ([]byte, error) {
	if pad := w.grainBytes - int64(len(grain)); pad > 0 {
		grain = append(append(make([]byte, 0, w.grainBytes), grain...), make([]byte, pad)...)
	}
	enc, _ := w.zpool.Get().(*deflate.Encoder)
	if enc == nil {
		var err error
		if enc, err = deflate.NewEncoder(w.level, streamWindow); err != nil {
			return nil, err
		}
	}
	defer w.zpool.Put(enc)
	if cap(dst)-len(dst) < int(w.maxZBytes()) {
		dst = append(make([]byte, 0, len(dst)+int(w.maxZBytes())), dst...)
	}
	return enc.EncodeZlib(dst, grain)
}

// maxZBytes is a compressed grain's usual upper bound (zlib's worst case
// expansion is a few bytes per 16 KiB block).
func (w *streamWriter) maxZBytes() int64 { return w.grainBytes + w.grainBytes/64 + 64 }

// Compress compresses one grain; stream grains are always stored
// compressed, so ok is always true.
func (w *streamWriter) Compress(dst, cluster []byte) ([]byte, bool, error) {
	out, err := w.compress(dst, cluster)
	return out, err == nil, err
}

// WriteCompressed places a compressed grain; calls come in increasing order.
func (w *streamWriter) WriteCompressed(off int64, compressed []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkOrder(off, 1); err != nil {
		return err
	}
	if off%w.grainBytes != 0 {
		return fmt.Errorf("%s: compressed grain at unaligned offset %d", w.name, off)
	}
	g := off / w.grainBytes
	if err := w.finishPartial(g); err != nil {
		return err
	}
	w.high = min(off+w.grainBytes, w.size)
	return w.emitGrain(g, compressed)
}

func (w *streamWriter) checkOrder(off int64, n int) error {
	switch {
	case w.done:
		return fmt.Errorf("%s: write after the stream was finished", w.name)
	case off < w.high:
		return fmt.Errorf("%s: stream write at %d before %d: streamOptimized output is written in increasing order: %w",
			w.name, off, w.high, formats.ErrUnsupported)
	}
	return imageio.CheckWrite(w.name, n, off, w.size)
}

// finishPartial emits the partial grain in buf if it precedes grain g.
func (w *streamWriter) finishPartial(g int64) error {
	if w.cur < 0 || w.cur >= g {
		return nil
	}
	cur, buf := w.cur, w.buf
	w.cur = -1
	if zero.Is(buf) {
		return nil
	}
	z, err := w.compress(nil, buf)
	if err != nil {
		return err
	}
	return w.emitGrain(cur, z)
}

// WriteAt writes p at off, at or after everything written before. Whole
// zero grains are skipped; whole grains are compressed in parallel.
func (w *streamWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkOrder(off, len(p)); err != nil {
		return 0, err
	}
	total := len(p)
	for len(p) > 0 {
		g := off / w.grainBytes
		if err := w.finishPartial(g); err != nil {
			return 0, err
		}
		inGrain := off % w.grainBytes
		grainLen := min(w.grainBytes, w.size-g*w.grainBytes)
		if inGrain == 0 && int64(len(p)) >= grainLen && w.cur < 0 {
			n, err := w.writeWholeGrains(p, g)
			if err != nil {
				return 0, err
			}
			p, off = p[n:], off+int64(n)
			continue
		}
		if w.cur != g {
			w.cur, w.buf = g, make([]byte, grainLen)
		}
		n := copy(w.buf[inGrain:], p)
		p, off = p[n:], off+int64(n)
		if inGrain+int64(n) == grainLen {
			if err := w.finishPartial(g + 1); err != nil {
				return 0, err
			}
		}
	}
	w.high = off
	return total, nil
}

// writeWholeGrains compresses the whole grains at the start of p (grain g
// first) in parallel and emits them in order; it returns the bytes used.
func (w *streamWriter) writeWholeGrains(p []byte, g int64) (int, error) {
	var grains [][]byte
	used := 0
	for gi := g; ; gi++ {
		grainLen := int(min(w.grainBytes, w.size-gi*w.grainBytes))
		if grainLen <= 0 || len(p)-used < grainLen {
			break
		}
		grains = append(grains, p[used:used+grainLen])
		used += grainLen
	}
	out := make([][]byte, len(grains))
	for len(w.spares) < len(grains) {
		w.spares = append(w.spares, nil)
	}
	errs := make([]error, len(grains))
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(grains))
	next := make(chan int, len(grains))
	for i := range grains {
		next <- i
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if !zero.Is(grains[i]) {
					out[i], errs[i] = w.compress(w.spare(i), grains[i])
				}
			}
		}()
	}
	wg.Wait()
	defer func() {
		for i, z := range out {
			if z != nil {
				w.spares[i] = z
			}
		}
	}()
	for i, z := range out {
		if errs[i] != nil {
			return 0, errs[i]
		}
		if z == nil {
			continue
		}
		if err := w.emitGrain(g+int64(i), z); err != nil {
			return 0, err
		}
	}
	return used, nil
}

// emitGrain writes a grain marker and compressed data for grain g, closing
// the previous grain table when g starts a new one.
func (w *streamWriter) emitGrain(g int64, z []byte) error {
	if t := g / defaultGTEs; t != w.gtIndex {
		if err := w.emitGT(); err != nil {
			return err
		}
		w.gtIndex = t
	}
	n := (grainMarkerSize + int64(len(z)) + sectorSize - 1) / sectorSize * sectorSize
	if w.pos+n+4*sectorSize > maxHostBytes {
		return formats.Limitf(w.name, "grain table", -1, "stream would exceed %d bytes (32-bit sector offsets)", int64(maxHostBytes))
	}
	if int64(cap(w.rec)) < n {
		w.rec = make([]byte, n)
	}
	rec := w.rec[:n]
	clear(rec[grainMarkerSize+len(z):])
	binary.LittleEndian.PutUint64(rec[0:], uint64(g)*defaultGrain)
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(z)))
	copy(rec[grainMarkerSize:], z)
	if _, err := w.f.WriteAt(rec, w.pos); err != nil {
		return err
	}
	w.gt[g%defaultGTEs] = uint32(w.pos / sectorSize)
	w.pos += n
	return nil
}

// emitGT writes the grain table being filled (if it has entries) behind a
// GT marker and records it in the GD.
func (w *streamWriter) emitGT() error {
	if w.gtIndex < 0 {
		return nil
	}
	const gtBytes = defaultGTEs * gteBytes
	rec := encodeMetaMarker(gtBytes/sectorSize, markerGT)
	empty := true
	for _, e := range w.gt {
		rec = binary.LittleEndian.AppendUint32(rec, e)
		empty = empty && e == 0
	}
	if !empty {
		if _, err := w.f.WriteAt(rec, w.pos); err != nil {
			return err
		}
		w.gd[w.gtIndex] = uint32(w.pos/sectorSize + 1)
		w.pos += int64(len(rec))
	}
	clear(w.gt)
	w.gtIndex = -1
	return nil
}

// Flush finishes the stream: last grain and GT, GD, footer and
// end-of-stream marker. Nothing can be written after it.
func (w *streamWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	if err := w.finishPartial(1 << 62); err != nil {
		return err
	}
	if err := w.emitGT(); err != nil {
		return err
	}
	w.done = true
	gdSectors := ceilDiv(uint64(len(w.gd))*gteBytes, sectorSize)
	rec := encodeMetaMarker(gdSectors, markerGD)
	gdBuf := make([]byte, gdSectors*sectorSize)
	for i, e := range w.gd {
		binary.LittleEndian.PutUint32(gdBuf[i*gteBytes:], e)
	}
	gdSector := uint64(w.pos/sectorSize + 1)
	rec = append(rec, gdBuf...)
	footer := w.hdr
	footer.GDOffset = gdSector
	rec = append(rec, encodeMetaMarker(1, markerFooter)...)
	rec = append(rec, footer.encode()...)
	rec = append(rec, make([]byte, sectorSize)...) // end-of-stream marker
	if _, err := w.f.WriteAt(rec, w.pos); err != nil {
		return err
	}
	w.pos += int64(len(rec))
	return nil
}
