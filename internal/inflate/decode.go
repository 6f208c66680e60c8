package inflate

import (
	"encoding/binary"
	"fmt"
)

// huffman decodes one compressed block's symbols into dst from out, with
// the codes lt (literal/length) and dt (distance), until the end of the
// block or until dst is full. The bit reader lives in locals here (the hot
// loop); it is stored back on return.
func (d *Decoder) huffman(dst []byte, out int, lt *[litlenEnough]uint32, dt *[distEnough]uint32) (int, error) {
	src := d.src
	fastEnd := len(src) - 8 // the fast refill loads 8 bytes from in <= fastEnd
	bitbuf, nbits, in := d.bitbuf, d.nbits, d.in
	for out < len(dst) {
		// Refill: at least 56 bits, enough for a length code and a
		// distance with their extra bits (15+5+15+13).
		if in <= fastEnd {
			bitbuf |= binary.LittleEndian.Uint64(src[in:]) << (nbits & 63)
			in += 7 - int(nbits>>3&7)
			nbits |= 56
		} else {
			d.bitbuf, d.nbits, d.in = bitbuf, nbits, in
			if err := d.refill(); err != nil {
				return out, err
			}
			bitbuf, nbits, in = d.bitbuf, d.nbits, d.in
		}
		e := lt[bitbuf&(1<<litlenBits-1)]
		if e&flagSub != 0 {
			bitbuf >>= litlenBits
			nbits -= litlenBits
			e = lt[e>>16+uint32(bitbuf)&(1<<(e>>4&15)-1)]
		}
		if e&flagLiteral != 0 {
			n := uint(e & 15)
			bitbuf >>= n & 63
			nbits -= n
			dst[out] = byte(e >> 16)
			out++
			// A second literal without a refill (41 bits are left).
			e = lt[bitbuf&(1<<litlenBits-1)]
			if e&(flagLiteral|flagSub) != flagLiteral || out >= len(dst) {
				continue
			}
			n = uint(e & 15)
			bitbuf >>= n & 63
			nbits -= n
			dst[out] = byte(e >> 16)
			out++
			continue
		}
		if e&(flagEOB|flagInvalid) != 0 {
			n := uint(e & 15)
			d.bitbuf, d.nbits, d.in = bitbuf>>(n&63), nbits-n, in
			if e&flagEOB != 0 {
				return out, nil
			}
			return out, d.corrupt("invalid literal/length code")
		}
		// A length: its code and extra bits are consumed together (at
		// least 36 bits remain for the distance: no refill).
		n, extra := uint(e&15), uint(e>>4&15)
		length := int(e>>16) + int(bitbuf>>(n&63)&(1<<extra-1))
		bitbuf >>= (n + extra) & 63
		nbits -= n + extra
		e = dt[bitbuf&(1<<distBits-1)]
		if e&flagSub != 0 {
			bitbuf >>= distBits
			nbits -= distBits
			e = dt[e>>16+uint32(bitbuf)&(1<<(e>>4&15)-1)]
		}
		n, extra = uint(e&15), uint(e>>4&15)
		dist := int(e>>16) + int(bitbuf>>(n&63)&(1<<extra-1))
		bitbuf >>= (n + extra) & 63
		nbits -= n + extra
		if dist > out || e&flagInvalid != 0 {
			d.bitbuf, d.nbits, d.in = bitbuf, nbits, in
			if e&flagInvalid != 0 {
				return out, d.corrupt("invalid distance code")
			}
			return out, d.corrupt(fmt.Sprintf("distance %d before the start of the output (at %d)", dist, out))
		}
		if from := out - dist; dist >= 8 && out+length+8 <= len(dst) {
			// The common match, copied here rather than in a call: eight
			// bytes at a time (copyMatch says why that is right).
			for i := 0; i < length; i += 8 {
				binary.LittleEndian.PutUint64(dst[out+i:], binary.LittleEndian.Uint64(dst[from+i:]))
			}
			out += length
			continue
		}
		out = copyMatch(dst, out, dist, length)
	}
	d.bitbuf, d.nbits, d.in = bitbuf, nbits, in
	return out, nil
}

// copyMatch copies length bytes from dist bytes back to dst[out:], cut at
// the end of dst, and returns the new end of the output.
func copyMatch(dst []byte, out, dist, length int) int {
	end := out + length
	if dist >= 8 && end+8 <= len(dst) {
		// Eight bytes at a time: each load reads bytes already written
		// (dist >= 8); the last store may write up to 7 bytes past the
		// match, which the output will overwrite.
		for from := out - dist; out < end; out, from = out+8, from+8 {
			binary.LittleEndian.PutUint64(dst[out:], binary.LittleEndian.Uint64(dst[from:]))
		}
		return end
	}
	end = min(end, len(dst))
	if dist >= length {
		copy(dst[out:end], dst[out-dist:])
		return end
	}
	// Overlapping: the pattern of dist bytes doubles with each copy.
	for n := out; n < end; {
		n += copy(dst[n:end], dst[out-dist:n])
	}
	return end
}
