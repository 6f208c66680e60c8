package deflate

import "encoding/binary"

// Each block goes out in the cheapest of the three block types of RFC 1951
// 3.2.3, computed exactly from the block's symbol counts before anything
// is written: stored (type 0), fixed Huffman codes (type 1) or dynamic
// Huffman codes sent in the block header (type 2).

// fixedLit and fixedDist are the fixed Huffman codes (RFC 1951 3.2.6).
var fixedLit, fixedDist = func() (code, code) {
	lit, dist := newCode(len(fixedLitLenBits)), newCode(len(fixedDistBits))
	copy(lit.bits, fixedLitLenBits[:])
	copy(dist.bits, fixedDistBits[:])
	lit.assign(maxCodeBits)
	dist.assign(maxCodeBits)
	return lit, dist
}()

// flush sends the pending symbols in the blocks splitBlock chooses; raw is
// the input they encode (for stored blocks). It reports false (and sends
// nothing more) when the stream would reach the limit.
func (e *Encoder) flush(raw []byte, final bool) bool {
	e.addMark(len(raw))
	from := &e.marks[0]
	cuts := e.splitBlock()
	for k, c := range cuts {
		to := &e.marks[c]
		for s := range e.litFreq {
			e.litFreq[s] = to.lit[s] - from.lit[s]
		}
		for s := range e.distFreq {
			e.distFreq[s] = to.dist[s] - from.dist[s]
		}
		if !e.writeBlock(e.tokens[from.tokens:to.tokens], raw[from.raw:to.raw], final && k == len(cuts)-1) {
			return false
		}
		from = to
	}
	e.resetBlock()
	if final {
		e.w.alignByte()
	}
	return true
}

// writeBlock sends tokens, whose counts are in litFreq and distFreq, as
// one block of the cheapest type; raw is the input they encode. It reports
// false (and sends nothing) when the stream would reach the limit.
func (e *Encoder) writeBlock(tokens []uint32, raw []byte, final bool) bool {
	e.litFreq[endOfBlock]++
	e.huff.build(&e.lit, e.litFreq[:], maxCodeBits)
	e.huff.build(&e.dist, e.distFreq[:], maxCodeBits)
	extra := e.extraBits()
	nlit, ndist, hclen := e.header()
	dynamic := 3 + 5 + 5 + 4 + 3*hclen + e.cl.cost(e.clFreq[:]) + 2*int(e.clFreq[16]) + 3*int(e.clFreq[17]) +
		7*int(e.clFreq[18]) + e.lit.cost(e.litFreq[:]) + e.dist.cost(e.distFreq[:]) + extra
	fixed := 3 + fixedLit.cost(e.litFreq[:]) + fixedDist.cost(e.distFreq[:]) + extra
	stored := storedBits(len(raw), e.w.nbits)
	best := min(dynamic, fixed, stored)
	if e.limit > 0 && (e.w.bitLen()+best+7)/8-e.start >= e.limit {
		e.over = true
		return false
	}
	var last uint32
	if final {
		last = 1
	}
	switch best {
	case stored:
		e.writeStored(raw, final)
	case fixed:
		e.w.put(last|1<<1, 3)
		e.writeTokens(tokens, &fixedLit, &fixedDist)
	default:
		e.w.put(last|2<<1, 3)
		e.writeHeader(nlit, ndist, hclen)
		e.writeTokens(tokens, &e.lit, &e.dist)
	}
	return true
}

// extraBits counts the extra bits of the block's lengths and distances.
func (e *Encoder) extraBits() int {
	n := 0
	for i, x := range lengthExtra {
		n += int(e.litFreq[endOfBlock+1+i]) * int(x)
	}
	for i, x := range distExtra {
		n += int(e.distFreq[i]) * int(x)
	}
	return n
}

// storedBits is the size of raw bytes sent as stored blocks (at most 65535
// bytes each: 3 header bits, padding to a byte, LEN and NLEN) when pending
// bits are waiting.
func storedBits(n int, pending uint) int {
	blocks := max(1, (n+maxStoredSize-1)/maxStoredSize)
	pad := (8 - (int(pending)+3)%8) % 8
	return 3 + pad + 32 + (blocks-1)*40 + 8*n
}

func (e *Encoder) writeStored(raw []byte, final bool) {
	for first := true; first || len(raw) > 0; first = false {
		n := min(len(raw), maxStoredSize)
		var last uint32
		if final && n == len(raw) {
			last = 1
		}
		e.w.put(last, 3)
		e.w.alignByte()
		e.w.put(uint32(n)|uint32(^uint16(n))<<16, 32)
		e.w.out = append(e.w.out, raw[:n]...)
		raw = raw[n:]
	}
}

// header trims the unused trailing lengths of both codes and run-length
// codes the rest as one sequence (RFC 1951 3.2.7: symbol 16 repeats the
// previous length 3-6 times, 17 and 18 send 3-10 and 11-138 zeros), then
// builds the code-length code. hclen is how many of its lengths are sent.
func (e *Encoder) header() (nlit, ndist, hclen int) {
	nlit, ndist = numLitLen, numDist
	for nlit > endOfBlock+1 && e.lit.bits[nlit-1] == 0 {
		nlit--
	}
	for ndist > 1 && e.dist.bits[ndist-1] == 0 {
		ndist--
	}
	clear(e.clFreq[:])
	e.clSyms = e.clSyms[:0]
	emit := func(sym uint8, extra int) {
		e.clSyms = append(e.clSyms, uint16(sym)|uint16(extra)<<8)
		e.clFreq[sym]++
	}
	total := nlit + ndist
	length := func(k int) uint8 {
		if k < nlit {
			return e.lit.bits[k]
		}
		return e.dist.bits[k-nlit]
	}
	for i := 0; i < total; {
		v, run := length(i), 1
		for i+run < total && length(i+run) == v {
			run++
		}
		i += run
		if v == 0 {
			for run >= 11 {
				n := min(run, 138)
				emit(18, n-11)
				run -= n
			}
			if run >= 3 {
				emit(17, run-3)
				run = 0
			}
		} else {
			emit(v, 0)
			run--
			for run >= 3 {
				n := min(run, 6)
				emit(16, n-3)
				run -= n
			}
		}
		for ; run > 0; run-- {
			emit(v, 0)
		}
	}
	e.huff.build(&e.cl, e.clFreq[:], maxCLBits)
	hclen = numCodeLen
	for hclen > 4 && e.cl.bits[codeLenOrder[hclen-1]] == 0 {
		hclen--
	}
	return nlit, ndist, hclen
}

func (e *Encoder) writeHeader(nlit, ndist, hclen int) {
	e.w.put(uint32(nlit-257)|uint32(ndist-1)<<5|uint32(hclen-4)<<10, 14)
	for _, s := range codeLenOrder[:hclen] {
		e.w.put(uint32(e.cl.bits[s]), 3)
	}
	for _, s := range e.clSyms {
		sym := s & 0xff
		e.w.put(uint32(e.cl.codes[sym]), uint(e.cl.bits[sym]))
		switch sym {
		case 16:
			e.w.put(uint32(s>>8), 2)
		case 17:
			e.w.put(uint32(s>>8), 3)
		case 18:
			e.w.put(uint32(s>>8), 7)
		}
	}
}

// writeTokens sends the block's symbols and its end-of-block code. The
// bit accumulator is kept in registers; literals, nearly all the symbols
// of text-like data, take one table load (code | length<<16).
func (e *Encoder) writeTokens(tokens []uint32, lit, dist *code) {
	var litEnc [numLitLen]uint32
	for s, b := range lit.bits[:numLitLen] {
		litEnc[s] = uint32(lit.codes[s]) | uint32(b)<<16
	}
	acc, nbits, out := e.w.acc, e.w.nbits, e.w.out
	for _, t := range tokens {
		d := t & 0xffff
		if d == 0 {
			c := litEnc[t>>16&0xff]
			acc |= uint64(c&0xffff) << (nbits & 63)
			nbits += uint(c >> 16)
		} else {
			l := t >> 16
			ls := lengthSym[(l-minMatch)&0xff]
			c := litEnc[endOfBlock+1+int(ls)]
			acc |= uint64(c&0xffff|(l-uint32(lengthBase[ls]))<<(c>>16&31)) << (nbits & 63)
			nbits += uint(c>>16) + uint(lengthExtra[ls])
			if nbits >= 32 {
				out = binary.LittleEndian.AppendUint32(out, uint32(acc))
				acc >>= 32
				nbits -= 32
			}
			ds := distSym(int(d))
			acc |= uint64(uint32(dist.codes[ds])|(d-uint32(distBase[ds]))<<(dist.bits[ds]&31)) << (nbits & 63)
			nbits += uint(dist.bits[ds] + distExtra[ds])
		}
		if nbits >= 32 {
			out = binary.LittleEndian.AppendUint32(out, uint32(acc))
			acc >>= 32
			nbits -= 32
		}
	}
	e.w.acc, e.w.nbits, e.w.out = acc, nbits, out
	e.w.put(uint32(lit.codes[endOfBlock]), uint(lit.bits[endOfBlock]))
}
