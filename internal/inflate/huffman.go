package inflate

import (
	"math/bits"

	"github.com/vdiskio/vdisk/internal/rfc1951"
)

// A table entry (uint32) says what a code decodes to and how many bits it
// takes:
//
//	bits 0-3    code length in this table (bits to consume)
//	bits 4-7    extra bits of a length or distance; a subtable's index bits
//	bits 8-11   flags: literal, end of block, subtable, invalid (none: a
//	            length or a distance)
//	bits 16-31  the literal, the length or distance base, or the
//	            subtable's start
const (
	flagLiteral = 1 << 8
	flagEOB     = 1 << 9
	flagSub     = 1 << 10
	flagInvalid = 1 << 11
)

const (
	litlenBits  = 11 // root index bits of the literal/length table
	distBits    = 8  // root index bits of the distance table
	codelenBits = 7  // the code-length code's longest code: no subtables
	maxCodeBits = 15

	// The most entries a table can need (root and subtables), for any
	// valid code of that many symbols: zlib's enough(288, 11, 15) and
	// enough(32, 8, 15), as libdeflate computes them.
	litlenEnough = 2342
	distEnough   = 402
	codelenSize  = 1 << codelenBits

	numLitlen  = 288 // symbols of the literal/length alphabet, 286 and 287 invalid
	numDist    = 32  // 30 and 31 invalid
	numCodelen = 19
)

// litlenMeaning is the entry (without the code length) of each
// literal/length symbol.
var litlenMeaning = func() (m [numLitlen]uint32) {
	for s := range 256 {
		m[s] = flagLiteral | uint32(s)<<16
	}
	m[256] = flagEOB
	for i, base := range rfc1951.LengthBase {
		m[257+i] = uint32(base)<<16 | uint32(rfc1951.LengthExtra[i])<<4
	}
	m[286], m[287] = flagInvalid, flagInvalid
	return m
}()

// distMeaning is the entry of each distance symbol.
var distMeaning = func() (m [numDist]uint32) {
	for i, base := range rfc1951.DistBase {
		m[i] = uint32(base)<<16 | uint32(rfc1951.DistExtra[i])<<4
	}
	m[30], m[31] = flagInvalid, flagInvalid
	return m
}()

// codelenMeaning is the entry of each code-length symbol: the symbol.
var codelenMeaning = func() (m [numCodelen]uint32) {
	for s := range m {
		m[s] = uint32(s) << 16
	}
	return m
}()

// tableKind says which completeness rule a code follows.
type tableKind int

const (
	kindCodelen tableKind = iota // must be complete
	kindLitlen                   // complete, or a single 1-bit code
	kindDist                     // complete, a single 1-bit code, or no code at all
)

// build fills table for the canonical code of lens (one length per symbol,
// 0 for unused symbols) with rootBits index bits, each symbol's entry being
// meaning[symbol] with its code length. It returns a description of what
// is wrong when the lengths do not make a code zlib accepts.
func build(table []uint32, lens []uint8, rootBits uint, meaning []uint32, kind tableKind) string {
	var count [maxCodeBits + 1]int
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	maxLen := maxCodeBits
	for maxLen > 0 && count[maxLen] == 0 {
		maxLen--
	}
	rootSize := 1 << rootBits
	if maxLen == 0 {
		if kind != kindDist {
			return "no codes"
		}
		// A block of literals only: any distance is an error.
		for i := range table[:rootSize] {
			table[i] = flagInvalid | 1
		}
		return ""
	}
	left := 1
	for l := 1; l <= maxCodeBits; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return "over-subscribed code lengths"
		}
	}
	if left > 0 {
		if kind == kindCodelen || maxLen != 1 {
			return "incomplete code lengths"
		}
		// A single 1-bit code: the other bit pattern is invalid.
		for i := range table[:rootSize] {
			table[i] = flagInvalid | 1
		}
	}
	// Symbols sorted by code length, then symbol: canonical code order.
	var offs [maxCodeBits + 2]int
	for l := 1; l <= maxCodeBits; l++ {
		offs[l+1] = offs[l] + count[l]
	}
	var sorted [numLitlen]uint16
	for s, l := range lens {
		if l != 0 {
			sorted[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	code := 0 // the current code, most significant bit first
	next := 0 // index in sorted
	end := rootSize
	subPrefix := -1
	subStart, subBits := 0, uint(0)
	remaining := count
	for l := 1; l <= maxLen; l++ {
		for range count[l] {
			s := sorted[next]
			next++
			rev := int(bits.Reverse16(uint16(code)) >> (16 - l))
			if uint(l) <= rootBits {
				e := meaning[s] | uint32(l)
				for j := rev; j < rootSize; j += 1 << l {
					table[j] = e
				}
			} else {
				prefix := rev & (rootSize - 1)
				if prefix != subPrefix {
					// A new subtable for the codes sharing these root bits:
					// as many index bits as their lengths need (zlib's rule).
					subBits = uint(l) - rootBits
					room := 1 << subBits
					for int(subBits+rootBits) < maxLen {
						room -= remaining[subBits+rootBits]
						if room <= 0 {
							break
						}
						subBits++
						room <<= 1
					}
					subStart, subPrefix = end, prefix
					end += 1 << subBits
					if end > len(table) {
						return "code tables overflow"
					}
					table[prefix] = flagSub | uint32(subStart)<<16 | uint32(subBits)<<4 | uint32(rootBits)
				}
				sl := uint(l) - rootBits
				e := meaning[s] | uint32(sl)
				for j := rev >> rootBits; j < 1<<subBits; j += 1 << sl {
					table[subStart+j] = e
				}
			}
			remaining[l]--
			code++
		}
		code <<= 1
	}
	return ""
}
