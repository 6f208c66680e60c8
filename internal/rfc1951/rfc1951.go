// Package rfc1951 holds the constant tables of the deflate format (RFC
// 1951), which vdisk's encoder (internal/deflate) and decoder
// (internal/inflate) share: what each length and distance symbol stands
// for, the order of the code-length code's lengths, and the code lengths
// of the fixed Huffman codes.
package rfc1951

// LengthBase and LengthExtra give, for length symbols 257..285 (index
// 0..28), the shortest length the symbol stands for and its number of
// extra bits (3.2.5).
var (
	LengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	LengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
)

// DistBase and DistExtra give, for distance symbols 0..29, the shortest
// distance the symbol stands for and its number of extra bits (3.2.5).
var (
	DistBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	DistExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// FixedLitLenBits and FixedDistBits are the code lengths of the fixed
// Huffman codes (3.2.6): literal/length symbols 0..143 take 8 bits,
// 144..255 9, 256..279 7, 280..287 8; every distance symbol 5.
var (
	FixedLitLenBits = func() (t [288]uint8) {
		for i := range t {
			switch {
			case i < 144:
				t[i] = 8
			case i < 256:
				t[i] = 9
			case i < 280:
				t[i] = 7
			default:
				t[i] = 8
			}
		}
		return t
	}()
	FixedDistBits = func() (t [32]uint8) {
		for i := range t {
			t[i] = 5
		}
		return t
	}()
)

// CodeLenOrder is the order in which a dynamic block sends the
// code-length code's lengths (3.2.7): the likely-used ones first, so
// trailing unused ones can be left off.
var CodeLenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
