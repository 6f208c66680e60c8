package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/cache"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/zero"
)

// sparseExtent is an open hosted sparse extent (KDMV): its header, grain
// directory in memory and grain tables read on demand through a cache.
type sparseExtent struct {
	f          formats.File
	name       string
	hdr        sparseHeader
	fileSize   int64
	grainBytes int64
	gtEntries  int64    // GTEs per GT
	gd         []uint32 // GT sector offsets
	compressed bool
	markers    bool
	zeroed     bool // GTE 1 is a zeroed grain
	cache      *gtCache
	inflaters  sync.Pool // zlib readers
	bufs       bufPool
}

// maxCompressedGrain bounds the grain size of compressed extents, whose
// grains are inflated in memory (VMware writes 64 KiB).
const maxCompressedGrain = 16 << 20

// grain states returned by lookup.
const (
	grainUnallocated = iota
	grainZero
	grainData
)

// openSparse validates the header of a hosted sparse extent in f and loads
// its grain directory.
func openSparse(f formats.File, hdrBytes []byte, lim formats.Limits, cache *gtCache) (*sparseExtent, error) {
	name := f.Name()
	h := decodeHeader(hdrBytes)
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	s := &sparseExtent{f: f, name: name, hdr: h, fileSize: size, cache: cache}
	if err := s.checkHeader(lim); err != nil {
		return nil, err
	}
	if h.GDOffset == gdAtEnd {
		if err := s.readFooter(); err != nil {
			return nil, err
		}
	}
	if err := s.loadGD(lim); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sparseExtent) checkHeader(lim formats.Limits) error {
	h := &s.hdr
	switch {
	case h.Magic != sparseMagic:
		return formats.Corruptf(s.name, "sparse header", 0, "bad magic 0x%08x", h.Magic)
	case h.Version < 1 || h.Version > 3:
		return formats.Unsupportedf(s.name, "VMDK sparse extent version %d (supported: 1-3)", h.Version)
	case h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > defaultGTEs:
		return formats.Limitf(s.name, "sparse header", 44, "numGTEsPerGT %d outside 1..%d", h.NumGTEsPerGT, defaultGTEs)
	case h.GrainSize == 0 || h.GrainSize > maxGrainSector:
		return formats.Limitf(s.name, "sparse header", 20, "grain size %d sectors outside 1..%d", h.GrainSize, maxGrainSector)
	case h.Capacity > uint64(1<<63-1)/sectorSize:
		return formats.Limitf(s.name, "sparse header", 12, "capacity %d sectors overflows", h.Capacity)
	case h.CompressAlgo > compressDeflate:
		return formats.Unsupportedf(s.name, "VMDK compression algorithm %d", h.CompressAlgo)
	}
	if err := lim.CheckVirtualSize(s.name, int64(h.Capacity)*sectorSize); err != nil {
		return err
	}
	if h.OverHead > uint64(s.fileSize)/sectorSize {
		return formats.Corruptf(s.name, "sparse header", 64, "file truncated: grains start at sector %d past the end of the %d-byte file", h.OverHead, s.fileSize)
	}
	s.grainBytes = int64(h.GrainSize) * sectorSize
	if h.CompressAlgo == compressDeflate && s.grainBytes > maxCompressedGrain {
		return formats.Limitf(s.name, "sparse header", 20, "compressed grains of %d bytes exceed %d", s.grainBytes, maxCompressedGrain)
	}
	s.gtEntries = int64(h.NumGTEsPerGT)
	s.compressed = h.CompressAlgo == compressDeflate
	s.markers = h.Flags&flagMarkers != 0
	s.zeroed = h.Flags&flagZeroedGrain != 0 && h.Version >= 2
	return nil
}

// gdEntries is the number of GD entries the capacity needs.
func (s *sparseExtent) gdEntries() uint64 {
	grains := ceilDiv(s.hdr.Capacity, s.hdr.GrainSize)
	return ceilDiv(grains, uint64(s.hdr.NumGTEsPerGT))
}

func ceilDiv(a, b uint64) uint64 { return a/b + min(a%b, 1) }

// readFooter reads the stream footer (GD_AT_END layout): footer marker at
// EOF-1536, footer header at EOF-1024, end-of-stream marker at EOF-512. The
// footer's grain directory offset replaces the header's.
func (s *sparseExtent) readFooter() error {
	if s.fileSize < 3*sectorSize+headerSize {
		return formats.Corruptf(s.name, "footer", -1, "file too short for a footer")
	}
	off := s.fileSize - 3*sectorSize
	buf := make([]byte, 3*sectorSize)
	if _, err := s.f.ReadAt(buf, off); err != nil && err != io.EOF {
		return fmt.Errorf("%s: reading footer: %w", s.name, err)
	}
	m := decodeMarker(buf)
	if m.Size != 0 || m.Type != markerFooter || m.Value != 1 || !zero.Is(buf[16:sectorSize]) {
		return formats.Corruptf(s.name, "footer marker", off, "invalid footer marker")
	}
	if !zero.Is(buf[2*sectorSize:]) {
		return formats.Corruptf(s.name, "end-of-stream marker", off+2*sectorSize, "not all zeros")
	}
	ft := decodeHeader(buf[sectorSize : 2*sectorSize])
	h := s.hdr
	if ft.Magic != h.Magic || ft.Version != h.Version || ft.DescriptorOffset != h.DescriptorOffset ||
		ft.DescriptorSize != h.DescriptorSize || ft.Capacity != h.Capacity || ft.GrainSize != h.GrainSize ||
		ft.NumGTEsPerGT != h.NumGTEsPerGT || ft.CompressAlgo != h.CompressAlgo {
		return formats.Corruptf(s.name, "footer", off+sectorSize, "footer disagrees with the header")
	}
	if ft.GDOffset == gdAtEnd {
		return formats.Corruptf(s.name, "footer", off+sectorSize, "footer announces another footer")
	}
	s.hdr.GDOffset = ft.GDOffset
	s.hdr.RGDOffset = ft.RGDOffset
	s.hdr.Flags = ft.Flags
	return nil
}

// loadGD reads the grain directory.
func (s *sparseExtent) loadGD(lim formats.Limits) error {
	n := s.gdEntries()
	if n > maxGDEntries {
		return formats.Limitf(s.name, "grain directory", -1, "%d entries exceed %d", n, maxGDEntries)
	}
	gdOff := int64(s.hdr.GDOffset) * sectorSize
	if err := lim.CheckTable(s.name, "grain directory", gdOff, n, gteBytes); err != nil {
		return err
	}
	if s.hdr.GDOffset > uint64(s.fileSize)/sectorSize || uint64(s.fileSize-gdOff) < n*gteBytes {
		return formats.Corruptf(s.name, "grain directory", gdOff, "%d entries extend past the end of the %d-byte file", n, s.fileSize)
	}
	if s.hdr.GDOffset == 0 && n > 0 {
		return formats.Corruptf(s.name, "sparse header", 56, "grain directory offset is 0")
	}
	if err := s.cache.Budget().Charge(s.name, "grain directory", gdOff, int64(n*gteBytes)); err != nil {
		return err
	}
	s.gd = make([]uint32, n)
	gtBytes := uint64(s.gtEntries * gteBytes)
	var bad error
	err := fileio.ReadChunks(s.f, gdOff, int64(n*gteBytes), gteBytes, func(chunk []byte, rel int64) {
		first := int(rel / gteBytes)
		for k := range len(chunk) / gteBytes {
			i, e := first+k, binary.LittleEndian.Uint32(chunk[k*gteBytes:])
			if e != 0 && uint64(e)*sectorSize+gtBytes > uint64(s.fileSize) && bad == nil {
				bad = formats.Corruptf(s.name, "grain directory", gdOff+int64(i)*gteBytes,
					"entry %d points to sector %d past the end of the file", i, e)
			}
			s.gd[i] = e
		}
	})
	if err != nil {
		return fmt.Errorf("%s: reading grain directory: %w", s.name, err)
	}
	return bad
}

// lookup maps extent offset off to its grain state and the host byte offset
// of the grain (for compressed grains, of its marker or data).
func (s *sparseExtent) lookup(off int64) (state int, host int64, err error) {
	g := off / s.grainBytes
	gdi := g / s.gtEntries
	if gdi >= int64(len(s.gd)) || s.gd[gdi] == 0 {
		return grainUnallocated, -1, nil
	}
	gt, err := s.table(gdi)
	if err != nil {
		return 0, 0, err
	}
	gte := gt[g%s.gtEntries]
	switch {
	case gte == 0:
		return grainUnallocated, -1, nil
	case gte == zeroedGrainGTE && s.zeroed:
		return grainZero, -1, nil
	}
	host = int64(gte) * sectorSize
	if host >= s.fileSize {
		return 0, 0, formats.Corruptf(s.name, "grain table", int64(s.gd[gdi])*sectorSize+g%s.gtEntries*gteBytes,
			"grain %d at sector %d past the end of the file", g, gte)
	}
	return grainData, host, nil
}

// contiguous extends a read of chunk bytes at extent offset off, whose
// grain is stored at host, over the following grains while they are stored
// right after it, up to limit bytes; one ReadAt then serves them all.
func (s *sparseExtent) contiguous(off, chunk, host, limit int64) (int64, error) {
	next := host - off%s.grainBytes + s.grainBytes
	for chunk < limit {
		state, h, err := s.lookup(off + chunk)
		if err != nil {
			return 0, err
		}
		if state != grainData || h != next {
			break
		}
		chunk = min(limit, chunk+s.grainBytes)
		next += s.grainBytes
	}
	return chunk, nil
}

// table returns grain table gdi, from the cache or the file.
func (s *sparseExtent) table(gdi int64) ([]uint32, error) {
	key := gtKey{s, gdi}
	if gt, ok := s.cache.Get(key); ok {
		return gt, nil
	}
	raw := make([]byte, s.gtEntries*gteBytes)
	off := int64(s.gd[gdi]) * sectorSize
	if _, err := s.f.ReadAt(raw, off); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: reading grain table at %d: %w", s.name, off, err)
	}
	gt := make([]uint32, s.gtEntries)
	for i := range gt {
		gt[i] = binary.LittleEndian.Uint32(raw[i*gteBytes:])
	}
	s.cache.Put(key, gt, false)
	return gt, nil
}

// readGrain reads p from the grain holding extent offset off (p stays within
// the grain), given the grain's state and host offset.
func (s *sparseExtent) readGrain(p []byte, off int64, host int64) error {
	inGrain := off % s.grainBytes
	if !s.compressed {
		n, err := s.f.ReadAt(p, host+inGrain)
		if err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading grain at %d: %w", s.name, host, err)
		}
		clear(p[n:]) // past EOF reads as zeros, as qemu's file layer does
		return nil
	}
	bp := s.bufs.get(int(s.grainBytes) + 1)
	defer s.bufs.put(bp)
	grain, err := s.inflateGrain(off/s.grainBytes, host, *bp)
	if err != nil {
		return err
	}
	n := copy(p, grain[min(inGrain, int64(len(grain))):])
	clear(p[n:])
	return nil
}

// bufPool recycles grain-sized buffers (inflated and compressed grains).
type bufPool struct{ p sync.Pool }

func (b *bufPool) get(n int) *[]byte {
	if bp, ok := b.p.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	buf := make([]byte, n)
	return &buf
}

func (b *bufPool) put(bp *[]byte) { b.p.Put(bp) }

// maxCompressedBytes bounds the compressed size of one grain (zlib can
// expand incompressible data slightly).
func (s *sparseExtent) maxCompressedBytes() int64 {
	return s.grainBytes + s.grainBytes/8 + 1024
}

// inflateGrain decompresses grain g stored at host into out (grainBytes+1
// bytes) and returns the inflated part.
func (s *sparseExtent) inflateGrain(g, host int64, out []byte) ([]byte, error) {
	var data []byte
	if s.markers {
		var mk [grainMarkerSize]byte
		if _, err := s.f.ReadAt(mk[:], host); err != nil {
			return nil, fmt.Errorf("%s: reading grain marker at %d: %w", s.name, host, err)
		}
		lba := binary.LittleEndian.Uint64(mk[0:])
		size := int64(binary.LittleEndian.Uint32(mk[8:]))
		if size == 0 || size > s.maxCompressedBytes() || size > s.fileSize-host-grainMarkerSize {
			return nil, formats.Corruptf(s.name, "grain marker", host, "compressed size %d invalid", size)
		}
		if lba != uint64(g)*s.hdr.GrainSize {
			return nil, formats.Corruptf(s.name, "grain marker", host, "marker LBA %d, grain %d expects %d", lba, g, uint64(g)*s.hdr.GrainSize)
		}
		dp := s.bufs.get(int(size))
		defer s.bufs.put(dp)
		data = *dp
		if _, err := s.f.ReadAt(data, host+grainMarkerSize); err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s: reading grain at %d: %w", s.name, host, err)
		}
	} else {
		size := min(s.maxCompressedBytes(), s.fileSize-host)
		dp := s.bufs.get(int(size))
		defer s.bufs.put(dp)
		data = *dp
		n, err := s.f.ReadAt(data, host)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s: reading grain at %d: %w", s.name, host, err)
		}
		data = data[:n]
	}
	var zr io.ReadCloser
	var err error
	if pooled, ok := s.inflaters.Get().(io.ReadCloser); ok {
		zr, err = pooled, pooled.(zlib.Resetter).Reset(bytes.NewReader(data), nil)
	} else {
		zr, err = zlib.NewReader(bytes.NewReader(data))
	}
	if err != nil {
		return nil, formats.Corruptf(s.name, "compressed grain", host, "%v", err)
	}
	defer s.inflaters.Put(zr)
	n, err := io.ReadFull(zr, out)
	switch {
	case n > int(s.grainBytes):
		return nil, formats.Corruptf(s.name, "compressed grain", host, "inflates past the %d-byte grain", s.grainBytes)
	case err != nil && err != io.ErrUnexpectedEOF && err != io.EOF:
		return nil, formats.Corruptf(s.name, "compressed grain", host, "%v", err)
	}
	return out[:n], nil
}

// gtKey names one grain table of one extent.
type gtKey struct {
	ext *sparseExtent
	gdi int64
}

// gtCache is the bounded cache of grain tables shared by an image's
// extents (internal/cache: LRU, charged to the image's metadata budget,
// which the whole chain shares).
type gtCache = cache.Cache[gtKey, []uint32]

func newGTCache(bytes int64, budget *formats.Budget) *gtCache {
	return cache.New[gtKey, []uint32](int(max(bytes/(defaultGTEs*gteBytes), 4)), budget,
		func(gt []uint32) int64 { return int64(len(gt)) * gteBytes })
}
