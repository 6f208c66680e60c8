package deflate

import (
	"math/rand/v2"
	"testing"
)

// fuzzInputBytes is how much of a fuzz input FuzzEncode reads (the rest is
// ignored): Go's fuzzer minimises every input that finds new coverage in
// some n*n/2 runs for n bytes and counts none of them unless it finishes
// within a minute, and a 64 KiB input takes up to 200 ms to encode at
// level 9. The large inputs (text, runs, random, Fibonacci frequencies,
// repeats beyond 32 KiB) are TestRoundTrip's; FuzzHuffman fuzzes skewed
// frequencies directly.
const fuzzInputBytes = 64

// maxGapBytes is the most incompressible bytes FuzzEncode puts between its
// input and a second copy of it: past the 256-byte and 4 KiB windows.
const maxGapBytes = 5 << 10

// FuzzEncode: any input, at any level and window, inflates back to itself
// with compress/flate and with the test decoder, and no back-reference
// reaches past the window. gap (modulo maxGapBytes+1) puts that many
// incompressible bytes between the input and a copy of it, so that matches
// reach for the copy at, just inside and just past the window.
func FuzzEncode(f *testing.F) {
	c := corpus()
	for _, name := range []string{"empty", "abc", "far", "fibonacci", "text"} {
		in := c[name]
		f.Add(in[:min(len(in), fuzzInputBytes)], uint8(DefaultLevel), uint8(1), uint16(0))
	}
	f.Add(c["text"][:60], uint8(1), uint8(0), uint16(256-60))        // the copy exactly 256 back
	f.Add(c["text"][:60], uint8(5), uint8(0), uint16(256-59))        // one byte past the window
	f.Add(c["far"][:64], uint8(9), uint8(1), uint16(4096-64))        // exactly 4 KiB back
	f.Add(c["far"][:64], uint8(3), uint8(1), uint16(4096-63))        // one byte past
	f.Add(c["mixed"][29970:30030], uint8(8), uint8(2), uint16(5000)) // 32 KiB window, within it
	windows := []int{256, 4096, 32768}
	noise := make([]byte, maxGapBytes)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	f.Fuzz(func(t *testing.T, in []byte, level, window uint8, gap uint16) {
		in = in[:min(len(in), fuzzInputBytes)]
		if g := int(gap) % (maxGapBytes + 1); g > 0 {
			in = append(append(append([]byte(nil), in...), noise[:g]...), in...)
		}
		lv := MinLevel + int(level)%MaxLevel
		win := windows[int(window)%len(windows)]
		e, err := NewEncoder(lv, win)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Encode(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		checkStream(t, out, in, win)
		if _, ok, _ := e.EncodeLimit(nil, in, len(out)); ok {
			t.Fatalf("EncodeLimit(%d): ok for a %d-byte stream", len(out), len(out))
		}
	})
}

// FuzzHuffman builds length-limited codes for arbitrary frequencies: each
// pair of input bytes is one symbol's frequency (m<<(e%25), so that one
// alphabet spans Fibonacci-like depths far past 15 bits), up to the 286
// literal/length symbols. The code must be complete and prefix-free, give
// every used symbol a code of at most maxBits bits (7, the code-length
// code's, or 15), and cost no more than the optimal unlimited Huffman code
// when that one fits in maxBits.
func FuzzHuffman(f *testing.F) {
	var fib []byte
	for s := range 30 {
		fib = append(fib, 1, byte(s)) // 1<<s: depth 29 unlimited
	}
	f.Add(fib, false)
	f.Add(fib[:20], true)
	f.Add([]byte{5, 0}, false)
	f.Add([]byte{}, true)
	f.Add([]byte{1, 0, 1, 0, 200, 3, 0, 0, 7, 9}, false)
	f.Fuzz(func(t *testing.T, in []byte, short bool) {
		n := min(len(in)/2, 286)
		freq := make([]uint32, max(n, 2))
		for s := range n {
			freq[s] = uint32(in[2*s]) << (in[2*s+1] % 25)
		}
		maxBits := maxCodeBits
		if short {
			maxBits = 7
			if len(freq) > 19 {
				freq = freq[:19] // the code-length alphabet
			}
		}
		var h huffman
		c := newCode(len(freq))
		h.build(&c, freq, maxBits)
		checkCode(t, c, freq, maxBits)
	})
}

// checkCode checks c against freq as FuzzHuffman describes.
func checkCode(t *testing.T, c code, freq []uint32, maxBits int) {
	t.Helper()
	used, kraft := 0, 0
	for s, b := range c.bits {
		if int(b) > maxBits {
			t.Fatalf("symbol %d: %d bits, limit %d", s, b, maxBits)
		}
		if freq[s] > 0 && b == 0 {
			t.Fatalf("symbol %d (frequency %d) has no code", s, freq[s])
		}
		if b > 0 {
			used++
			kraft += 1 << (maxBits - int(b))
		}
	}
	if used < 2 || kraft != 1<<maxBits {
		t.Fatalf("%d codes, Kraft sum %d/%d: not a complete code", used, kraft, 1<<maxBits)
	}
	for s, b := range c.bits {
		for s2, b2 := range c.bits {
			if s != s2 && b > 0 && b2 > 0 && b <= b2 && c.codes[s] == c.codes[s2]&(1<<b-1) {
				t.Fatalf("code of symbol %d is a prefix of symbol %d's", s, s2)
			}
		}
	}
	if opt, depth := huffmanCost(freq); depth <= maxBits && c.cost(freq) > opt {
		t.Fatalf("cost %d bits, the optimal code %d (depth %d fits in %d)", c.cost(freq), opt, depth, maxBits)
	}
}

// huffmanCost is the cost in bits of an optimal unlimited Huffman code for
// the used symbols of freq and its depth (an independent, quadratic
// construction: merge the two lightest nodes until one is left).
func huffmanCost(freq []uint32) (cost, depth int) {
	type node struct{ w, depth int }
	var nodes []node
	for _, f := range freq {
		if f > 0 {
			nodes = append(nodes, node{int(f), 0})
		}
	}
	if len(nodes) < 2 {
		for _, n := range nodes {
			cost += n.w // a spare symbol pads the code: one bit
		}
		return cost, 1
	}
	for len(nodes) > 1 {
		a := 0
		for i := range nodes {
			if nodes[i].w < nodes[a].w {
				a = i
			}
		}
		x := nodes[a]
		nodes = append(nodes[:a], nodes[a+1:]...)
		b := 0
		for i := range nodes {
			if nodes[i].w < nodes[b].w {
				b = i
			}
		}
		y := nodes[b]
		cost += x.w + y.w
		nodes[b] = node{x.w + y.w, max(x.depth, y.depth) + 1}
	}
	return cost, nodes[0].depth
}
