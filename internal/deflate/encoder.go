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

	// Chain heads: 2^14 (64 KiB, in L2 cache) for windows up to 4 KiB,
	// 2^16 for larger ones, where fewer collisions pay for the misses.
	smallHashBits = 14
	largeHashBits = 16

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
}

// levels are tuned on text-like and binary disk data against zlib's level
// 6 with a 4 KiB window (what qemu writes): DefaultLevel is within a
// fraction of a percent of zlib's size (smaller on binaries: every block
// takes its cheapest type and optimal length-limited codes) and searches
// a quarter of zlib's chain.
var levels = [MaxLevel + 1]params{
	1: {lazy: false, good: 4, maxLazy: 4, nice: 8, chain: 4},
	2: {lazy: false, good: 4, maxLazy: 8, nice: 16, chain: 8},
	3: {lazy: false, good: 4, maxLazy: 16, nice: 32, chain: 32},
	4: {lazy: true, good: 4, maxLazy: 8, nice: 16, chain: 16},
	5: {lazy: true, good: 4, maxLazy: 8, nice: 32, chain: 24},
	6: {lazy: true, good: 4, maxLazy: 16, nice: 64, chain: 32},
	7: {lazy: true, good: 8, maxLazy: 16, nice: 128, chain: 128},
	8: {lazy: true, good: 8, maxLazy: 32, nice: 258, chain: 512},
	9: {lazy: true, good: 32, maxLazy: 258, nice: 258, chain: 4096},
}

// wideLevels are the levels for windows over 4 KiB (zlib streams): with
// eight times the candidates, matching zlib's level-6 size takes longer
// chains.
var wideLevels = [MaxLevel + 1]params{
	1: {lazy: false, good: 4, maxLazy: 4, nice: 8, chain: 4},
	2: {lazy: false, good: 4, maxLazy: 8, nice: 16, chain: 8},
	3: {lazy: false, good: 4, maxLazy: 16, nice: 32, chain: 32},
	4: {lazy: true, good: 4, maxLazy: 8, nice: 16, chain: 16},
	5: {lazy: true, good: 8, maxLazy: 16, nice: 32, chain: 32},
	6: {lazy: true, good: 8, maxLazy: 16, nice: 128, chain: 64},
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
	window int   // largest back-reference distance
	mask   int   // 2*window-1: index into prev
	gen    int32 // added to positions stored in head and prev
	head   []int32
	shift  uint32  // 32 - hash bits
	prev   []int32 // ring of 2*window entries: the previous position with the same hash

	tokens   []uint32 // literal: byte<<16; match: length<<16 | distance
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
// back-references reach at most window bytes (a power of two, 256..32768:
// 4096 for qcow2, whose readers inflate with a 4 KiB window; 32768 for
// zlib streams).
func NewEncoder(level, window int) (*Encoder, error) {
	if level < MinLevel || level > MaxLevel {
		return nil, fmt.Errorf("deflate: compression level %d is outside %d..%d", level, MinLevel, MaxLevel)
	}
	if window < 256 || window > 32768 || bits.OnesCount(uint(window)) != 1 {
		return nil, fmt.Errorf("deflate: window %d is not a power of two in 256..32768", window)
	}
	hashBits := uint32(smallHashBits)
	p := levels[level]
	if window > 4096 {
		hashBits = largeHashBits
		p = wideLevels[level]
	}
	return &Encoder{p: p, level: level, window: window, mask: 2*window - 1, gen: 1,
		head: make([]int32, 1<<hashBits), shift: 32 - hashBits, prev: make([]int32, 2*window),
		tokens: make([]uint32, 0, blockTokens),
		lit:    newCode(numLitLen), dist: newCode(numDist), cl: newCode(numCodeLen)}, nil
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
	if int64(e.gen)+int64(len(src)) >= 1<<31-1 {
		clear(e.head)
		clear(e.prev)
		e.gen = 1
	}
	e.w = bitWriter{out: dst}
	e.start, e.limit, e.over = len(dst), limit, false
	e.resetBlock()
	if e.p.lazy {
		e.lazyParse(src)
	} else {
		e.greedyParse(src)
	}
	e.gen += int32(len(src))
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
}

// hash3 hashes the 3 bytes at the start of u (little-endian load) into
// 32-shift bits.
func hash3(u, shift uint32) uint32 { return (u << 8) * 0x9E3779B1 >> shift }

// insert links position i (i+4 <= len(src)) into its hash chain and returns
// the previous position with the same hash (negative: none).
func (e *Encoder) insert(src []byte, i int) int {
	h := hash3(binary.LittleEndian.Uint32(src[i:]), e.shift)
	v := e.head[h]
	e.head[h] = int32(i) + e.gen
	e.prev[i&e.mask] = v
	return int(v - e.gen)
}

// longest follows the hash chain from cand for the longest match at i that
// is longer than best, examining at most chain candidates; dist is 0 if
// none is longer.
func (e *Encoder) longest(src []byte, i, cand, best, chain int) (length, dist int) {
	limit := min(maxMatch, len(src)-i)
	if best >= limit {
		return best, 0
	}
	nice := min(e.p.nice, limit)
	minPos := max(i-e.window, 0)
	cur := src[i : i+limit]
	length = best
	for ; cand >= minPos && chain > 0; chain-- {
		win := src[cand : cand+limit]
		if win[length] == cur[length] && win[0] == cur[0] {
			if n := matchLen(win, cur); n > length {
				length, dist = n, i-cand
				if n >= nice {
					break
				}
			}
		}
		cand = int(e.prev[cand&e.mask] - e.gen)
	}
	return length, dist
}

// matchLen is the length of the common prefix of a and b (len(a) == len(b)).
func matchLen(a, b []byte) int {
	n := 0
	for len(a)-n >= 8 {
		if x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:]); x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
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
	n, blockStart := len(src), 0
	for i := 0; i < n; {
		if len(e.tokens) >= blockTokens {
			if !e.flush(src[blockStart:i], false) {
				return
			}
			blockStart = i
		}
		l, d := e.greedyMatch(src, i)
		if d == 0 {
			e.literal(src[i])
			i++
			continue
		}
		e.match(l, d)
		end := i + l
		if l <= e.p.maxLazy {
			for i++; i < end && i+4 <= n; i++ {
				e.insert(src, i)
			}
		}
		i = end
	}
	e.flush(src[blockStart:], true)
}

// greedyMatch is the match greedyParse takes at i (hashing i), or d == 0
// when a literal goes out there.
func (e *Encoder) greedyMatch(src []byte, i int) (l, d int) {
	if i+4 > len(src) {
		return 0, 0
	}
	cand := e.insert(src, i)
	if cand < i-e.window || cand < 0 {
		return 0, 0
	}
	l, d = e.longest(src, i, cand, minMatch-1, e.p.chain)
	if d == 0 || (l == minMatch && d > tooFar) {
		return 0, 0
	}
	return l, d
}

// lazyParse defers each match by a byte: if the next position starts a
// longer match, the current byte goes out as a literal instead.
func (e *Encoder) lazyParse(src []byte) {
	n, blockStart, next := len(src), 0, 0 // next: first position not hashed
	for i := 0; i < n; {
		if len(e.tokens) >= blockTokens {
			if !e.flush(src[blockStart:i], false) {
				return
			}
			blockStart = i
		}
		if i+4 > n {
			e.literal(src[i])
			i++
			continue
		}
		cand := -1
		if next <= i {
			cand, next = e.insert(src, i), i+1
		} else {
			cand = int(e.prev[i&e.mask] - e.gen)
		}
		if cand < i-e.window || cand < 0 {
			e.literal(src[i])
			i++
			continue
		}
		l, d := e.longest(src, i, cand, minMatch-1, e.p.chain)
		if d == 0 || (l == minMatch && d > tooFar) {
			e.literal(src[i])
			i++
			continue
		}
		for l < e.p.maxLazy && i+5 <= n {
			c2 := e.insert(src, i+1)
			next = i + 2
			chain := e.p.chain
			if l >= e.p.good {
				chain >>= 2
			}
			l2, d2 := e.longest(src, i+1, c2, l, chain)
			if d2 == 0 {
				break
			}
			e.literal(src[i])
			i++
			l, d = l2, d2
		}
		e.match(l, d)
		end := i + l
		j := max(next, i+1)
		if l > 2*e.p.nice {
			// A long match (a run, a copied block): hashing its inside
			// finds little the ends do not; hash only its last bytes.
			j = max(j, end-minMatch)
		}
		for ; j < end && j+4 <= n; j++ {
			e.insert(src, j)
		}
		next = max(next, end)
		i = end
	}
	e.flush(src[blockStart:], true)
}
