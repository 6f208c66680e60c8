package ewf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"

	"github.com/klauspost/compress/zlib"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Bounds on values read from an image, checked before they size anything.
const (
	maxChunkBytes   = 64 << 20 // sectors per chunk x bytes per sector
	maxSectionBody  = 16 << 20 // a header, volume, hash... section body read whole
	maxSectorBytes  = 4096
	minSectorBytes  = 512
	entryOffsetMask = entryCompressed - 1
)

// segment is one open segment file.
type segment struct {
	f    formats.File
	name string
	size int64
}

// table is one table section: where its entries are and what bounds the
// chunks they point to. Entries are loaded on demand (tableCache).
type table struct {
	seg        int
	descOff    int64 // offset of the table section's descriptor
	entriesOff int64 // offset of the entry array
	mirrorOff  int64 // entry array of the table2 copy, -1 when none
	entries    int64
	base       int64 // added to every entry's offset
	dataStart  int64 // chunks lie in [dataStart, dataEnd) of the segment file
	dataEnd    int64
	footer     bool  // an Adler-32 of the entry array follows it (EWF-E01)
	first      int64 // index of the table's first chunk
}

// Image is an open EWF image (a set of segment files read as one disk).
type Image struct {
	name       string
	segs       []segment
	vol        volume
	chunkBytes int64
	maxStored  int64 // largest stored (compressed or checksummed) chunk accepted
	size       int64
	tables     []table
	chunks     int64
	meta       Metadata
	digests    digests
	sections   map[string]int // section type counts, for the format guess
	header2    bool
	headerCats int // categories of the first header section
	headerCRLF bool
	cache      *tableCache
	zpool      sync.Pool // zlib readers
	rawPool    sync.Pool // stored-chunk buffers (*[]byte)
	chunkPool  sync.Pool // chunk buffers for partial reads (*[]byte)
}

// Open opens f, the first segment file of an EWF image; the other segment
// files are opened through opts.Resolver, by name next to f.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (formats.Image, error) {
	img, err := open(f, opts)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func open(f formats.File, opts formats.OpenOptions) (*Image, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	img := &Image{name: f.Name(), sections: map[string]int{}}
	if err := checkFileHeader(f, f.Name(), size, 1); err != nil {
		return nil, err
	}
	img.segs = []segment{{f: f, name: f.Name(), size: size}}
	p := &parser{img: img, limits: opts.Limits.WithDefaults()}
	ok := false
	defer func() {
		if !ok {
			img.closeSiblings()
		}
	}()
	for n := 1; ; n++ {
		last, err := p.walkSegment(n - 1)
		if err != nil {
			return nil, err
		}
		if last {
			break
		}
		if err := img.openSegment(n+1, opts); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	img.cache = newTableCache(opts.Limits.WithDefaults().CacheBytes)
	ok = true
	return img, nil
}

// checkFileHeader validates the 13-byte file header of segment number want.
func checkFileHeader(f formats.File, name string, size int64, want int) error {
	b := make([]byte, fileHeaderBytes)
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading EWF file header: %w", name, err)
		}
		return formats.Corruptf(name, "EWF file header", 0, "segment file is only %d bytes", size)
	}
	switch {
	case bytes.HasPrefix(b, sigEVF):
	case bytes.HasPrefix(b, sigLVF):
		return formats.Unsupportedf(name, "EWF-L01 logical evidence files (they hold files, not a disk image)")
	case bytes.HasPrefix(b, sigEVF2), bytes.HasPrefix(b, sigLEF2):
		return formats.Unsupportedf(name, "EWF2 (Ex01/Lx01, EnCase 7 version 2) images: vdisk reads EWF-E01 and EWF-S01; "+
			"convert with ewfexport -f encase6 first")
	default:
		return formats.Corruptf(name, "EWF file header", 0, "no EWF signature")
	}
	if got := int(binary.LittleEndian.Uint16(b[9:])); got != want {
		if want == 1 {
			return formats.Unsupportedf(name, "this is segment %d of an EWF set; open the first segment (.E01)", got)
		}
		return formats.Corruptf(name, "EWF file header", 9, "segment number is %d, want %d", got, want)
	}
	return nil
}

// openSegment opens segment number n (2 and up) by its name next to the
// first segment, through the reference policy.
func (img *Image) openSegment(n int, opts formats.OpenOptions) error {
	path, err := segmentName(img.name, n)
	if err != nil {
		return formats.Corruptf(img.name, "segment set", -1, "segment %d ends with a next section, but %v", n-1, err)
	}
	ref := filepath.Base(path)
	f, err := opts.References().Open(img.name, ref, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return formats.Corruptf(img.name, "segment set", -1, "segment %d (%s) is missing: segment %d ends with a next section", n, ref, n-1)
		}
		return fmt.Errorf("%s: opening segment %d (%s): %w", img.name, n, ref, err)
	}
	size, err := f.Size()
	if err == nil {
		err = checkFileHeader(f, f.Name(), size, n)
	}
	if err != nil {
		f.Close()
		return err
	}
	img.segs = append(img.segs, segment{f: f, name: f.Name(), size: size})
	return nil
}

func (img *Image) closeSiblings() {
	for _, s := range img.segs[1:] {
		s.f.Close()
	}
	img.segs = img.segs[:1]
}

// Size is the disk size in bytes.
func (img *Image) Size() int64 { return img.size }

// Format is "ewf".
func (img *Image) Format() string { return Name }

// ClusterSize is the chunk size.
func (img *Image) ClusterSize() int64 { return img.chunkBytes }

// Extents reports everything as data: EWF stores every chunk.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	if off < 0 {
		return nil, fmt.Errorf("%s: negative offset %d", img.name, off)
	}
	return imageio.AllData(off, min(length, img.size-off)), nil
}

// Close closes every segment file.
func (img *Image) Close() error {
	var err error
	for _, s := range img.segs {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Segments is the number of segment files.
func (img *Image) Segments() int { return len(img.segs) }

// Metadata is the case information from the header sections.
func (img *Image) Metadata() Metadata { return img.meta }

// chunkLen is the number of disk bytes in chunk idx (the last may be short).
func (img *Image) chunkLen(idx int64) int64 {
	return min(img.chunkBytes, img.size-idx*img.chunkBytes)
}

// ReadAt reads disk bytes, decoding and checking each chunk. A chunk whose
// Adler-32 does not match is an ErrCorrupt naming its segment file, file
// offset and disk offset (convert --salvage reads on past it, as zeros).
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(p, off, img.size)
	for done := 0; done < n; {
		cur := off + int64(done)
		idx, within := cur/img.chunkBytes, cur%img.chunkBytes
		take := int(min(int64(n-done), img.chunkLen(idx)-within))
		if within == 0 && int64(take) == img.chunkBytes {
			if err := img.readChunk(idx, p[done:done+take]); err != nil {
				return done, err
			}
		} else {
			bp := img.chunkBuf()
			err := img.readChunk(idx, *bp)
			copy(p[done:done+take], (*bp)[within:])
			img.chunkPool.Put(bp)
			if err != nil {
				return done, err
			}
		}
		done += take
	}
	return n, eof
}

func (img *Image) chunkBuf() *[]byte {
	if bp, ok := img.chunkPool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, img.chunkBytes)
	return &b
}

// chunkLoc is where a chunk is stored.
type chunkLoc struct {
	seg        int
	off        int64 // file offset
	stored     int64 // bytes stored (compressed stream, or data and Adler-32)
	compressed bool
}

// locate finds chunk idx through its table.
func (img *Image) locate(idx int64) (chunkLoc, error) {
	ti := sort.Search(len(img.tables), func(i int) bool { return img.tables[i].first+img.tables[i].entries > idx })
	if ti == len(img.tables) {
		return chunkLoc{}, formats.Corruptf(img.name, "chunk tables", -1, "no table lists chunk %d", idx)
	}
	t := &img.tables[ti]
	locs, err := img.tableLocs(ti)
	if err != nil {
		return chunkLoc{}, err
	}
	return locs[idx-t.first], nil
}

// tableLocs returns the decoded, validated chunk locations of table ti.
func (img *Image) tableLocs(ti int) ([]chunkLoc, error) {
	if locs := img.cache.get(ti); locs != nil {
		return locs, nil
	}
	locs, err := img.loadTable(ti)
	if err != nil {
		return nil, err
	}
	img.cache.put(ti, locs)
	return locs, nil
}

// loadTable reads table ti's entries; damaged entries (Adler-32, or offsets
// out of order or out of the chunk area) are read from the table2 copy.
func (img *Image) loadTable(ti int) ([]chunkLoc, error) {
	t := &img.tables[ti]
	locs, err := img.readEntries(t, t.entriesOff)
	if err != nil && t.mirrorOff >= 0 {
		var merr error
		if locs, merr = img.readEntries(t, t.mirrorOff); merr == nil {
			return locs, nil
		}
		return nil, fmt.Errorf("%w (the table2 copy too: %v)", err, merr)
	}
	return locs, err
}

func (img *Image) readEntries(t *table, at int64) ([]chunkLoc, error) {
	seg := &img.segs[t.seg]
	n := t.entries * tableEntryBytes
	readLen := n
	if t.footer {
		readLen += checksumBytes
	}
	b := make([]byte, readLen)
	if got, err := seg.f.ReadAt(b, at); int64(got) < readLen {
		if err == nil || err == io.EOF {
			return nil, formats.Corruptf(seg.name, "table entries", at, "%d entries run past the end of the file", t.entries)
		}
		return nil, fmt.Errorf("%s: reading table entries at %d: %w", seg.name, at, err)
	}
	if t.footer && binary.LittleEndian.Uint32(b[n:]) != sum(b[:n]) {
		return nil, formats.Corruptf(seg.name, "table entries", at, "Adler-32 mismatch")
	}
	locs := make([]chunkLoc, t.entries)
	for i := range locs {
		e := binary.LittleEndian.Uint32(b[4*i:])
		locs[i] = chunkLoc{seg: t.seg, off: t.base + int64(e&entryOffsetMask), compressed: e&entryCompressed != 0}
	}
	end := min(t.dataEnd, seg.size)
	for i := range locs {
		next := end
		if i+1 < len(locs) {
			next = locs[i+1].off
		}
		l := &locs[i]
		l.stored = next - l.off
		if l.off < t.dataStart || l.stored <= 0 || l.stored > img.maxStored {
			return nil, formats.Corruptf(seg.name, "table entries", at+4*int64(i),
				"chunk %d at offset %d: stored size %d outside 1..%d, or outside the chunk data at %d..%d",
				t.first+int64(i), l.off, l.stored, img.maxStored, t.dataStart, end)
		}
	}
	return locs, nil
}

// readChunk decodes chunk idx into dst (chunkBytes long). The last chunk
// holds chunkLen bytes of the disk, and may store more (ewfacquire keeps a
// source's trailing partial sector there); they are decoded and ignored.
func (img *Image) readChunk(idx int64, dst []byte) error {
	loc, err := img.locate(idx)
	if err != nil {
		return err
	}
	seg := &img.segs[loc.seg]
	rp := img.rawBuf()
	defer img.rawPool.Put(rp)
	raw := (*rp)[:loc.stored]
	if got, err := seg.f.ReadAt(raw, loc.off); int64(got) < loc.stored {
		if err == nil || err == io.EOF {
			return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d) ends past the end of the file (truncated segment?)", idx, idx*img.chunkBytes)
		}
		return fmt.Errorf("%s: reading chunk %d at %d: %w", seg.name, idx, loc.off, err)
	}
	need := img.chunkLen(idx)
	if loc.compressed {
		return img.inflateChunk(idx, loc, raw, dst, need)
	}
	dataLen := int64(len(raw)) - checksumBytes
	if dataLen < need || dataLen > img.chunkBytes {
		return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d): %d stored bytes, want %d data bytes and an Adler-32",
			idx, idx*img.chunkBytes, len(raw), need)
	}
	data := raw[:dataLen]
	want := binary.LittleEndian.Uint32(raw[dataLen:])
	if got := sum(data); got != want {
		return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d): Adler-32 is %08x, the stored checksum %08x", idx, idx*img.chunkBytes, got, want)
	}
	copy(dst, data)
	return nil
}

func (img *Image) rawBuf() *[]byte {
	if bp, ok := img.rawPool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, img.maxStored)
	return &b
}

// inflateChunk decompresses a zlib chunk into dst: at least need and at
// most len(dst) bytes, then the end of the stream, whose Adler-32 zlib checks.
func (img *Image) inflateChunk(idx int64, loc chunkLoc, raw, dst []byte, need int64) error {
	seg := &img.segs[loc.seg]
	bad := func(format string, args ...any) error {
		return formats.Corruptf(seg.name, "chunk", loc.off, "chunk %d (disk offset %d): %s", idx, idx*img.chunkBytes, fmt.Sprintf(format, args...))
	}
	src := bytes.NewReader(raw)
	zr, _ := img.zpool.Get().(io.ReadCloser)
	var err error
	if zr == nil {
		zr, err = zlib.NewReader(src)
	} else {
		err = zr.(zlib.Resetter).Reset(src, nil)
	}
	if err != nil {
		return bad("zlib header: %v", err)
	}
	defer img.zpool.Put(zr)
	total := 0
	var one [1]byte
	for {
		buf := dst[total:]
		if len(buf) == 0 {
			buf = one[:] // past the chunk: only the end of the stream may follow
		}
		n, err := zr.Read(buf)
		if len(dst[total:]) == 0 && n > 0 {
			return bad("decompresses to more than %d bytes", len(dst))
		}
		total += n
		if err == io.EOF {
			break
		}
		if errors.Is(err, zlib.ErrChecksum) {
			return bad("Adler-32 mismatch in the zlib stream")
		}
		if err != nil {
			return bad("zlib: %v", err)
		}
	}
	if int64(total) < need {
		return bad("decompresses to %d bytes, want %d", total, need)
	}
	return nil
}
