package deflate

import (
	"math"
	"testing"
)

// TestBlockSplit: a buffer of random bytes, then text, then zeros fills one
// 32768-symbol block; split, the random part goes out stored and the rest
// in dynamic blocks, so the stream is hardly larger than the random part
// and the text compressed alone: by the headers and the leaf of 4096
// symbols that straddles the change (one block for the whole, which codes
// the text with the random bytes' code, is 1.8 KiB larger).
func TestBlockSplit(t *testing.T) {
	in := corpus()["mixed"] // 30000 random bytes, 30000 of text, 30000 zeros
	for _, win := range []int{4096, 32768} {
		e, _ := NewEncoder(DefaultLevel, win)
		out, _ := e.Encode(nil, in)
		st := checkStream(t, out, in, win)
		if st.blocks[0] == 0 || st.blocks[2] == 0 {
			t.Errorf("window %d: block types %v, want stored and dynamic blocks", win, st.blocks)
		}
		text, _ := e.Encode(nil, in[30000:60000])
		if limit := 30000 + len(text) + 1024; len(out) > limit {
			t.Errorf("window %d: %d bytes, more than the random part, the text alone (%d) and 1 KiB", win, len(out), len(text))
		}
	}
}

// TestLog2Fixed: the estimates' logarithm is within 2/256 of a bit.
func TestLog2Fixed(t *testing.T) {
	for x := uint32(1); x <= 1<<17; x++ {
		want := math.Log2(float64(x)) * 256
		if got := float64(log2Fixed(x)); math.Abs(got-want) > 2 {
			t.Fatalf("log2Fixed(%d) = %v/256, want %.2f/256", x, got, want)
		}
	}
}
