package deflate

// The fixed alphabets of RFC 1951 section 3.2.5: a match length 3..258 is
// sent as a length symbol 257..285 plus extra bits, a distance 1..32768 as
// a distance symbol 0..29 plus extra bits.

const (
	minMatch      = 3   // shortest back-reference
	maxMatch      = 258 // longest back-reference
	endOfBlock    = 256 // literal/length symbol ending a block
	numLitLen     = 286 // literal/length symbols in use (286, 287 are reserved)
	numDist       = 30  // distance symbols in use (30, 31 are reserved)
	numCodeLen    = 19  // code-length alphabet
	maxCodeBits   = 15  // longest literal/length or distance code
	maxCLBits     = 7   // longest code-length code
	maxStoredSize = 65535
)

// lengthBase and lengthExtra give, for length symbols 257..285 (index 0..28),
// the shortest length the symbol stands for and its number of extra bits.
var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// codeLenOrder is the order in which the code-length code's lengths are
// sent (RFC 1951 3.2.7): the likely-used ones first, so trailing unused
// ones can be left off.
var codeLenOrder = [numCodeLen]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// lengthSym maps length-3 (0..255) to the length symbol index (0..28).
var lengthSym = func() (t [256]uint8) {
	for code := range lengthBase {
		lo := int(lengthBase[code]) - minMatch
		hi := lo + 1<<lengthExtra[code]
		for l := lo; l < hi && l < 256; l++ {
			t[l] = uint8(code)
		}
	}
	t[255] = 28 // length 258 has its own symbol (285), not 284 + 31
	return t
}()

// distSymSmall maps dist-1 for dist-1 < 512 and distSymLarge maps
// (dist-1)>>8 for larger distances to the distance symbol (0..29).
var distSymSmall, distSymLarge = func() (small [512]uint8, large [128]uint8) {
	for code := range distBase {
		lo := int(distBase[code]) - 1
		hi := lo + 1<<distExtra[code]
		for d := lo; d < hi; d++ {
			if d < 512 {
				small[d] = uint8(code)
			} else {
				large[d>>8] = uint8(code)
			}
		}
	}
	return small, large
}()

func distSym(dist int) uint8 {
	if d := dist - 1; d < 512 {
		return distSymSmall[d]
	} else {
		return distSymLarge[d>>8]
	}
}

// fixedLitLenBits and fixedDistBits are the code lengths of the fixed
// Huffman codes (RFC 1951 3.2.6).
var fixedLitLenBits = func() (t [288]uint8) {
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

var fixedDistBits = func() (t [32]uint8) {
	for i := range t {
		t[i] = 5
	}
	return t
}()
