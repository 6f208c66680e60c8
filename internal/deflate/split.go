package deflate

import (
	"math"
	"math/bits"
)

// Block splitting. A block's Huffman codes fit the symbol statistics of
// the whole block; where those change inside it (a binary's code, then its
// string table, then compressed data), smaller blocks with their own codes
// are smaller in total, though each sends its own code lengths. While
// parsing, the encoder takes a snapshot of its symbol counts every
// leafTokens symbols (a mark); when a block is full it estimates the cost
// of the block as it is and of its two halves, recursively down to leaves,
// and sends the cheapest split. The estimates are entropy bounds (what an
// ideal code would take) plus an approximation of the code-length header;
// only the blocks sent get real codes, so a split costs one code build per
// block sent, the same as sending blocks of that size throughout.
const leafTokens = 1 << 12 // the smallest block a full block is split into

// mark is a block boundary candidate: the counts of symbols before it.
type mark struct {
	tokens, raw int // symbols and input bytes before the mark
	lit         [numLitLen]uint32
	dist        [numDist]uint32
}

// log2Frac[i] is log2(1 + i/256) in 1/256ths of a bit.
var log2Frac = func() (t [256]uint16) {
	for i := range t {
		t[i] = uint16(math.Round(math.Log2(1+float64(i)/256) * 256))
	}
	return t
}()

// log2Fixed is log2(x) in 1/256ths of a bit (x >= 1), to within 1/256.
func log2Fixed(x uint32) int {
	n := bits.Len32(x)
	return (n-1)<<8 + int(log2Frac[x<<(32-n)>>23&0xff])
}

// addMark records a mark at the current symbol; raw is the input bytes
// the block's symbols encode so far.
func (e *Encoder) addMark(raw int) {
	e.marks = append(e.marks, mark{tokens: len(e.tokens), raw: raw, lit: e.litFreq, dist: e.distFreq})
	e.nextMark = min(len(e.tokens)+leafTokens, blockTokens)
}

// splitBlock chooses the blocks the pending symbols go out in: it returns
// the indexes of the marks (into e.marks, whose last entry is the block's
// end and first its start) at which blocks end, in order.
func (e *Encoder) splitBlock() []int {
	e.cuts = e.cuts[:0]
	e.bestSplit(0, len(e.marks)-1)
	return e.cuts
}

// bestSplit appends the block ends of the cheapest split of the symbols
// between marks a and b and returns its estimated cost in 1/256 bits.
func (e *Encoder) bestSplit(a, b int) int {
	whole := e.estimate(&e.marks[a], &e.marks[b])
	if b-a < 2 {
		e.cuts = append(e.cuts, b)
		return whole
	}
	n := len(e.cuts)
	mid := (a + b) / 2
	if split := e.bestSplit(a, mid) + e.bestSplit(mid, b); split < whole {
		return split
	}
	e.cuts = append(e.cuts[:n], b)
	return whole
}

// estimate is the approximate cost, in 1/256 bits, of sending the symbols
// between marks a and b as one block: the cheapest of a dynamic block
// (entropy of its counts plus an estimate of the code-length header), a
// fixed block and a stored one.
func (e *Encoder) estimate(a, b *mark) int {
	lit := alphabetCost(a.lit[:], b.lit[:], endOfBlock, fixedLitLenBits[:numLitLen], litLenExtra[:])
	dist := alphabetCost(a.dist[:], b.dist[:], -1, fixedDistBits[:numDist], distExtra[:])
	extra := lit.extra + dist.extra
	dynamic := lit.entropy + dist.entropy + (headerFixedBits+headerBitsPerSymbol*(lit.used+dist.used)+extra)<<8
	fixed := (3 + lit.fixed + dist.fixed + extra) << 8
	stored := (8*(b.raw-a.raw) + 40) << 8
	return min(dynamic, fixed, stored)
}

// symbolCosts is what the counts of one alphabet between two marks take.
type symbolCosts struct {
	entropy int // in 1/256 bits: what an ideal code for these counts takes
	used    int // symbols with a count
	fixed   int // bits in the fixed code
	extra   int // extra bits after the codes
}

// alphabetCost sums the costs of the counts b-a of one alphabet, with one
// use of symbol once (the end of block) added when once >= 0.
func alphabetCost(a, b []uint32, once int, fixedBits, extraBits []uint8) symbolCosts {
	var c symbolCosts
	total := 0
	for s := range b {
		f := b[s] - a[s]
		if s == once {
			f = 1
		}
		if f == 0 {
			continue
		}
		c.used++
		total += int(f)
		c.entropy -= int(f) * log2Fixed(f)
		c.fixed += int(f) * int(fixedBits[s])
		c.extra += int(f) * int(extraBits[s])
	}
	if total > 0 {
		c.entropy += total * log2Fixed(uint32(total))
	}
	return c
}

// litLenExtra is the extra bits of each literal/length symbol (0 for
// literals and the end of block).
var litLenExtra = func() (t [numLitLen]uint8) {
	copy(t[endOfBlock+1:], lengthExtra[:])
	return t
}()

// The code-length header of a dynamic block, estimated: about 4 bits per
// symbol in use, after 17 bits of counts and the code-length code's own
// lengths.
const (
	headerFixedBits     = 17 + 3*16
	headerBitsPerSymbol = 4
)
