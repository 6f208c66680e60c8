package deflate

import (
	"encoding/binary"
	"math/bits"
)

// The match finder keeps two hash tables over the input: head4 holds, for
// each hash of 4 bytes, the newest position with that hash, and prev, a
// ring indexed by position, the distance back from each position to the
// previous one with the same hash (0: none in the window), so the chain of
// candidates for 4-byte matches is walked newest first. head3 holds the
// newest position for each hash of 3 bytes, without a chain: a 3-byte
// match pays only when it is close, so only the newest is tried.
//
// Positions are stored in 16 bits (their low bits): a distance is the
// difference of two positions modulo 2^16, and every candidate is checked
// against the input before it is used, so a stale or aliased entry costs
// a comparison, never a wrong match. The tables are cleared for each
// stream (the output depends on the input alone).
const (
	maxHash4Bits = 16 // head4 entries: 2^15 for windows up to 4 KiB, 2^16 above (fewer collisions walked)
	hash3Bits    = 11
	maxWindow    = 32768
)

type matcher struct {
	head4  [1 << maxHash4Bits]uint16
	head3  [1 << hash3Bits]uint16
	prev   [maxWindow]uint16
	shift4 uint32 // 32 - head4's hash bits
	size4  int    // head4 entries in use
	wmask  int    // window - 1: the largest distance, and prev's index mask
	far3   int    // the farthest 3-byte match tried
}

func (m *matcher) init(window int) {
	bits4 := 15
	if window > 4096 {
		bits4 = 16
	}
	m.shift4, m.size4 = uint32(32-bits4), 1<<bits4
	m.wmask = window - 1
	m.far3 = min(tooFar, window-1)
}

// reset empties the tables for a new stream.
func (m *matcher) reset() {
	clear(m.head4[:m.size4])
	clear(m.head3[:])
	clear(m.prev[:m.wmask+1])
}

// insert links position i (i+4 <= len(src)) into the tables and returns
// the distances back to the previous position with the same 4-byte hash
// (d4, 0 if none in the window) and to a 3-byte match close enough to try
// (d3, 0 if none).
func (m *matcher) insert(src []byte, i int) (d4, d3 int) {
	u := binary.LittleEndian.Uint32(src[i:])
	h4 := u * 0x9E3779B1 >> (m.shift4 & 31) & (1<<maxHash4Bits - 1)
	h3 := (u << 8) * 0x9E3779B1 >> (32 - hash3Bits)
	p := uint16(i)
	d4, d3 = int(p-m.head4[h4]), int(p-m.head3[h3])
	m.head4[h4], m.head3[h3] = p, p
	if uint(d4-1) >= uint(m.wmask) {
		d4 = 0
	}
	m.prev[i&m.wmask&(maxWindow-1)] = uint16(d4)
	if uint(d3-1) >= uint(m.far3) || (binary.LittleEndian.Uint32(src[i-d3:])^u)<<8 != 0 {
		d3 = 0
	}
	return d4, d3
}

// insertRange inserts positions from..to-1 (those with 4 bytes left).
func (m *matcher) insertRange(src []byte, from, to int) {
	to = min(to, len(src)-3)
	shift4, wmask := m.shift4, m.wmask
	for i := from; i < to; i++ {
		u := binary.LittleEndian.Uint32(src[i:])
		h4 := u * 0x9E3779B1 >> (shift4 & 31) & (1<<maxHash4Bits - 1)
		h3 := (u << 8) * 0x9E3779B1 >> (32 - hash3Bits)
		p := uint16(i)
		d4 := int(p - m.head4[h4])
		m.head4[h4], m.head3[h3] = p, p
		if uint(d4-1) >= uint(wmask) {
			d4 = 0
		}
		m.prev[i&wmask&(maxWindow-1)] = uint16(d4)
	}
}

// longest finds the longest match at i longer than best: the 3-byte
// match d3 back (when best < 3), then
// the 4-byte chain from d4 back, examining at most chain candidates and
// stopping at nice bytes; dist is 0 if none is longer.
func (m *matcher) longest(src []byte, i, d4, d3, best, chain, nice int) (length, dist int) {
	limit := min(maxMatch, len(src)-i)
	length = best
	if length >= limit {
		return length, 0
	}
	cur := src[i : i+limit]
	if length < minMatch && d3 != 0 {
		length, dist = minMatch, d3
	}
	if d4 == 0 || limit < 4 {
		return length, dist
	}
	nice = min(nice, limit)
	first := binary.LittleEndian.Uint32(cur)
	pos, minPos := i-d4, i-m.wmask
	end := cur[length]
	for {
		if src[pos+length] == end && binary.LittleEndian.Uint32(src[pos:]) == first {
			if n := 4 + matchLen(src[pos+4:pos+limit], cur[4:]); n > length {
				length, dist = n, i-pos
				if n >= nice {
					break
				}
				end = cur[length]
			}
		}
		link := int(m.prev[pos&m.wmask&(maxWindow-1)])
		pos -= link
		chain--
		if link == 0 || chain <= 0 || pos < minPos {
			break
		}
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

// insertRange4 is insertRange without the 3-byte table.
func (m *matcher) insertRange4(src []byte, from, to int) {
	to = min(to, len(src)-3)
	shift4, wmask := m.shift4, m.wmask
	for i := from; i < to; i++ {
		u := binary.LittleEndian.Uint32(src[i:])
		h4 := u * 0x9E3779B1 >> (shift4 & 31) & (1<<maxHash4Bits - 1)
		p := uint16(i)
		d4 := int(p - m.head4[h4])
		m.head4[h4] = p
		if uint(d4-1) >= uint(wmask) {
			d4 = 0
		}
		m.prev[i&wmask&(maxWindow-1)] = uint16(d4)
	}
}
