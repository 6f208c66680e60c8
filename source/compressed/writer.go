package compressed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/vdiskio/vdisk/formats"
)

// The writer compresses a stream in parallel by cutting it into blocks of
// WriterOptions.BlockBytes that are compressed independently on a pool of
// workers and written in order:
//
//	xz    one stream of many blocks (each made by ulikunitz/xz as a
//	      single-block stream, its block lifted out), then the index of
//	      all of them and the footer: stock xz reads it, and it reads in
//	      place (InPlace) through that index
//	zstd  one frame per block (with its content size and checksum), then
//	      a seek table in a skippable frame: the seekable format; stock
//	      zstd skips the table
//	gzip  one member per block; gzip reads concatenated members as one
//	      stream

// DefaultWriterBlockBytes is the block size of a parallel writer.
const DefaultWriterBlockBytes = 4 << 20

// WriterKinds are the compressions NewWriter writes.
var WriterKinds = []Kind{Xz, Zstd, Gzip}

// WriterOptions tune NewWriter; the zero value means the defaults.
type WriterOptions struct {
	// BlockBytes is the uncompressed size of each independent block;
	// 0 means DefaultWriterBlockBytes.
	BlockBytes int
	// Workers is how many blocks are compressed at once; 0 means the
	// CPUs, at most 8.
	Workers int
}

// ParseKind parses a compression name for writing: xz, zstd or gzip.
func ParseKind(s string) (Kind, error) {
	for _, k := range WriterKinds {
		if string(k) == s {
			return k, nil
		}
	}
	return None, fmt.Errorf("%w: compression %q (want xz, zstd or gzip)", formats.ErrInvalidOption, s)
}

// Writer is a parallel compressor; Close finishes the stream (index,
// seek table) but does not close the underlying writer.
type Writer struct {
	w          io.Writer
	kind       Kind
	blockBytes int
	buf        []byte
	sem        chan struct{}  // bounds the blocks being compressed
	queue      chan *blockJob // blocks in order, to the writing goroutine
	written    chan struct{}  // closed when the writing goroutine ends
	zstdEnc    *zstd.Encoder
	mu         sync.Mutex
	err        error
	records    []block // per block written: its compressed and uncompressed bytes
	pool       sync.Pool
	closed     bool
	submitted  int // blocks handed to the workers (the caller's count; records is the writing goroutine's)
}

type blockJob struct {
	in       []byte
	out      []byte
	unpadded int64 // xz: the block's unpadded size (out ends with its padding)
	err      error
	done     chan struct{}
}

// NewWriter returns a parallel compressor of kind writing to w.
func NewWriter(w io.Writer, kind Kind, opts WriterOptions) (*Writer, error) {
	if _, err := ParseKind(string(kind)); err != nil {
		return nil, err
	}
	if opts.BlockBytes <= 0 {
		opts.BlockBytes = DefaultWriterBlockBytes
	}
	if opts.Workers <= 0 {
		opts.Workers = min(runtime.GOMAXPROCS(0), 8)
	}
	zw := &Writer{w: w, kind: kind, blockBytes: opts.BlockBytes,
		sem: make(chan struct{}, opts.Workers), queue: make(chan *blockJob, 2*opts.Workers),
		written: make(chan struct{})}
	if kind == Zstd {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(opts.Workers), zstd.WithEncoderCRC(true),
			zstd.WithWindowSize(windowFor(opts.BlockBytes)))
		if err != nil {
			return nil, err
		}
		zw.zstdEnc = enc
	}
	if kind == Xz {
		if _, err := zw.w.Write(xzStreamHeader()); err != nil {
			return nil, err
		}
	}
	go zw.writeLoop()
	return zw, nil
}

// windowFor is the zstd window for blocks of n bytes: a power of two at
// least n, within zstd's bounds.
func windowFor(n int) int {
	w := zstd.MinWindowSize
	for w < n && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

func xzStreamHeader() []byte {
	flags := []byte{0, 0x04} // CRC64 checks, as ulikunitz/xz writes them
	h := append(bytes.Clone(xzHeaderMagic), flags...)
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(flags))
}

func (zw *Writer) fail(err error) {
	zw.mu.Lock()
	defer zw.mu.Unlock()
	if zw.err == nil {
		zw.err = err
	}
}

func (zw *Writer) failed() error {
	zw.mu.Lock()
	defer zw.mu.Unlock()
	return zw.err
}

// Write buffers p and hands every full block to a worker.
func (zw *Writer) Write(p []byte) (int, error) {
	if zw.closed {
		return 0, errors.New("compressed writer: write after Close")
	}
	n := 0
	for len(p) > 0 {
		if err := zw.failed(); err != nil {
			return n, err
		}
		if zw.buf == nil {
			if b, ok := zw.pool.Get().(*[]byte); ok {
				zw.buf = (*b)[:0]
			} else {
				zw.buf = make([]byte, 0, zw.blockBytes)
			}
		}
		m := min(len(p), zw.blockBytes-len(zw.buf))
		zw.buf = append(zw.buf, p[:m]...)
		p, n = p[m:], n+m
		if len(zw.buf) == zw.blockBytes {
			zw.submit()
		}
	}
	return n, nil
}

// submit hands the buffered block to a worker, in order.
func (zw *Writer) submit() {
	j := &blockJob{in: zw.buf, done: make(chan struct{})}
	zw.buf = nil
	zw.submitted++
	zw.sem <- struct{}{}
	go func() {
		defer func() { <-zw.sem }()
		j.out, j.unpadded, j.err = zw.compress(j.in)
		close(j.done)
	}()
	zw.queue <- j
}

// writeLoop writes the compressed blocks in order.
func (zw *Writer) writeLoop() {
	defer close(zw.written)
	for j := range zw.queue {
		<-j.done
		if zw.failed() != nil {
			continue
		}
		if j.err != nil {
			zw.fail(fmt.Errorf("%s compression: %w", zw.kind, j.err))
			continue
		}
		if _, err := zw.w.Write(j.out); err != nil {
			zw.fail(err)
			continue
		}
		rec := block{fileBytes: int64(len(j.out)), virtBytes: int64(len(j.in))}
		if zw.kind == Xz {
			rec.fileBytes = j.unpadded
		}
		zw.records = append(zw.records, rec)
		if cap(j.in) == zw.blockBytes {
			in := j.in[:0]
			zw.pool.Put(&in)
		}
	}
}

// compress compresses one block on its own; for xz it also returns the
// block's unpadded size.
func (zw *Writer) compress(in []byte) ([]byte, int64, error) {
	switch zw.kind {
	case Zstd:
		return zw.zstdEnc.EncodeAll(in, make([]byte, 0, len(in)/2+64)), 0, nil
	case Gzip:
		var b bytes.Buffer
		gw := gzip.NewWriter(&b)
		if _, err := gw.Write(in); err != nil {
			return nil, 0, err
		}
		if err := gw.Close(); err != nil {
			return nil, 0, err
		}
		return b.Bytes(), 0, nil
	}
	return compressXz(in)
}

// compressXz compresses in (not empty) as a single-block xz stream and
// lifts the block out, with its unpadded size.
func compressXz(in []byte) ([]byte, int64, error) {
	var b bytes.Buffer
	dict := max(4096, min(len(in), 8<<20))
	w, err := xz.WriterConfig{DictCap: dict, BlockSize: int64(len(in)) + 1, CheckSum: xz.CRC64}.NewWriter(&b)
	if err != nil {
		return nil, 0, err
	}
	if _, err := w.Write(in); err != nil {
		return nil, 0, err
	}
	if err := w.Close(); err != nil {
		return nil, 0, err
	}
	stream := b.Bytes()
	blocks, err := xzBlocks(bytes.NewReader(stream), int64(len(stream)), "xz block")
	if err != nil || len(blocks) != 1 || blocks[0].virtBytes != int64(len(in)) {
		return nil, 0, fmt.Errorf("unexpected xz writer output (%d blocks, %v)", len(blocks), err)
	}
	blk := blocks[0]
	return stream[blk.fileOff : blk.fileOff+pad4(blk.fileBytes)], blk.fileBytes, nil
}

// Close compresses what is buffered, waits for the workers and writes the
// trailer (xz index and footer, zstd seek table). It does not close the
// underlying writer.
func (zw *Writer) Close() error {
	if zw.closed {
		return zw.failed()
	}
	zw.closed = true
	if len(zw.buf) > 0 || (zw.kind != Xz && zw.submitted == 0 && zw.failed() == nil) {
		if zw.buf == nil {
			zw.buf = []byte{}
		}
		zw.submit() // gzip and zstd: an empty input is still one member/frame
	}
	close(zw.queue)
	<-zw.written
	if zw.zstdEnc != nil {
		zw.zstdEnc.Close()
	}
	if err := zw.failed(); err != nil {
		return err
	}
	var trailer []byte
	switch zw.kind {
	case Xz:
		trailer = xzTrailer(zw.records)
	case Zstd:
		trailer = seekTable(zw.records)
	}
	if _, err := zw.w.Write(trailer); err != nil {
		return err
	}
	return nil
}

// xzTrailer is the index of records and the stream footer.
func xzTrailer(records []block) []byte {
	index := []byte{0}
	index = appendVarint(index, uint64(len(records)))
	for _, r := range records {
		index = appendVarint(index, uint64(r.fileBytes))
		index = appendVarint(index, uint64(r.virtBytes))
	}
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	index = binary.LittleEndian.AppendUint32(index, crc32.ChecksumIEEE(index))
	foot := make([]byte, 4, xzFooterBytes)
	foot = binary.LittleEndian.AppendUint32(foot, uint32(len(index)/4-1))
	foot = append(foot, 0, 0x04)
	foot = append(foot, xzFooterMagic...)
	binary.LittleEndian.PutUint32(foot, crc32.ChecksumIEEE(foot[4:10]))
	return append(index, foot...)
}

// seekTable is the seekable-zstd seek table (without checksums) for the
// frames written.
func seekTable(records []block) []byte {
	entries := make([]byte, 0, 8*len(records)+zstdSeekFooter)
	for _, r := range records {
		entries = binary.LittleEndian.AppendUint32(entries, uint32(r.fileBytes))
		entries = binary.LittleEndian.AppendUint32(entries, uint32(r.virtBytes))
	}
	entries = binary.LittleEndian.AppendUint32(entries, uint32(len(records)))
	entries = append(entries, 0)
	entries = binary.LittleEndian.AppendUint32(entries, zstdSeekableMagic)
	out := binary.LittleEndian.AppendUint32(nil, zstdSeekTableMagic)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(entries)))
	return append(out, entries...)
}
