package ewf

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zlib"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Writer limits and layout constants.
const (
	minSegmentBytes = 1 << 20
	minChunkSectors = 16
	maxChunkSectors = 32768
	sectorBytes     = 512
	// maxTableEntries keeps every table readable by FTK and EnCase 5 (EnCase
	// 6 reads more; libewf writes up to 65534).
	maxTableEntries = 16375
	// maxEntryOffset: a table entry holds a 31-bit offset from its base, so
	// a sectors section never grows past it.
	maxEntryOffset = entryCompressed - 1
	// endReserve is what the last segment file needs after its last table2:
	// data, digest, hash and done sections.
	endReserve = descriptorBytes + volumeBytes + descriptorBytes + digestBytes + descriptorBytes + hashBytes + descriptorBytes
	// segBufferBytes is the write buffer of a segment file.
	segBufferBytes = 1 << 20
)

// Software is what vdisk writes as the acquiring software's version ("av",
// which EnCase limits to 11 characters).
const Software = "vdisk"

// Writer writes a new EWF-E01 image in EnCase 6 layout, as ewfacquire
// -f encase6 does. It is a sequential writer: bytes arrive in increasing
// disk offsets (a gap reads as zeros). Chunks are compressed by a pool of
// workers while two goroutines hash the data (MD5 and SHA-1) in order and
// one places the chunks in the segment files.
type Writer struct {
	name         string
	first        formats.File
	siblings     func(string) (formats.File, error)
	size         int64
	chunkBytes   int64
	segmentBytes int64
	compression  string
	zlibLevel    int
	vol          volume

	mu      sync.Mutex // serialises WriteAt, Flush and Close
	pos     int64      // disk bytes accepted
	cur     *chunkJob  // chunk being assembled, nil on a chunk boundary
	done    bool       // Flush finished the image
	stopped bool       // the pipeline goroutines have ended
	zeros   []byte     // one chunk of zeros, never written to

	// pipeline
	bufs    chan []byte
	work    chan *chunkJob
	place   chan *chunkJob
	hashIn  [2]chan *chunkJob
	hashes  [2]hash.Hash // MD5, SHA-1
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
	zpool   sync.Pool // *zlib.Writer
	outPool sync.Pool // *[]byte compressed-chunk buffers
	// zeroStored is the compressed form of a whole zero chunk (nil when
	// chunks are stored uncompressed).
	zeroStored []byte

	// placement state: the placer goroutine's until it ends, then Flush's
	segs         []*segFile
	seg          *segFile
	sectorsStart int64 // descriptor offset of the open sectors section, -1 none
	entries      []uint32
	segChunks    int64
}

// chunkJob is one chunk on its way through the pipeline.
type chunkJob struct {
	index  int64
	data   []byte
	pooled bool    // data came from Writer.bufs
	out    []byte  // stored form when compressed; nil stores data and sum
	outBuf *[]byte // pooled buffer behind out
	sum    uint32  // Adler-32 of data, for uncompressed storage
	ready  chan struct{}
	refs   atomic.Int32 // placer and the two hashers
}

// Create starts a new EWF image; req.Name must end in .E01 (or .e01): the
// further segment files are created next to it as .E02, .E03... through
// req.Siblings.
func Create(ctx context.Context, req formats.CreateRequest) (*Writer, error) {
	w, err := newWriter(req)
	if err != nil {
		return nil, err
	}
	if err := w.writeFirstSections(req.Options); err != nil {
		return nil, err
	}
	w.start()
	return w, nil
}

func newWriter(req formats.CreateRequest) (*Writer, error) {
	name := req.Name
	if name == "-" || req.Siblings == nil {
		return nil, formats.Unsupportedf(name, "writing EWF to a stream (its segment files and section sizes need a file)")
	}
	// libewf opens only files named as segments (ewfinfo x.img: "invalid
	// filenames"), and the further segments are named after the first.
	if ext := filepath.Ext(name); len(ext) != 4 || (ext[1] != 'E' && ext[1] != 'e') || ext[2:] != "01" {
		return nil, fmt.Errorf("%w: %s: an EWF image is named NAME.E01 (its further segment files are NAME.E02, ...; ewf-tools open no other name)", formats.ErrInvalidOption, name)
	}
	if err := req.Open.Limits.CheckVirtualSize(name, req.Size); err != nil {
		return nil, err
	}
	if req.Size <= 0 || req.Size%sectorBytes != 0 {
		return nil, fmt.Errorf("%w: %s: EWF stores whole %d-byte sectors; %d bytes is not a positive multiple", formats.ErrInvalidOption, name, sectorBytes, req.Size)
	}
	var o CreateOptions
	if err := req.Options.Decode(&o); err != nil {
		return nil, err
	}
	chunk := o.ChunkSize
	sectors := chunk / sectorBytes
	if chunk%sectorBytes != 0 || sectors < minChunkSectors || sectors > maxChunkSectors || sectors&(sectors-1) != 0 {
		return nil, fmt.Errorf("%w: %s=%d: want 512 bytes times a power of two from %d to %d", formats.ErrInvalidOption, "chunk_size", chunk, minChunkSectors, maxChunkSectors)
	}
	chunks := (req.Size + chunk - 1) / chunk
	if chunks > 1<<32-1 {
		return nil, fmt.Errorf("%w: %s: %d chunks exceed EWF's 32-bit chunk count; use a larger chunk_size", formats.ErrInvalidOption, name, chunks)
	}
	segBytes := o.SegmentSize
	if segBytes < minSegmentBytes {
		return nil, fmt.Errorf("%w: %s=%d: at least %d bytes", formats.ErrInvalidOption, "segment_size", segBytes, minSegmentBytes)
	}
	w := &Writer{name: name, first: req.File, siblings: req.Siblings, size: req.Size, chunkBytes: chunk,
		segmentBytes: segBytes, compression: o.Compression, sectorsStart: -1,
		hashes: [2]hash.Hash{md5.New(), sha1.New()}}
	w.vol = volume{MediaType: mediaFixed, ChunkCount: uint32(chunks), SectorsPerChunk: uint32(sectors),
		BytesPerSector: sectorBytes, SectorCount: uint64(req.Size / sectorBytes),
		MediaFlags: flagImageFile | flagPhysical, ErrorGranularity: uint32(sectors)}
	switch w.compression {
	case compFast, compEmptyBlock:
		w.zlibLevel, w.vol.CompressionLevel = zlib.BestSpeed, levelGood
	case compBest:
		w.zlibLevel, w.vol.CompressionLevel = zlib.BestCompression, levelBest
	default:
		w.vol.CompressionLevel = levelNone
	}
	if w.compression == compEmptyBlock {
		w.vol.CompressionLevel = levelNone
	}
	if _, err := rand.Read(w.vol.SetID[:]); err != nil {
		return nil, err
	}
	// A version 4 (random) GUID, as EnCase writes, in the Microsoft layout
	// (little-endian fields) that libewf prints.
	w.vol.SetID[7] = w.vol.SetID[7]&0x0f | 0x40
	w.vol.SetID[8] = w.vol.SetID[8]&0x3f | 0x80
	return w, nil
}

// metadata builds the header values from the create options.
func metadata(opts formats.Options) (Metadata, error) {
	var o CreateOptions
	if err := opts.Decode(&o); err != nil {
		return Metadata{}, err
	}
	md := Metadata{CaseNumber: o.CaseNumber, EvidenceNumber: o.EvidenceNumber,
		Description: o.Description, Examiner: o.Examiner, Notes: o.Notes,
		SoftwareVersion: Software, Platform: platform()}
	for k, v := range map[string]string{"case_number": md.CaseNumber, "evidence_number": md.EvidenceNumber,
		"description": md.Description, "examiner": md.Examiner, "notes": md.Notes} {
		if err := checkValue(k, v); err != nil {
			return md, fmt.Errorf("%w: %v", formats.ErrInvalidOption, err)
		}
	}
	return md, nil
}

func platform() string {
	switch runtime.GOOS {
	case "freebsd":
		return "FreeBSD"
	case "darwin":
		return "Darwin"
	}
	return strings.ToUpper(runtime.GOOS[:1]) + runtime.GOOS[1:]
}

// writeFirstSections writes segment 1's file header, header2 (twice, as
// EnCase does), header and volume sections.
func (w *Writer) writeFirstSections(o formats.Options) error {
	md, err := metadata(o)
	if err != nil {
		return err
	}
	now := time.Now()
	w.openSegment(1, w.first)
	h2 := deflate(encodeUTF16(header2Text(md, now)))
	w.seg.section(secHeader2, h2)
	w.seg.section(secHeader2, h2)
	w.seg.section(secHeader, deflate([]byte(headerText(md, now))))
	w.seg.section(secVolume, w.vol.encode())
	if w.compression != compNone {
		var err error
		if w.zeroStored, err = w.deflateChunk(nil, make([]byte, w.chunkBytes)); err != nil {
			return err
		}
	}
	return w.seg.err
}

// start launches the compression workers, the hashers and the placer.
func (w *Writer) start() {
	workers := max(1, runtime.GOMAXPROCS(0))
	depth := int(max(int64(4*workers), min(256, (32<<20)/w.chunkBytes)))
	depth = max(workers+2, min(depth, int((128<<20)/w.chunkBytes)))
	w.bufs = make(chan []byte, depth)
	for range depth {
		w.bufs <- make([]byte, w.chunkBytes)
	}
	w.zeros = make([]byte, w.chunkBytes)
	w.work = make(chan *chunkJob, depth)
	w.place = make(chan *chunkJob, depth)
	for i := range w.hashIn {
		w.hashIn[i] = make(chan *chunkJob, depth)
	}
	w.outPool.New = func() any { b := make([]byte, 0, w.chunkBytes+w.chunkBytes/64+64); return &b }
	for range workers {
		w.wg.Go(func() {
			for job := range w.work {
				w.encode(job)
				close(job.ready)
			}
		})
	}
	for i := range w.hashIn {
		w.wg.Go(func() {
			for job := range w.hashIn[i] {
				w.hashes[i].Write(job.data)
				w.release(job)
			}
		})
	}
	w.wg.Go(func() {
		for job := range w.place {
			<-job.ready
			if w.failed() == nil {
				if err := w.placeChunk(job); err != nil {
					w.fail(err)
				}
			}
			w.release(job)
		}
	})
}

func (w *Writer) failed() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *Writer) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// release drops one reference to a job; the last returns its buffers.
func (w *Writer) release(job *chunkJob) {
	if job.refs.Add(-1) != 0 {
		return
	}
	if job.pooled {
		w.bufs <- job.data[:cap(job.data)]
	}
	if job.outBuf != nil {
		w.outPool.Put(job.outBuf)
	}
}

// encode prepares a chunk's stored form (a worker's job).
func (w *Writer) encode(job *chunkJob) {
	data := job.data
	switch {
	case w.compression == compNone, w.compression == compEmptyBlock && !uniform(data):
	case w.zeroStored != nil && int64(len(data)) == w.chunkBytes && zero.Is(data):
		job.out = w.zeroStored
		return
	default:
		bp := w.outPool.Get().(*[]byte)
		out, err := w.deflateChunk((*bp)[:0], data)
		if err == nil && len(out) < len(data) {
			*bp = out
			job.out, job.outBuf = out, bp
			return
		}
		w.outPool.Put(bp)
		if err != nil {
			w.fail(fmt.Errorf("%s: compressing chunk %d: %w", w.name, job.index, err))
		}
	}
	job.sum = sum(data)
}

// uniform reports whether p repeats one byte (ewfacquire's empty block).
func uniform(p []byte) bool {
	for i := 1; i < len(p); i++ {
		if p[i] != p[0] {
			return false
		}
	}
	return true
}

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }

func (w *Writer) deflateChunk(dst, data []byte) ([]byte, error) {
	aw := &appendWriter{b: dst}
	zw, _ := w.zpool.Get().(*zlib.Writer)
	if zw == nil {
		var err error
		if zw, err = zlib.NewWriterLevel(aw, w.zlibLevel); err != nil {
			return nil, err
		}
	} else {
		zw.Reset(aw)
	}
	defer w.zpool.Put(zw)
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return aw.b, nil
}

// Size is the disk size.
func (w *Writer) Size() int64 { return w.size }

// Format is "ewf".
func (w *Writer) Format() string { return Name }

// ClusterSize is the chunk size.
func (w *Writer) ClusterSize() int64 { return w.chunkBytes }

// Sequential is true: EWF is written in one increasing pass.
func (w *Writer) Sequential() bool { return true }

// ReadAt is refused: the image is written once, in order, and read after.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) {
	return 0, formats.Unsupportedf(w.name, "reading back an EWF image being written")
}

// Extents reports the whole disk as data.
func (w *Writer) Extents(off, length int64) ([]formats.Extent, error) {
	return imageio.AllData(off, min(length, w.size-off)), nil
}

// WriteAt accepts p at disk offset off, which must not be before what was
// already written; skipped bytes are zeros.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.stopped {
		return 0, fmt.Errorf("%s: the EWF image is finished (Flush or Close was called)", w.name)
	}
	if err := w.failed(); err != nil {
		return 0, err
	}
	if err := imageio.CheckWrite(w.name, len(p), off, w.size); err != nil {
		return 0, err
	}
	if off < w.pos {
		return 0, fmt.Errorf("%s: EWF is written in increasing order: a write at %d is before %d, already written", w.name, off, w.pos)
	}
	w.fillZeros(off)
	for done := 0; done < len(p); {
		job := w.current()
		within := w.pos - job.index*w.chunkBytes
		n := copy(job.data[within:], p[done:])
		done += n
		w.pos += int64(n)
		w.submitIfFull()
	}
	return len(p), nil
}

// current returns the chunk being assembled, starting one if needed.
func (w *Writer) current() *chunkJob {
	if w.cur == nil {
		idx := w.pos / w.chunkBytes
		buf := <-w.bufs
		w.cur = &chunkJob{index: idx, data: buf[:min(w.chunkBytes, w.size-idx*w.chunkBytes)], pooled: true}
	}
	return w.cur
}

// fillZeros advances to disk offset to with zeros: whole chunks share one
// zero buffer, partial ones are cleared in their own.
func (w *Writer) fillZeros(to int64) {
	for w.pos < to {
		idx := w.pos / w.chunkBytes
		chunkEnd := min(w.size, (idx+1)*w.chunkBytes)
		if w.cur == nil && to >= chunkEnd {
			w.submit(&chunkJob{index: idx, data: w.zeros[:chunkEnd-w.pos]})
			w.pos = chunkEnd
			continue
		}
		job := w.current()
		within := w.pos - idx*w.chunkBytes
		n := min(to, chunkEnd) - w.pos
		clear(job.data[within : within+n])
		w.pos += n
		w.submitIfFull()
	}
}

func (w *Writer) submitIfFull() {
	if job := w.cur; job != nil && w.pos == job.index*w.chunkBytes+int64(len(job.data)) {
		w.cur = nil
		w.submit(job)
	}
}

func (w *Writer) submit(job *chunkJob) {
	job.ready = make(chan struct{})
	job.refs.Store(3)
	w.work <- job
	w.place <- job
	for _, c := range w.hashIn {
		c <- job
	}
}

// stop ends the pipeline once every submitted chunk is placed and hashed.
func (w *Writer) stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	close(w.work)
	close(w.place)
	for _, c := range w.hashIn {
		close(c)
	}
	w.wg.Wait()
}

// Flush completes the image: the rest of the disk as zeros, the last
// tables, the data, digest (MD5 and SHA-1), hash (MD5) and done sections.
// Nothing can be written after it.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}

func (w *Writer) flush() error {
	if w.done {
		return w.failed()
	}
	if w.stopped {
		return fmt.Errorf("%s: the EWF image was closed unfinished", w.name)
	}
	if err := w.failed(); err == nil {
		w.fillZeros(w.size)
	}
	w.stop()
	if err := w.failed(); err != nil {
		return err
	}
	w.done = true
	if err := w.finish(w.hashes[0].Sum(nil), w.hashes[1].Sum(nil)); err != nil {
		w.fail(err)
		return err
	}
	return nil
}

// Close closes the segment files. An image written up to its last byte is
// completed first, as Flush does; one written only partway without a Flush
// (a conversion that failed or was interrupted) is left unfinished, with no
// done section, which readers refuse: completing it would mean hashing and
// storing the whole rest of the disk.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if !w.done && !w.stopped && w.pos == w.size && w.failed() == nil {
		err = w.flush()
	}
	w.stop()
	for _, s := range w.segs {
		ferr := s.flush()
		if cerr := s.f.Close(); err == nil {
			err = cmp.Or(ferr, cerr)
		}
	}
	w.segs = nil
	return err
}

// Digests returns the MD5 and SHA-1 stored by Flush (nil before it).
func (w *Writer) Digests() (md5, sha1 []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		return nil, nil
	}
	return w.hashes[0].Sum(nil), w.hashes[1].Sum(nil)
}

// tableBytes is the size of a table (or table2) section of n entries.
func tableBytes(n int) int64 {
	return descriptorBytes + tableHeaderBytes + int64(n)*tableEntryBytes + checksumBytes
}

// placeChunk appends a chunk to the open sectors section, first closing the
// section when its table is full and the segment file when the chunk and
// what must follow it would not fit.
func (w *Writer) placeChunk(job *chunkJob) error {
	stored := int64(len(job.out))
	if job.out == nil {
		stored = int64(len(job.data)) + checksumBytes
	}
	if w.sectorsStart >= 0 && (len(w.entries) == maxTableEntries || w.seg.pos-w.sectorsStart > maxEntryOffset) {
		w.closeSectors()
	}
	need := w.seg.pos + stored + 2*tableBytes(len(w.entries)+1) + endReserve
	if w.sectorsStart < 0 {
		need += descriptorBytes
	}
	if w.segChunks > 0 && need > w.segmentBytes {
		if err := w.nextSegment(); err != nil {
			return err
		}
	}
	if w.sectorsStart < 0 {
		w.sectorsStart = w.seg.pos
		w.seg.write(make([]byte, descriptorBytes)) // written by closeSectors
	}
	entry := uint32(w.seg.pos - w.sectorsStart)
	if job.out != nil {
		entry |= entryCompressed
		w.seg.write(job.out)
	} else {
		w.seg.write(job.data)
		w.seg.write(binary.LittleEndian.AppendUint32(nil, job.sum))
	}
	w.entries = append(w.entries, entry)
	w.segChunks++
	return w.seg.err
}

// closeSectors writes the open sectors section's descriptor and its table
// and table2 sections.
func (w *Writer) closeSectors() {
	if w.sectorsStart < 0 {
		return
	}
	s := w.seg
	s.patch(descriptor{Type: secSectors, Next: uint64(s.pos), Size: uint64(s.pos - w.sectorsStart)}.encode(), w.sectorsStart)
	body := tableHeader{Entries: uint32(len(w.entries)), Base: uint64(w.sectorsStart)}.encode()
	start := len(body)
	for _, e := range w.entries {
		body = binary.LittleEndian.AppendUint32(body, e)
	}
	body = binary.LittleEndian.AppendUint32(body, sum(body[start:]))
	s.section(secTable, body)
	s.section(secTable2, body)
	w.entries = w.entries[:0]
	w.sectorsStart = -1
}

// nextSegment ends the current segment file with a next section and starts
// the following one.
func (w *Writer) nextSegment() error {
	w.closeSectors()
	w.seg.marker(secNext)
	if err := w.seg.flush(); err != nil {
		return err
	}
	n := len(w.segs) + 1
	path, err := segmentName(w.name, n)
	if err != nil {
		return fmt.Errorf("%s: %w; use a larger segment_size", w.name, err)
	}
	f, err := w.siblings(filepath.Base(path))
	if err != nil {
		return err
	}
	w.openSegment(n, f)
	w.seg.section(secData, w.vol.encode())
	return w.seg.err
}

func (w *Writer) openSegment(n int, f formats.File) {
	w.seg = &segFile{f: f, name: f.Name(), buf: make([]byte, 0, segBufferBytes)}
	w.segs = append(w.segs, w.seg)
	w.segChunks = 0
	w.seg.write(fileHeader{Segment: uint16(n)}.encode())
}

// finish writes the end of the last segment file.
func (w *Writer) finish(md5, sha1 []byte) error {
	w.closeSectors()
	s := w.seg
	if len(w.segs) == 1 {
		s.section(secData, w.vol.encode())
	}
	s.section(secDigest, encodeDigest(md5, sha1))
	s.section(secHash, encodeHash(md5))
	s.marker(secDone)
	return s.flush()
}

// segFile is a segment file being written from its start, through a buffer.
type segFile struct {
	f        formats.File
	name     string
	pos      int64 // next file offset
	buf      []byte
	bufStart int64 // file offset of buf[0]
	err      error
}

func (s *segFile) write(p []byte) {
	if s.err != nil {
		return
	}
	if len(s.buf)+len(p) > cap(s.buf) {
		s.flush()
	}
	if len(p) > cap(s.buf) {
		if _, err := s.f.WriteAt(p, s.pos); err != nil {
			s.err = err
		}
		s.pos += int64(len(p))
		s.bufStart = s.pos
		return
	}
	s.buf = append(s.buf, p...)
	s.pos += int64(len(p))
}

func (s *segFile) flush() error {
	if s.err == nil && len(s.buf) > 0 {
		if _, err := s.f.WriteAt(s.buf, s.bufStart); err != nil {
			s.err = fmt.Errorf("%s: %w", s.name, err)
		}
	}
	s.buf = s.buf[:0]
	s.bufStart = s.pos
	return s.err
}

// patch overwrites bytes already written at off.
func (s *segFile) patch(p []byte, off int64) {
	if s.err != nil {
		return
	}
	if off >= s.bufStart {
		copy(s.buf[off-s.bufStart:], p)
		return
	}
	if off+int64(len(p)) > s.bufStart {
		s.flush()
	}
	if _, err := s.f.WriteAt(p, off); err != nil && s.err == nil {
		s.err = fmt.Errorf("%s: %w", s.name, err)
	}
}

// section writes a section: descriptor and body.
func (s *segFile) section(typ string, body []byte) {
	size := uint64(descriptorBytes + len(body))
	s.write(descriptor{Type: typ, Next: uint64(s.pos) + size, Size: size}.encode())
	s.write(body)
}

// marker writes a next or done section (it points to itself, size 0).
func (s *segFile) marker(typ string) {
	s.write(descriptor{Type: typ, Next: uint64(s.pos)}.encode())
}
