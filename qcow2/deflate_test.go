package qcow2

import (
	"bytes"
	"math/rand"
	"testing"
)

// A minimal RFC 1951 decoder that records the largest back-reference
// distance, to prove vdisk's compressed clusters stay inside the 4 KiB
// window qemu inflates with.

type bitReader struct {
	data []byte
	pos  int // bit position
}

func (b *bitReader) bits(n int) int {
	v := 0
	for i := range n {
		byteI := b.pos >> 3
		if byteI >= len(b.data) {
			panic("deflate stream truncated")
		}
		v |= int(b.data[byteI]>>(b.pos&7)&1) << i
		b.pos++
	}
	return v
}

// huffman is a canonical Huffman code: symbols by code length.
type huffman struct {
	counts  [16]int
	symbols []int
}

func newHuffman(lengths []int) *huffman {
	h := &huffman{}
	for _, l := range lengths {
		h.counts[l]++
	}
	h.counts[0] = 0
	offs := [16]int{}
	for i := 1; i < 16; i++ {
		offs[i] = offs[i-1] + h.counts[i-1]
	}
	h.symbols = make([]int, len(lengths))
	for s, l := range lengths {
		if l != 0 {
			h.symbols[offs[l]] = s
			offs[l]++
		}
	}
	return h
}

func (h *huffman) decode(b *bitReader) int {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= b.bits(1)
		count := h.counts[l]
		if code-count < first {
			return h.symbols[index+(code-first)]
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	panic("bad huffman code")
}

var (
	lenBase  = []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	dstBase  = []int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	dstExtra = []int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// inflateMaxDistance decodes a raw deflate stream, returning the output and
// the largest distance used.
func inflateMaxDistance(data []byte) (out []byte, maxDist int) {
	b := &bitReader{data: data}
	for {
		final := b.bits(1)
		switch b.bits(2) {
		case 0:
			b.pos = (b.pos + 7) &^ 7
			n := b.bits(16)
			b.bits(16)
			for range n {
				out = append(out, byte(b.bits(8)))
			}
		case 1:
			lens := make([]int, 288)
			for i := range lens {
				switch {
				case i < 144:
					lens[i] = 8
				case i < 256:
					lens[i] = 9
				case i < 280:
					lens[i] = 7
				default:
					lens[i] = 8
				}
			}
			d := make([]int, 30)
			for i := range d {
				d[i] = 5
			}
			out, maxDist = inflateBlock(b, newHuffman(lens), newHuffman(d), out, maxDist)
		case 2:
			hlit, hdist, hclen := b.bits(5)+257, b.bits(5)+1, b.bits(4)+4
			order := []int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
			cl := make([]int, 19)
			for i := range hclen {
				cl[order[i]] = b.bits(3)
			}
			ch := newHuffman(cl)
			lens := make([]int, 0, hlit+hdist)
			for len(lens) < hlit+hdist {
				sym := ch.decode(b)
				switch {
				case sym < 16:
					lens = append(lens, sym)
				case sym == 16:
					prev := lens[len(lens)-1]
					for range 3 + b.bits(2) {
						lens = append(lens, prev)
					}
				case sym == 17:
					lens = append(lens, make([]int, 3+b.bits(3))...)
				default:
					lens = append(lens, make([]int, 11+b.bits(7))...)
				}
			}
			out, maxDist = inflateBlock(b, newHuffman(lens[:hlit]), newHuffman(lens[hlit:]), out, maxDist)
		default:
			panic("reserved block type")
		}
		if final == 1 {
			return out, maxDist
		}
	}
}

func inflateBlock(b *bitReader, lit, dist *huffman, out []byte, maxDist int) ([]byte, int) {
	for {
		sym := lit.decode(b)
		switch {
		case sym < 256:
			out = append(out, byte(sym))
		case sym == 256:
			return out, maxDist
		default:
			sym -= 257
			n := lenBase[sym] + b.bits(lenExtra[sym])
			ds := dist.decode(b)
			d := dstBase[ds] + b.bits(dstExtra[ds])
			maxDist = max(maxDist, d)
			for range n {
				out = append(out, out[len(out)-d])
			}
		}
	}
}

func maxDistance(t *testing.T, stream []byte) int {
	t.Helper()
	_, d := inflateMaxDistance(stream)
	return d
}

// TestDeflateWindowAllClusterSizes compresses varied clusters of every size
// and checks every back-reference with the reference decoder above.
func TestDeflateWindowAllClusterSizes(t *testing.T) {
	c := &codec{}
	r := rand.New(rand.NewSource(5))
	for _, cs := range []int{512, 4096, 65536, 2 << 20} {
		data := testPattern(int64(cs), int64(cs))
		for i := 256; i < len(data); i += 512 {
			copy(data[i:i+256], bytes.Repeat([]byte("compressible "), 20))
		}
		// Repeat a random block at long distances too.
		blk := make([]byte, 3000)
		r.Read(blk)
		for off := 0; off+len(blk) <= cs; off += 20000 {
			copy(data[off:], blk)
		}
		out, ok, err := c.compress(nil, data)
		if err != nil || !ok {
			t.Fatalf("cluster %d: compress: ok %v, %v", cs, ok, err)
		}
		got, d := inflateMaxDistance(out)
		if d > deflateWindow {
			t.Fatalf("cluster %d: distance %d > %d", cs, d, deflateWindow)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("cluster %d: reference decoder disagrees", cs)
		}
	}
}
