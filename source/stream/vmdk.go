package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zlib"

	"github.com/vdiskio/vdisk/formats"
)

// The hosted sparse extent header (VMware Virtual Disk Format 1.1,
// SparseExtentHeader), little-endian, sizes in 512-byte sectors: the
// fields a stream needs.
const (
	sectorBytes      = 512
	kdmvMagic        = 0x564D444B // 0: "KDMV"
	kdmvVersionAt    = 4          // 4: version (u32)
	kdmvFlagsAt      = 8          // 8: flags (u32)
	kdmvCapacityAt   = 12         // 12: capacity (u64)
	kdmvGrainAt      = 20         // 20: grain size (u64)
	kdmvOverHeadAt   = 64         // 64: sectors before the first grain (u64)
	kdmvCompressAt   = 77         // 77: compress algorithm (u16), 1 = deflate
	flagCompressed   = 1 << 16
	flagMarkers      = 1 << 17
	compressDeflate  = 1
	maxGrainSectors  = 2048     // 1 MiB grains; writers use 128 (64 KiB)
	maxOverHeadBytes = 64 << 20 // header, descriptor and tables before the first grain
	grainMarkerBytes = 12       // LBA (u64) and compressed size (u32) before a grain's data
)

// Metadata marker types (the u32 at offset 12 of a marker whose size is 0).
const (
	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3
)

// isStreamOptimized says whether head starts with a sparse extent header
// of a stream (compressed grains with markers).
func isStreamOptimized(head []byte) bool {
	if len(head) < sectorBytes {
		return false
	}
	le := binary.LittleEndian
	flags := le.Uint32(head[kdmvFlagsAt:])
	return le.Uint32(head) == kdmvMagic && flags&flagCompressed != 0 && flags&flagMarkers != 0
}

// vmdkHeader is what a stream's header says.
type vmdkHeader struct {
	capacityBytes int64
	grainBytes    int64
	overHeadBytes int64
}

// parseVMDKHeader checks a stream's header against the limits.
func parseVMDKHeader(name string, b []byte, maxVirtual int64) (vmdkHeader, error) {
	le := binary.LittleEndian
	bad := func(format string, args ...any) (vmdkHeader, error) {
		return vmdkHeader{}, formats.Corruptf(name, "VMDK sparse header", 0, format, args...)
	}
	if !isStreamOptimized(b) {
		return bad("not a streamOptimized header (KDMV with compressed grains and markers)")
	}
	if v := le.Uint32(b[kdmvVersionAt:]); v < 1 || v > 3 {
		return vmdkHeader{}, formats.Unsupportedf(name, "VMDK sparse header version %d", v)
	}
	if a := le.Uint16(b[kdmvCompressAt:]); a != compressDeflate {
		return vmdkHeader{}, formats.Unsupportedf(name, "VMDK compress algorithm %d (only 1, deflate)", a)
	}
	capacity, grain, overHead := le.Uint64(b[kdmvCapacityAt:]), le.Uint64(b[kdmvGrainAt:]), le.Uint64(b[kdmvOverHeadAt:])
	switch {
	case grain < 1 || grain > maxGrainSectors || grain&(grain-1) != 0:
		return bad("grain size %d sectors (want a power of two up to %d)", grain, maxGrainSectors)
	case capacity == 0 || capacity > uint64(maxVirtual)/sectorBytes:
		return bad("capacity %d sectors (want 1 to %d)", capacity, maxVirtual/sectorBytes)
	case overHead < 1 || overHead > maxOverHeadBytes/sectorBytes:
		return bad("overhead %d sectors (want 1 to %d)", overHead, maxOverHeadBytes/sectorBytes)
	}
	return vmdkHeader{capacityBytes: int64(capacity) * sectorBytes, grainBytes: int64(grain) * sectorBytes,
		overHeadBytes: int64(overHead) * sectorBytes}, nil
}

// countingReader counts the bytes read: the stream offset errors name.
type countingReader struct {
	r   io.Reader
	off int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.off += int64(n)
	return n, err
}

// vmdkProducer decodes a streamOptimized VMDK's grains into the window.
type vmdkProducer struct {
	w      *window
	hdr    vmdkHeader
	in     *countingReader
	pos    int64  // decoded bytes written to the window so far
	stored []byte // a grain's compressed bytes
	grain  []byte // a grain decoded
	zr     io.ReadCloser
}

func (p *vmdkProducer) corrupt(off int64, format string, args ...any) error {
	return formats.Corruptf(p.w.name, "VMDK stream", off, format, args...)
}

// readFull reads len(b) bytes of the stream; a short stream is
// truncation, named with what was being read.
func (p *vmdkProducer) readFull(b []byte, what string) error {
	at := p.in.off
	if _, err := io.ReadFull(p.in, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return p.corrupt(at, "truncated: the stream ends in %s, before its end-of-stream marker", what)
		}
		return fmt.Errorf("%s: reading the stream at offset %d: %w", p.w.name, at, err)
	}
	return nil
}

func (p *vmdkProducer) skip(n int64, what string) error {
	at := p.in.off
	if m, err := io.CopyN(io.Discard, p.in, n); m < n {
		if err == nil || errors.Is(err, io.EOF) {
			return p.corrupt(at, "truncated: the stream ends in %s, before its end-of-stream marker", what)
		}
		return fmt.Errorf("%s: reading the stream at offset %d: %w", p.w.name, at, err)
	}
	return nil
}

// run decodes the markers after the header until the end-of-stream
// marker, then pads the disk to its capacity with zeros.
func (p *vmdkProducer) run() error {
	if err := p.skip(p.hdr.overHeadBytes-sectorBytes, "the descriptor before the first grain"); err != nil {
		return err
	}
	var head [grainMarkerBytes]byte
	le := binary.LittleEndian
	for {
		at := p.in.off
		if at%sectorBytes != 0 {
			return p.corrupt(at, "marker not on a sector boundary")
		}
		if err := p.readFull(head[:], "a marker"); err != nil {
			return err
		}
		value, size := le.Uint64(head[:8]), le.Uint32(head[8:])
		if size != 0 {
			if err := p.grainAt(at, value, int64(size)); err != nil {
				return err
			}
			continue
		}
		var rest [sectorBytes - grainMarkerBytes]byte
		if err := p.readFull(rest[:], "a metadata marker"); err != nil {
			return err
		}
		typ := le.Uint32(rest[:4])
		switch typ {
		case markerEOS:
			return p.w.zeros(p.hdr.capacityBytes - p.pos)
		case markerGT, markerGD, markerFooter:
			if value > uint64(p.hdr.capacityBytes/sectorBytes)+maxOverHeadBytes/sectorBytes {
				return p.corrupt(at, "metadata marker of type %d says %d sectors follow, more than a disk of %d bytes has", typ, value, p.hdr.capacityBytes)
			}
			if err := p.skip(int64(value)*sectorBytes, "metadata"); err != nil {
				return err
			}
		default:
			return p.corrupt(at, "unknown marker type %d", typ)
		}
	}
}

// grainAt reads and decodes the grain whose marker is at off: LBA lba,
// size compressed bytes.
func (p *vmdkProducer) grainAt(off int64, lba uint64, size int64) error {
	g := p.hdr.grainBytes
	switch {
	case size > 2*g+sectorBytes:
		return p.corrupt(off, "grain marker: %d compressed bytes for a grain of %d bytes", size, g)
	case lba >= uint64(p.hdr.capacityBytes/sectorBytes):
		return p.corrupt(off, "grain at sector %d, past the capacity of %d sectors", lba, p.hdr.capacityBytes/sectorBytes)
	case int64(lba)*sectorBytes%g != 0:
		return p.corrupt(off, "grain at sector %d is not on a grain boundary (%d sectors)", lba, g/sectorBytes)
	case int64(lba)*sectorBytes < p.pos:
		return p.corrupt(off, "grain at sector %d is out of order: the stream has already passed sector %d (grains must come in increasing order to be streamed)", lba, p.pos/sectorBytes)
	}
	if int64(cap(p.stored)) < size {
		p.stored = make([]byte, size)
	}
	stored := p.stored[:size]
	if err := p.readFull(stored, "a grain's data"); err != nil {
		return err
	}
	if pad := (grainMarkerBytes + size) % sectorBytes; pad != 0 {
		if err := p.skip(sectorBytes-pad, "a grain's padding"); err != nil {
			return err
		}
	}
	n, err := p.inflate(stored)
	if err != nil {
		return p.corrupt(off+grainMarkerBytes, "grain at sector %d: %v", lba, err)
	}
	start := int64(lba) * sectorBytes
	n = int(min(int64(n), p.hdr.capacityBytes-start)) // a last grain past the capacity is cut
	if err := p.w.zeros(start - p.pos); err != nil {
		return err
	}
	if err := p.w.write(p.grain[:n]); err != nil {
		return err
	}
	p.pos = start + int64(n)
	return nil
}

// inflate decodes one grain's zlib stream into p.grain; more than a
// grain is an error.
func (p *vmdkProducer) inflate(stored []byte) (int, error) {
	src := bytes.NewReader(stored)
	if p.zr == nil {
		zr, err := zlib.NewReader(src)
		if err != nil {
			return 0, err
		}
		p.zr = zr
	} else if err := p.zr.(zlib.Resetter).Reset(src, nil); err != nil {
		return 0, err
	}
	if p.grain == nil {
		p.grain = make([]byte, p.hdr.grainBytes+1)
	}
	n := 0
	for {
		m, err := p.zr.Read(p.grain[n:])
		n += m
		if n > int(p.hdr.grainBytes) {
			return 0, fmt.Errorf("decompresses past its grain of %d bytes", p.hdr.grainBytes)
		}
		if err == io.EOF {
			break // the zlib stream's end, its Adler-32 verified
		}
		if err != nil {
			return 0, err
		}
	}
	if n == 0 {
		return 0, errors.New("decompresses to nothing")
	}
	return n, nil
}
