package ntfs

import (
	"encoding/binary"
	"io"
	"sync"
)

// compressedReader reads a compressed attribute one compression unit at a
// time. A unit whose clusters are all allocated is stored whole; one with
// no allocated cluster is zeros; otherwise its allocated clusters hold
// LZNT1 chunks that decompress to the unit.
type compressedReader struct {
	rr        *runReader
	unitBytes int64

	mu       sync.Mutex
	cacheIdx int64 // unit held in cache, -1 for none
	cache    []byte
}

func newCompressedReader(rr *runReader, unitClusters int64) *compressedReader {
	return &compressedReader{rr: rr, unitBytes: unitClusters * rr.v.ClusterBytes, cacheIdx: -1}
}

func (c *compressedReader) ReadAt(p []byte, off int64) (int, error) {
	size := c.rr.size
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), size-off)]
	c.mu.Lock()
	defer c.mu.Unlock()
	for done := 0; done < len(p); {
		pos := off + int64(done)
		unit := pos / c.unitBytes
		data, err := c.unit(unit)
		if err != nil {
			return done, err
		}
		n := copy(p[done:], data[pos-unit*c.unitBytes:])
		done += n
	}
	if off+int64(len(p)) > c.rr.init {
		clear(p[max(0, c.rr.init-off):])
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// unit returns the decompressed bytes of compression unit u.
func (c *compressedReader) unit(u int64) ([]byte, error) {
	if c.cacheIdx == u {
		return c.cache, nil
	}
	cb := c.rr.v.ClusterBytes
	clusters := c.unitBytes / cb
	first := u * clusters
	allocated := int64(0)
	for _, r := range c.rr.runs {
		lo, hi := max(r.vcn, first), min(r.vcn+r.length, first+clusters)
		if lo < hi && r.lcn >= 0 {
			allocated += hi - lo
		}
	}
	out := make([]byte, c.unitBytes)
	switch {
	case allocated == 0:
	case allocated == clusters:
		if err := readRuns(c.rr.v, c.rr.runs, out, first*cb); err != nil {
			return nil, err
		}
	default:
		comp := make([]byte, allocated*cb)
		if err := readRuns(c.rr.v, c.rr.runs, comp, first*cb); err != nil {
			return nil, err
		}
		if err := lznt1(out, comp); err != nil {
			return nil, corrupt("compression unit %d: %v", u, err)
		}
	}
	c.cacheIdx, c.cache = u, out
	return out, nil
}

// lznt1 decompresses LZNT1 chunks from src into dst (whose length is the
// unit size). Each chunk has a 16-bit header: bit 15 set when compressed,
// bits 0-11 its size minus 3; an uncompressed chunk is 4096 raw bytes. A
// compressed chunk is groups of a flag byte and eight tokens: a literal
// byte (bit clear) or a 16-bit back reference whose split between offset
// and length bits depends on how far into the 4096-byte chunk it is.
func lznt1(dst, src []byte) error {
	out := 0
	for in := 0; in+2 <= len(src) && out < len(dst); {
		hdr := binary.LittleEndian.Uint16(src[in:])
		if hdr == 0 {
			break
		}
		size := int(hdr&0x0FFF) + 1
		in += 2
		if in+size > len(src) {
			return errLZNT1("chunk runs past the compressed data")
		}
		chunk := src[in : in+size]
		in += size
		limit := min(out+4096, len(dst))
		if hdr&0x8000 == 0 {
			copy(dst[out:limit], chunk)
			out = limit
			continue
		}
		start := out
		for ci := 0; ci < len(chunk) && out < limit; {
			flags := chunk[ci]
			ci++
			for bit := 0; bit < 8 && ci < len(chunk) && out < limit; bit++ {
				if flags&(1<<bit) == 0 {
					dst[out] = chunk[ci]
					out++
					ci++
					continue
				}
				if ci+2 > len(chunk) {
					return errLZNT1("back reference cut short")
				}
				tok := int(binary.LittleEndian.Uint16(chunk[ci:]))
				ci += 2
				lg := 0
				for i := out - start - 1; i >= 0x10; i >>= 1 {
					lg++
				}
				back := (tok >> (12 - lg)) + 1
				length := (tok & (0xFFF >> lg)) + 3
				if back > out-start {
					return errLZNT1("back reference before the chunk")
				}
				for k := 0; k < length && out < limit; k++ {
					dst[out] = dst[out-back]
					out++
				}
			}
		}
		// Every chunk stands for 4096 bytes; a short one ends in zeros.
		out = limit
	}
	return nil
}

type errLZNT1 string

func (e errLZNT1) Error() string { return "LZNT1: " + string(e) }
