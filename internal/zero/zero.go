// Package zero tells whether a buffer holds only zero bytes, at memory
// speed: it compares against a zero block with bytes.Equal (vectorised),
// where a byte loop runs an order of magnitude slower. Zero detection sits
// on the conversion hot path (sparse output, skipped grains and clusters).
package zero

import "bytes"

// block is compared against and never written.
var block [64 << 10]byte

// Is reports whether every byte of p is zero.
func Is(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(block))
		if !bytes.Equal(p[:n], block[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}
