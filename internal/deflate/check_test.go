package deflate

import (
	"errors"
	"fmt"
)

// An independent RFC 1951 decoder for the tests: it inflates a raw deflate
// stream bit by bit, refuses incomplete or over-subscribed Huffman codes
// (as zlib does, but for a single-code distance tree), and records the
// largest back-reference distance and the block types used, so the tests
// can prove the window bound and the block choices. It is slow and simple
// on purpose; it shares no code with the encoder.

type checkStats struct {
	maxDist int
	blocks  [3]int // stored, fixed, dynamic
}

type bitSource struct {
	data []byte
	pos  int // bit position
}

var errTruncated = errors.New("stream truncated")

func (b *bitSource) bits(n int) (int, error) {
	v := 0
	for i := range n {
		if b.pos>>3 >= len(b.data) {
			return 0, errTruncated
		}
		v |= int(b.data[b.pos>>3]>>(b.pos&7)&1) << i
		b.pos++
	}
	return v, nil
}

// canon is a canonical Huffman code: symbol counts per length and the
// symbols ordered by code.
type canon struct {
	counts  [16]int
	symbols []int
}

func newCanon(lengths []int, allowSingle bool) (*canon, error) {
	h := &canon{}
	for _, l := range lengths {
		h.counts[l]++
	}
	h.counts[0] = 0
	left := 1
	used := 0
	for l := 1; l < 16; l++ {
		left <<= 1
		left -= h.counts[l]
		used += h.counts[l]
		if left < 0 {
			return nil, errors.New("over-subscribed code")
		}
	}
	if left > 0 && !(allowSingle && used <= 1) {
		return nil, fmt.Errorf("incomplete code (%d symbols)", used)
	}
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
	return h, nil
}

func (h *canon) decode(b *bitSource) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		bit, err := b.bits(1)
		if err != nil {
			return 0, err
		}
		code |= bit
		count := h.counts[l]
		if code-count < first {
			return h.symbols[index+(code-first)], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errors.New("bad code")
}

// inflateCheck decodes a whole raw deflate stream and reports the bytes
// after its end (there must be none but padding).
func inflateCheck(data []byte) (out []byte, st checkStats, err error) {
	b := &bitSource{data: data}
	for {
		final, err := b.bits(1)
		if err != nil {
			return out, st, err
		}
		typ, err := b.bits(2)
		if err != nil {
			return out, st, err
		}
		switch typ {
		case 0:
			st.blocks[0]++
			b.pos = (b.pos + 7) &^ 7
			n, _ := b.bits(16)
			nn, err := b.bits(16)
			if err != nil {
				return out, st, err
			}
			if n != ^nn&0xffff {
				return out, st, errors.New("stored block: LEN and NLEN disagree")
			}
			for range n {
				c, err := b.bits(8)
				if err != nil {
					return out, st, err
				}
				out = append(out, byte(c))
			}
		case 1:
			st.blocks[1]++
			lens := make([]int, 288)
			for i := range lens {
				lens[i] = int(fixedLitLenBits[i])
			}
			d := make([]int, 32)
			for i := range d {
				d[i] = 5
			}
			lit, _ := newCanon(lens, false)
			dist, _ := newCanon(d, true)
			if out, err = inflateCodes(b, lit, dist, out, &st); err != nil {
				return out, st, err
			}
		case 2:
			st.blocks[2]++
			lit, dist, err := readDynamic(b)
			if err != nil {
				return out, st, err
			}
			if out, err = inflateCodes(b, lit, dist, out, &st); err != nil {
				return out, st, err
			}
		default:
			return out, st, errors.New("reserved block type")
		}
		if final == 1 {
			if (len(data)*8 - b.pos) >= 8 {
				return out, st, fmt.Errorf("%d bytes after the final block", len(data)-(b.pos+7)/8)
			}
			return out, st, nil
		}
	}
}

func readDynamic(b *bitSource) (lit, dist *canon, err error) {
	hlit, _ := b.bits(5)
	hdist, _ := b.bits(5)
	hclen, err := b.bits(4)
	if err != nil {
		return nil, nil, err
	}
	hlit, hdist, hclen = hlit+257, hdist+1, hclen+4
	if hlit > 286 || hdist > 30 {
		return nil, nil, fmt.Errorf("HLIT %d or HDIST %d out of range", hlit, hdist)
	}
	cl := make([]int, 19)
	for i := range hclen {
		if cl[codeLenOrder[i]], err = b.bits(3); err != nil {
			return nil, nil, err
		}
	}
	ch, err := newCanon(cl, false)
	if err != nil {
		return nil, nil, fmt.Errorf("code-length code: %w", err)
	}
	lens := make([]int, 0, hlit+hdist)
	for len(lens) < hlit+hdist {
		sym, err := ch.decode(b)
		if err != nil {
			return nil, nil, err
		}
		var rep, v int
		switch {
		case sym < 16:
			rep, v = 1, sym
		case sym == 16:
			if len(lens) == 0 {
				return nil, nil, errors.New("repeat with no previous length")
			}
			x, _ := b.bits(2)
			rep, v = 3+x, lens[len(lens)-1]
		case sym == 17:
			x, _ := b.bits(3)
			rep = 3 + x
		default:
			x, _ := b.bits(7)
			rep = 11 + x
		}
		if len(lens)+rep > hlit+hdist {
			return nil, nil, errors.New("code lengths overrun")
		}
		for range rep {
			lens = append(lens, v)
		}
	}
	if lens[256] == 0 {
		return nil, nil, errors.New("no end-of-block code")
	}
	if lit, err = newCanon(lens[:hlit], false); err != nil {
		return nil, nil, fmt.Errorf("literal/length code: %w", err)
	}
	if dist, err = newCanon(lens[hlit:], true); err != nil {
		return nil, nil, fmt.Errorf("distance code: %w", err)
	}
	return lit, dist, nil
}

func inflateCodes(b *bitSource, lit, dist *canon, out []byte, st *checkStats) ([]byte, error) {
	for {
		sym, err := lit.decode(b)
		if err != nil {
			return out, err
		}
		switch {
		case sym < 256:
			out = append(out, byte(sym))
		case sym == 256:
			return out, nil
		case sym > 285:
			return out, errors.New("reserved length symbol")
		default:
			sym -= 257
			x, _ := b.bits(int(lengthExtra[sym]))
			n := int(lengthBase[sym]) + x
			ds, err := dist.decode(b)
			if err != nil {
				return out, err
			}
			if ds >= 30 {
				return out, errors.New("reserved distance symbol")
			}
			x, err = b.bits(int(distExtra[ds]))
			if err != nil {
				return out, err
			}
			d := int(distBase[ds]) + x
			if d > len(out) {
				return out, fmt.Errorf("distance %d before the start", d)
			}
			st.maxDist = max(st.maxDist, d)
			for range n {
				out = append(out, out[len(out)-d])
			}
		}
	}
}
