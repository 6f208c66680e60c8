package deflate

import "encoding/binary"

// bitWriter packs codes least-significant bit first (RFC 1951 3.1.1):
// Huffman codes are sent with their first bit in the lowest position, so
// they are stored bit-reversed; extra bits and header fields are plain
// little-endian integers.
type bitWriter struct {
	out   []byte
	acc   uint64 // pending bits, lowest first
	nbits uint   // number of pending bits (< 32 between calls)
}

// put appends the low n bits of v (n <= 32).
func (w *bitWriter) put(v uint32, n uint) {
	w.acc |= uint64(v) << (w.nbits & 63)
	w.nbits += n
	if w.nbits >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.acc))
		w.acc >>= 32
		w.nbits -= 32
	}
}

// alignByte pads with zero bits to the next byte boundary and writes out
// every whole pending byte.
func (w *bitWriter) alignByte() {
	w.nbits = (w.nbits + 7) &^ 7
	for w.nbits > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
}

// bitLen is the number of bits written so far.
func (w *bitWriter) bitLen() int { return 8*len(w.out) + int(w.nbits) }
