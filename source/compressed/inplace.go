package compressed

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/blockcache"
	"github.com/vdiskio/vdisk/internal/readonly"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Defaults for reading in place.
const (
	// DefaultMaxBlockBytes is the largest decompressed block (xz block,
	// zstd frame) read in place; a file with a larger one is spooled.
	DefaultMaxBlockBytes int64 = 64 << 20
	// DefaultCacheBytes bounds the decoded blocks kept (at least two
	// blocks are kept, whatever their size).
	DefaultCacheBytes int64 = 12 << 20
	// readAheadBlocks is how many blocks past the one read are decoded
	// ahead, in parallel, while the cache has room.
	readAheadBlocks = 2
	// maxDecodes is how many blocks decode at the same time.
	maxDecodes = 3
)

// InPlace is a compressed file read in place through its block index:
// each block is decoded when read, and a bounded cache keeps the last
// ones. It is a read-only formats.File of the decompressed size.
type InPlace struct {
	readonly.File              // Name, and writes refused
	src           formats.File // the compressed file, owned
	kind          Kind
	blocks        []block
	size          int64
	decode        func(b block) ([]byte, error)
	// decoding bounds the blocks decoded at once (each holds its output,
	// its compressed bytes and a decoder's dictionary).
	decoding chan struct{}
	closer   func()
	reader   blockcache.Reader // the decoded blocks, cached, read ahead

	zerosMu sync.Mutex
	zeros   map[int][]uint64 // per decoded block, a bit per all-zero holeBytes unit
}

// openInPlace indexes src; errNotIndexable when it has no usable index
// (the caller spools it).
func (s *Spooler) openInPlace(src formats.File, name string, kind Kind, size, limit int64) (*InPlace, error) {
	maxBlock := s.MaxBlockBytes
	if maxBlock <= 0 {
		maxBlock = DefaultMaxBlockBytes
	}
	var blocks []block
	var err error
	f := &InPlace{src: src, kind: kind, decoding: make(chan struct{}, maxDecodes),
		File: readonly.New(name, fmt.Sprintf("a %s-compressed image is read-only (convert it to a new image)", kind))}
	switch kind {
	case Xz:
		blocks, err = xzBlocks(src, size, name)
		f.decode = f.decodeXz
	case Zstd:
		blocks, err = zstdBlocks(src, size, name, maxBlock)
		dec, derr := zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecoderMaxMemory(uint64(maxBlock)),
			zstd.WithDecoderMaxWindow(1<<31))
		if derr != nil {
			return nil, derr
		}
		f.closer = dec.Close
		f.decode = func(b block) ([]byte, error) {
			stored, err := f.readStored(b)
			if err != nil {
				return nil, err
			}
			return dec.DecodeAll(stored, make([]byte, 0, b.virtBytes))
		}
	default:
		return nil, errNotIndexable
	}
	if err != nil || len(blocks) == 0 {
		f.close()
		if err == nil || errors.Is(err, formats.ErrCorrupt) {
			err = errNotIndexable // the stream decoder gives its own verdict
		}
		return nil, err
	}
	for _, b := range blocks {
		if b.virtBytes > maxBlock {
			f.close()
			return nil, errNotIndexable
		}
	}
	last := blocks[len(blocks)-1]
	f.blocks, f.size = blocks, last.virtOff+last.virtBytes
	if f.size > limit {
		f.close()
		return nil, formats.Limitf(name, string(kind)+" index", -1,
			"declares %d decompressed bytes, past the limit of %d bytes (raise it with --spool-limit)", f.size, limit)
	}
	f.reader.Cache.Budget = max(s.CacheBytes, 0)
	if f.reader.Cache.Budget == 0 {
		f.reader.Cache.Budget = DefaultCacheBytes
	}
	f.reader.Size, f.reader.Count, f.reader.Ahead = f.size, len(blocks), readAheadBlocks
	f.reader.Find, f.reader.Span, f.reader.Load = f.find, f.span, f.load
	return f, nil
}

func (f *InPlace) close() {
	if f.closer != nil {
		f.closer()
	}
}

// decodeXz decodes one xz block, verifying its check and sizes.
func (f *InPlace) decodeXz(b block) ([]byte, error) {
	r, err := xzBlockReader(b, f.src, b.fileOff)
	if err != nil {
		return nil, err
	}
	zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return nil, err
	}
	out := make([]byte, b.virtBytes)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, err
	}
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		return nil, fmt.Errorf("block decodes past its %d bytes (%v)", b.virtBytes, err)
	}
	return out, nil
}

// Compression names the compression.
func (f *InPlace) Compression() Kind { return f.kind }

// Blocks is how many independently decoded blocks the file has.
func (f *InPlace) Blocks() int { return len(f.blocks) }

// Size is the decompressed size.
func (f *InPlace) Size() (int64, error) { return f.size, nil }

// Close waits for read-ahead decodes and closes the compressed file.
func (f *InPlace) Close() error {
	f.reader.Wait()
	f.close()
	return f.src.Close()
}

// ReadAt reads decompressed bytes; safe for concurrent use.
func (f *InPlace) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.Name(), off)
	}
	return f.reader.ReadAt(p, off)
}

// find returns the block holding decompressed byte at.
func (f *InPlace) find(at int64) int {
	return sort.Search(len(f.blocks), func(i int) bool { return f.blocks[i].virtOff+f.blocks[i].virtBytes > at })
}

// span is block i's decompressed offset and length.
func (f *InPlace) span(i int) (int64, int64) { return f.blocks[i].virtOff, f.blocks[i].virtBytes }

// load decodes block i, noting its zeros.
func (f *InPlace) load(i int) ([]byte, error) {
	b := f.blocks[i]
	f.decoding <- struct{}{}
	data, err := f.decode(b)
	<-f.decoding
	if err == nil && int64(len(data)) != b.virtBytes {
		err = fmt.Errorf("decodes to %d bytes, the index says %d", len(data), b.virtBytes)
	}
	if err != nil {
		return nil, formats.Corruptf(f.Name(), string(f.kind)+" block", b.fileOff, "block %d (decompressed offset %d): %v", i, b.virtOff, err)
	}
	f.noteZeros(i, data)
	return data, nil
}

// noteZeros records which holeBytes units of block i are all zeros.
func (f *InPlace) noteZeros(i int, data []byte) {
	units := (len(data) + holeBytes - 1) / holeBytes
	bits := make([]uint64, (units+63)/64)
	for u := range units {
		if zero.Is(data[u*holeBytes : min(len(data), (u+1)*holeBytes)]) {
			bits[u/64] |= 1 << (u % 64)
		}
	}
	f.zerosMu.Lock()
	defer f.zerosMu.Unlock()
	if f.zeros == nil {
		f.zeros = map[int][]uint64{}
	}
	f.zeros[i] = bits
}

// zeroBits returns block i's zero map, decoding the block if it never was.
func (f *InPlace) zeroBits(i int) ([]uint64, error) {
	f.zerosMu.Lock()
	bits, ok := f.zeros[i]
	f.zerosMu.Unlock()
	if ok {
		return bits, nil
	}
	if _, err := f.reader.Block(i); err != nil {
		return nil, err
	}
	f.zerosMu.Lock()
	defer f.zerosMu.Unlock()
	return f.zeros[i], nil
}

// Runs reports the all-zero 4 KiB units of the decompressed bytes as
// holes (the same holes a spool of them would have), so that map and
// compare see a compressed raw image as they see the file. It decodes
// every block of the range once (each block's zero map is kept, a bit per
// 4 KiB); a later read decodes a data block again unless it is cached.
func (f *InPlace) Runs(off, length int64) ([]formats.FileRun, error) {
	var out []formats.FileRun
	add := func(o, n int64, hole bool) {
		if k := len(out); k > 0 && out[k-1].Hole == hole && out[k-1].Offset+out[k-1].Length == o {
			out[k-1].Length += n
			return
		}
		out = append(out, formats.FileRun{Offset: o, Length: n, Hole: hole})
	}
	end := min(off+length, f.size)
	for at := off; at < end; {
		i := f.find(at)
		bits, err := f.zeroBits(i)
		if err != nil {
			return nil, err
		}
		f.reader.ReadAhead(i)
		b := f.blocks[i]
		for at < end && at < b.virtOff+b.virtBytes {
			u := (at - b.virtOff) / holeBytes
			next := min(end, b.virtOff+(u+1)*holeBytes, b.virtOff+b.virtBytes)
			add(at, next-at, bits[u/64]&(1<<(u%64)) != 0)
			at = next
		}
	}
	if end < off+length {
		add(end, off+length-end, false)
	}
	return out, nil
}

// readStored reads a zstd frame's bytes.
func (f *InPlace) readStored(b block) ([]byte, error) {
	stored := make([]byte, b.fileBytes)
	if n, err := f.src.ReadAt(stored, b.fileOff); n < len(stored) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return stored, nil
}
