package deflate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

const (
	// MinLevel, DefaultLevel and MaxLevel bound the compression levels:
	// higher levels search longer for matches (slower, smaller output).
	MinLevel     = 1
	DefaultLevel = 6
	MaxLevel     = 9

	// MaxInput is the largest buffer one Encode call takes.
	MaxInput = 1 << 30

	// tooFar: a 3-byte match further back than this costs more bits than
	// the three literals it replaces, nearly always.
	tooFar = 4096

	// blockTokens is the most symbols one block holds before it is sent.
	blockTokens = 1 << 15
)

// ErrTooLarge is returned for an input longer than MaxInput.
var ErrTooLarge = errors.New("deflate: input too large")

// params is a level's search effort.
type params struct {
	lazy    bool // look one byte ahead for a longer match before taking one
	good    int  // a previous match this long: search a quarter of the chain
	maxLazy int  // lazy: a match this long is taken at once; greedy: longer matches' positions are not hashed
	nice    int  // stop searching at a match this long
	chain   int  // most chain candidates examined per position
	skip    uint // after 2^skip literals in a row, search every second position, then every third... (0: every one)
}

// levels are tuned on text-like and binary disk data against zlib's level
// 6 with a 4 KiB window (what qemu writes): DefaultLevel is within a
// fraction of a percent of zlib's size (smaller on binaries: blocks are
// split where the statistics change, every block takes its cheapest type
// and optimal length-limited codes), searches a quarter of zlib's chain
// and looks ahead only past 3-byte matches (zlib: up to 15 bytes), which
// the smaller blocks pay for.
var levels = [MaxLevel + 1]params{
	1: {lazy: false, good: 4, maxLazy: 4, nice: 8, chain: 4, skip: 6},
	2: {lazy: false, good: 4, maxLazy: 8, nice: 16, chain: 8, skip: 6},
	3: {lazy: false, good: 4, maxLazy: 16, nice: 32, chain: 32, skip: 6},
	4: {lazy: true, good: 4, maxLazy: 8, nice: 16, chain: 16, skip: 6},
	5: {lazy: true, good: 4, maxLazy: 8, nice: 32, chain: 24, skip: 6},
	6: {lazy: true, good: 4, maxLazy: 4, nice: 64, chain: 32, skip: 6},
	7: {lazy: true, good: 8, maxLazy: 16, nice: 128, chain: 128},
	8: {lazy: true, good: 8, maxLazy: 32, nice: 258, chain: 512},
	9: {lazy: true, good: 32, maxLazy: 258, nice: 258, chain: 4096},
}

// wideLevels are the levels for windows over 4 KiB (zlib streams): with
// eight times the candidates, matching zlib's level-6 size takes longer
// chains.
var wideLevels = [MaxLevel + 1]params{
	1: {lazy: false, good: 4, maxLazy: 4, nice: 8, chain: 4, skip: 6},
	2: {lazy: false, good: 4, maxLazy: 8, nice: 16, chain: 8, skip: 6},
	3: {lazy: false, good: 4, maxLazy: 16, nice: 32, chain: 32, skip: 6},
	4: {lazy: true, good: 4, maxLazy: 8, nice: 16, chain: 16, skip: 6},
	5: {lazy: true, good: 8, maxLazy: 16, nice: 32, chain: 32, skip: 6},
	6: {lazy: true, good: 4, maxLazy: 5, nice: 128, chain: 56, skip: 6},
	7: {lazy: true, good: 8, maxLazy: 32, nice: 128, chain: 256},
	8: {lazy: true, good: 32, maxLazy: 128, nice: 258, chain: 1024},
	9: {lazy: true, good: 32, maxLazy: 258, nice: 258, chain: 4096},
}

// Encoder compresses whole buffers into raw deflate streams (RFC 1951),
// each stream independent of the others, with back-references no further
// than the window it was made with. It reuses its tables between calls; it
// is not safe for concurrent use (keep one per goroutine, or pool them).
type Encoder struct {
	p      params
	level  int
	window int // largest back-reference distance + 1
	m      matcher

	tokens   []uint32 // literal: byte<<16; match: length<<16 | distance
	marks    []mark   // the block's start, its marks so far (split.go), then its end
	cuts     []int    // splitBlock's answer: the marks at which the blocks sent end (reused)
	nextMark int      // len(tokens) at which the next mark is due
	litFreq  [numLitLen]uint32
	distFreq [numDist]uint32
	huff     huffman
	lit      code
	dist     code
	cl       code
	clSyms   []uint16 // code-length symbols: symbol | extra value<<8
	clFreq   [numCodeLen]uint32
	w        bitWriter
	limit    int // output bytes that make the stream pointless (0: none)
	start    int // len(dst) at the start of the call
	over     bool
}

// NewEncoder returns an encoder for a level (MinLevel..MaxLevel) whose
// back-references reach less than window bytes (a power of two,
// 256..32768: 4096 for qcow2, whose readers inflate with a 4 KiB window;
// 32768 for zlib streams).
func NewEncoder(level, window int) (*Encoder, error) {
	if level < MinLevel || level > MaxLevel {
		return nil, fmt.Errorf("deflate: compression level %d is outside %d..%d", level, MinLevel, MaxLevel)
	}
	if window < 256 || window > 32768 || bits.OnesCount(uint(window)) != 1 {
		return nil, fmt.Errorf("deflate: window %d is not a power of two in 256..32768", window)
	}
	p := levels[level]
	if window > 4096 {
		p = wideLevels[level]
	}
	e := &Encoder{p: p, level: level, window: window,
		tokens: make([]uint32, 0, blockTokens),
		lit:    newCode(numLitLen), dist: newCode(numDist), cl: newCode(numCodeLen)}
	e.m.init(window)
	return e, nil
}

// Encode appends the raw deflate stream of src (one final stream) to dst.
func (e *Encoder) Encode(dst, src []byte) ([]byte, error) {
	out, _, err := e.EncodeLimit(dst, src, 0)
	return out, err
}

// EncodeLimit is Encode that gives up once the stream would take limit
// bytes or more (limit <= 0: no limit); ok is false then and dst is
// returned as it was (its spare capacity may have been written).
func (e *Encoder) EncodeLimit(dst, src []byte, limit int) (out []byte, ok bool, err error) {
	if len(src) > MaxInput {
		return dst, false, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, len(src), MaxInput)
	}
	e.m.reset()
	e.w = bitWriter{out: dst}
	e.start, e.limit, e.over = len(dst), limit, false
	e.resetBlock()
	if e.p.lazy {
		e.lazyParse(src)
	} else {
		e.greedyParse(src)
	}
	out = e.w.out
	e.w.out = nil
	if e.over {
		return dst, false, nil
	}
	return out, true, nil
}

func (e *Encoder) resetBlock() {
	e.tokens = e.tokens[:0]
	clear(e.litFreq[:])
	clear(e.distFreq[:])
	e.marks = e.marks[:0]
	e.addMark(0)
}

func (e *Encoder) literal(c byte) {
	e.tokens = append(e.tokens, uint32(c)<<16)
	e.litFreq[c]++
}

func (e *Encoder) match(length, dist int) {
	e.tokens = append(e.tokens, uint32(length)<<16|uint32(dist))
	e.litFreq[endOfBlock+1+int(lengthSym[length-minMatch])]++
	e.distFreq[distSym(dist)]++
}

// greedyParse takes the longest match found at each position.
func (e *Encoder) greedyParse(src []byte) {
	m := &e.m
	n, blockStart, anchor, skipAt := len(src), 0, 0, e.skipAt()
	for i := 0; i < n; {
		if len(e.tokens) >= e.nextMark {
			var ok bool
			if blockStart, ok = e.atMark(src, blockStart, i); !ok {
				return
			}
		}
		if i+4 > n {
			e.literal(src[i])
			i++
			continue
		}
		d4, d3 := m.insert(src, i)
		l, d := m.longest(src, i, d4, d3, minMatch-1, e.p.chain, e.p.nice)
		if d == 0 {
			if i-anchor < skipAt {
				e.literal(src[i])
				i++
			} else {
				i = e.literals(src, i, anchor)
			}
			continue
		}
		e.match(l, d)
		end := i + l
		if l <= e.p.maxLazy {
			m.insertRange(src, i+1, end)
		}
		i = end
		anchor = i
	}
	e.flush(src[blockStart:], true)
}

// lazyParse defers each match by a byte: if the next position starts a
// longer match, the current byte goes out as a literal instead.
func (e *Encoder) lazyParse(src []byte) {
	m := &e.m
	n, blockStart, anchor, skipAt := len(src), 0, 0, e.skipAt()
	for i := 0; i < n; {
		if len(e.tokens) >= e.nextMark {
			var ok bool
			if blockStart, ok = e.atMark(src, blockStart, i); !ok {
				return
			}
		}
		if i+4 > n {
			e.literal(src[i])
			i++
			continue
		}
		// m.insert(src, i), inlined: most positions end here.
		u := binary.LittleEndian.Uint32(src[i:])
		h4 := u * 0x9E3779B1 >> (m.shift4 & 31) & (1<<maxHash4Bits - 1)
		h3 := (u << 8) * 0x9E3779B1 >> (32 - hash3Bits)
		p := uint16(i)
		d4, d3 := int(p-m.head4[h4]), int(p-m.head3[h3])
		m.head4[h4], m.head3[h3] = p, p
		if uint(d4-1) >= uint(m.wmask) {
			d4 = 0
		}
		m.prev[i&m.wmask&(maxWindow-1)] = uint16(d4)
		if uint(d3-1) >= uint(m.far3) || (binary.LittleEndian.Uint32(src[i-d3:])^u)<<8 != 0 {
			d3 = 0
		}
		if d4|d3 == 0 {
			if i-anchor < skipAt {
				e.literal(src[i])
				i++
			} else {
				i = e.literals(src, i, anchor)
			}
			continue
		}
		l, d := m.longest(src, i, d4, d3, minMatch-1, e.p.chain, e.p.nice)
		if d == 0 {
			if i-anchor < skipAt {
				e.literal(src[i])
				i++
			} else {
				i = e.literals(src, i, anchor)
			}
			continue
		}
		next := i + 1 // first position not hashed
		for l < e.p.maxLazy && i+5 <= n {
			d4, _ = m.insert(src, i+1)
			next = i + 2
			chain := e.p.chain
			if l >= e.p.good {
				chain >>= 2
			}
			if d4 == 0 {
				break
			}
			l2, d2 := m.longest(src, i+1, d4, 0, l, chain, e.p.nice)
			if d2 == 0 {
				break
			}
			e.literal(src[i])
			i++
			l, d = l2, d2
		}
		e.match(l, d)
		end := i + l
		if l > 2*e.p.nice {
			// A long match (a run, a copied block): hashing its inside
			// finds little the ends do not; hash only its last bytes.
			next = max(next, end-minMatch)
		}
		m.insertRange(src, next, end)
		i = end
		anchor = i
	}
	e.flush(src[blockStart:], true)
}

// atMark is the parsers' work at a mark (position i, the block starting
// at blockStart): a snapshot of the counts, or the block sent once it is
// full. It returns where the block starts now, and false when the stream
// reached its limit.
func (e *Encoder) atMark(src []byte, blockStart, i int) (int, bool) {
	if len(e.tokens) < blockTokens {
		e.addMark(i - blockStart)
		return blockStart, true
	}
	return i, e.flush(src[blockStart:i], false)
}

// skipAt is the stretch of literals after which literals skips positions.
func (e *Encoder) skipAt() int {
	if e.p.skip == 0 {
		return MaxInput
	}
	return 1 << e.p.skip
}

// literals sends the literal at i and, once the stretch without a match
// since anchor is long (the level's skip), the next few
// bytes too, hashed but not searched: a long stretch of literals (text
// whose only redundancy is its alphabet, compressed or random data) is
// seldom followed by a match, and searching every position of it is most
// of the work there. It returns the next position to search.
func (e *Encoder) literals(src []byte, i, anchor int) int {
	step := 1
	if e.p.skip > 0 {
		step += (i - anchor) >> e.p.skip
	}
	step = min(step, len(src)-i, blockTokens-len(e.tokens))
	for _, c := range src[i : i+step] {
		e.tokens = append(e.tokens, uint32(c)<<16)
		e.litFreq[c]++
	}
	if step > 1 {
		e.m.insertRange4(src, i+1, i+step)
	}
	return i + step
}
