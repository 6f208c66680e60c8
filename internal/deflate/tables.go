package deflate

import "github.com/vdiskio/vdisk/internal/rfc1951"

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

// The format's tables (internal/rfc1951), under the names the encoder
// uses: the length and distance symbols' bases and extra bits, the order
// of the code-length code's lengths.
var (
	lengthBase   = rfc1951.LengthBase
	lengthExtra  = rfc1951.LengthExtra
	distBase     = rfc1951.DistBase
	distExtra    = rfc1951.DistExtra
	codeLenOrder = rfc1951.CodeLenOrder
)

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
var (
	fixedLitLenBits = rfc1951.FixedLitLenBits
	fixedDistBits   = rfc1951.FixedDistBits
)
