package deflate

import (
	"math/bits"
	"slices"
)

// huffman builds length-limited canonical Huffman codes (RFC 1951 3.2.2).
// It holds the scratch space, so building a code allocates nothing.
type huffman struct {
	leaves []uint64 // freq<<16 | symbol, sorted by frequency
	weight []uint64 // node weights: leaves, then internal nodes
	parent []int32
	depth  []uint8
	// package-merge lists, one per depth: item weights and leaf flags.
	pmWeight [maxCodeBits + 1][]uint64
	pmLeaf   [maxCodeBits + 1][]bool
}

// code is a Huffman code for an alphabet: bits[s] is the length of symbol
// s's code (0: unused) and codes[s] the code, bit-reversed for sending.
type code struct {
	bits  []uint8
	codes []uint16
}

func newCode(n int) code { return code{bits: make([]uint8, n), codes: make([]uint16, n)} }

// build sets c's lengths from freq (at most maxBits bits) and assigns the
// codes. The code is always complete: at least two symbols get a code
// (zlib's inflater refuses incomplete codes), so an alphabet with one or
// no used symbol codes a spare symbol too.
func (h *huffman) build(c *code, freq []uint32, maxBits int) {
	clear(c.bits)
	h.leaves = h.leaves[:0]
	for s, f := range freq {
		if f > 0 {
			h.leaves = append(h.leaves, uint64(f)<<16|uint64(s))
		}
	}
	for s := 0; len(h.leaves) < 2; s++ {
		if freq[s] == 0 {
			h.leaves = append(h.leaves, uint64(s)) // weight 0: a spare
		}
	}
	slices.Sort(h.leaves)
	if !h.unlimited(c, maxBits) {
		h.packageMerge(c, maxBits)
	}
	c.assign(maxBits)
}

// unlimited computes optimal (unlimited) code lengths with the two-queue
// method on sorted leaves; it reports false if one exceeds maxBits.
func (h *huffman) unlimited(c *code, maxBits int) bool {
	n := len(h.leaves)
	h.weight = h.weight[:0]
	for _, l := range h.leaves {
		h.weight = append(h.weight, l>>16)
	}
	h.parent = slices.Grow(h.parent[:0], 2*n)[:2*n-1]
	leaf, inner := 0, n // next unused leaf and internal node
	pick := func() int {
		if leaf < n && (inner >= len(h.weight) || h.weight[leaf] <= h.weight[inner]) {
			leaf++
			return leaf - 1
		}
		inner++
		return inner - 1
	}
	for len(h.weight) < 2*n-1 {
		a, b := pick(), pick()
		p := int32(len(h.weight))
		h.parent[a], h.parent[b] = p, p
		h.weight = append(h.weight, h.weight[a]+h.weight[b])
	}
	h.depth = slices.Grow(h.depth[:0], 2*n)[:2*n-1]
	root := 2*n - 2
	h.depth[root] = 0
	for i := root - 1; i >= 0; i-- {
		d := h.depth[h.parent[i]] + 1
		if int(d) > maxBits {
			return false
		}
		h.depth[i] = d
	}
	for i, l := range h.leaves {
		c.bits[l&0xffff] = h.depth[i]
	}
	return true
}

// packageMerge computes optimal code lengths limited to maxBits (Larmore
// and Hirschberg): the list for the deepest level holds the leaves; each
// shallower list merges the leaves with packages, pairs of consecutive
// items of the list below. The first 2n-2 items of the top list are
// selected; a selected package selects its two items below. A leaf's code
// length is the number of lists in which it is selected, and the selected
// leaves of a list are always its lightest ones.
func (h *huffman) packageMerge(c *code, maxBits int) {
	n := len(h.leaves)
	prev := h.pmWeight[maxBits][:0]
	for _, l := range h.leaves {
		prev = append(prev, l>>16)
	}
	h.pmWeight[maxBits] = prev
	for d := maxBits - 1; d >= 1; d-- {
		w, leafFlag := h.pmWeight[d][:0], h.pmLeaf[d][:0]
		li, pi := 0, 0 // next leaf, next package (pair of prev)
		for li < n || pi+1 < len(prev) {
			if pi+1 < len(prev) && (li >= n || prev[pi]+prev[pi+1] < h.leaves[li]>>16) {
				w, leafFlag = append(w, prev[pi]+prev[pi+1]), append(leafFlag, false)
				pi += 2
			} else {
				w, leafFlag = append(w, h.leaves[li]>>16), append(leafFlag, true)
				li++
			}
		}
		h.pmWeight[d], h.pmLeaf[d] = w, leafFlag
		prev = w
	}
	for _, l := range h.leaves {
		c.bits[l&0xffff] = 0
	}
	m := 2*n - 2 // items selected in the current list
	for d := 1; d <= maxBits && m > 0; d++ {
		leaves := m // the deepest list is all leaves
		if d < maxBits {
			leaves = 0
			for _, isLeaf := range h.pmLeaf[d][:m] {
				if isLeaf {
					leaves++
				}
			}
		}
		for _, l := range h.leaves[:leaves] {
			c.bits[l&0xffff]++
		}
		m = 2 * (m - leaves)
	}
}

// assign gives canonical codes to the lengths in c.bits (RFC 1951 3.2.2:
// shorter codes first, then by symbol), stored bit-reversed.
func (c *code) assign(maxBits int) {
	var count [maxCodeBits + 2]uint16
	for _, b := range c.bits {
		count[b]++
	}
	count[0] = 0
	var next [maxCodeBits + 2]uint16
	v := uint16(0)
	for b := 1; b <= maxBits; b++ {
		v = (v + count[b-1]) << 1
		next[b] = v
	}
	for s, b := range c.bits {
		if b != 0 {
			c.codes[s] = bits.Reverse16(next[b]) >> (16 - b)
			next[b]++
		}
	}
}

// cost is the number of bits freq takes in code c (without extra bits).
func (c *code) cost(freq []uint32) int {
	n := 0
	for s, f := range freq {
		n += int(f) * int(c.bits[s])
	}
	return n
}
