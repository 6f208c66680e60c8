package inflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/internal/deflate"
)

// samples are inputs of the kinds disk clusters hold: text, runs, random
// bytes, structured binary, mixes, and sizes around the edges.
func samples(rng *rand.Rand) [][]byte {
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog; "), 2000)
	structured := make([]byte, 65536)
	for i := range structured {
		structured[i] = byte(i*7 + i/13 + int(rng.Uint32()&1))
	}
	words := make([]byte, 0, 65536)
	for len(words) < 65536 {
		words = append(words, []string{"alpha ", "beta ", "gamma\n", "\x00\x00\x00\x01", "delta\t"}[rng.IntN(5)]...)
	}
	mix := append(append(random(20000), text[:20000]...), make([]byte, 25536)...)
	return [][]byte{
		{}, {0}, []byte("a"), []byte("ab"), text[:3], text[:258], text[:259],
		text[:65536], random(65536), structured, words[:65536], mix,
		random(100), text[:4096], bytes.Repeat([]byte{0xab}, 70000), random(70000),
	}
}

var (
	streamsOnce      sync.Once
	streamsRaw       [][]byte
	streamsCompessed [][]byte
)

// streams compresses each sample with compress/flate at every level and
// with vdisk's encoder (4 KiB and 32 KiB windows), once for all tests.
func streams(t testing.TB) (raw, comp [][]byte) {
	streamsOnce.Do(func() { streamsRaw, streamsCompessed = makeStreams(t) })
	return streamsRaw, streamsCompessed
}

func makeStreams(t testing.TB) (raw, comp [][]byte) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range samples(rng) {
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, 2, 6, flate.BestCompression, flate.HuffmanOnly} {
			var b bytes.Buffer
			w, err := flate.NewWriter(&b, level)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(s)
			w.Close()
			raw, comp = append(raw, s), append(comp, b.Bytes())
		}
		for _, window := range []int{4096, 32768} {
			enc, err := deflate.NewEncoder(deflate.DefaultLevel, window)
			if err != nil {
				t.Fatal(err)
			}
			out, err := enc.Encode(nil, s)
			if err != nil {
				t.Fatal(err)
			}
			raw, comp = append(raw, s), append(comp, out)
		}
	}
	return raw, comp
}

// reference decodes with compress/flate the way qcow2 used to (and qemu
// does): the first len(dst) bytes of the stream, or an error.
func reference(dst, src []byte) error {
	_, err := io.ReadFull(flate.NewReader(bytes.NewReader(src)), dst)
	return err
}

func TestDecodeLikeCompressFlate(t *testing.T) {
	raw, comp := streams(t)
	var d Decoder
	for i := range raw {
		dst := make([]byte, len(raw[i]))
		if err := d.Decode(dst, comp[i]); err != nil {
			t.Fatalf("stream %d (%d bytes of %d): %v", i, len(comp[i]), len(raw[i]), err)
		}
		if !bytes.Equal(dst, raw[i]) {
			t.Fatalf("stream %d: output differs", i)
		}
		// Trailing bytes after the stream (the next cluster's) are not read.
		if err := d.Decode(dst, append(bytes.Clone(comp[i]), 0xff, 0xff, 0xff)); err != nil || !bytes.Equal(dst, raw[i]) {
			t.Fatalf("stream %d with trailing bytes: %v", i, err)
		}
		// A prefix of the output decodes from the stream's start, as
		// compress/flate's first bytes do.
		if n := len(raw[i]) / 3; n > 0 {
			if err := d.Decode(dst[:n], comp[i]); err != nil || !bytes.Equal(dst[:n], raw[i][:n]) {
				t.Fatalf("stream %d, first %d bytes: %v", i, n, err)
			}
		}
		// One byte more than the stream holds is refused.
		long := make([]byte, len(raw[i])+1)
		if err := d.Decode(long, comp[i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("stream %d into %d bytes: %v", i, len(long), err)
		}
	}
}

// TestCutStreams: every cut of a stream is refused (or, when the cut keeps
// all the bits the output needs, decodes like compress/flate).
func TestCutStreams(t *testing.T) {
	raw, comp := streams(t)
	var d Decoder
	for i := range raw {
		if len(raw[i]) == 0 {
			continue
		}
		dst := make([]byte, len(raw[i]))
		want := make([]byte, len(raw[i]))
		for cut := 0; cut < len(comp[i]); cut += 1 + cut/8 + len(comp[i])/64 {
			err := d.Decode(dst, comp[i][:cut])
			ref := reference(want, comp[i][:cut])
			if (err == nil) != (ref == nil) {
				t.Fatalf("stream %d cut to %d of %d: %v, compress/flate: %v", i, cut, len(comp[i]), err, ref)
			}
			if err == nil && !bytes.Equal(dst, want) {
				t.Fatalf("stream %d cut to %d: output differs", i, cut)
			}
		}
	}
}

// TestMutatedStreams: streams with bytes changed decode exactly as
// compress/flate decodes them, or both refuse them; Decode never panics.
func TestMutatedStreams(t *testing.T) {
	raw, comp := streams(t)
	rng := rand.New(rand.NewPCG(3, 4))
	var d Decoder
	var refused, same int
	for i := range raw {
		if len(comp[i]) == 0 {
			continue
		}
		dst := make([]byte, len(raw[i]))
		want := make([]byte, len(raw[i]))
		mutations := 30
		if raceBuild {
			mutations = 4
		}
		for range mutations {
			m := bytes.Clone(comp[i])
			for range 1 + rng.IntN(3) {
				m[rng.IntN(min(len(m), 64+rng.IntN(len(m))))] ^= byte(1 << rng.IntN(8))
			}
			err := d.Decode(dst, m)
			ref := reference(want, m)
			switch {
			case err == nil && ref == nil:
				if !bytes.Equal(dst, want) {
					t.Fatalf("stream %d mutated: outputs differ", i)
				}
				same++
			case err != nil && ref != nil:
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("stream %d mutated: error %v does not wrap ErrCorrupt", i, err)
				}
				refused++
			default:
				t.Fatalf("stream %d mutated (%x...): vdisk %v, compress/flate %v", i, m[:min(len(m), 16)], err, ref)
			}
		}
	}
	t.Logf("%d mutated streams decoded alike, %d refused by both", same, refused)
}

// bitWriter writes crafted streams, least significant bit first.
type bitWriter struct {
	out   []byte
	acc   uint64
	nbits uint
}

func (w *bitWriter) bits(v uint64, n uint) *bitWriter {
	w.acc |= v << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
	return w
}

// code writes a Huffman code of n bits, most significant bit first.
func (w *bitWriter) code(c uint64, n uint) *bitWriter {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(c>>uint(i)&1, 1)
	}
	return w
}

func (w *bitWriter) bytes() []byte {
	if w.nbits > 0 {
		return append(w.out, byte(w.acc))
	}
	return w.out
}

// dynamicHeader writes a dynamic block header with the given code lengths
// (literal/length then distance), each sent as a 4-bit-coded length: the
// code-length code gives symbols 0..15 4-bit codes (complete).
func dynamicHeader(w *bitWriter, final uint64, lit, dist []uint8) {
	w.bits(final, 1).bits(2, 2)
	w.bits(uint64(len(lit)-257), 5).bits(uint64(len(dist)-1), 5).bits(19-4, 4)
	var cl [19]uint8
	for s := range 16 {
		cl[s] = 4
	}
	for _, s := range codelenOrder {
		w.bits(uint64(cl[s]), 3)
	}
	for _, l := range append(append([]uint8{}, lit...), dist...) {
		w.code(uint64(l), 4) // symbols 0..15 of 4 bits: the code of s is s
	}
}

// fixedLit writes a literal with the fixed code.
func fixedLit(w *bitWriter, b byte) {
	if b < 144 {
		w.code(0x30+uint64(b), 8)
	} else {
		w.code(0x190+uint64(b-144), 9)
	}
}

func TestCraftedStreams(t *testing.T) {
	lens := func(n int, l uint8) []uint8 { return bytes.Repeat([]uint8{l}, n) }
	// A complete literal/length code: 256 symbols of 9 bits... use 8 bits
	// for 0..255 minus two, plus EOB and a length code: 254*8-bit + ...:
	// simpler, 286 symbols: 30 of 8 bits and 256 of 9 bits (30/256 +
	// 256/512 = 0.617: incomplete). Codes used below are built to be
	// complete: 256 literals of 9 bits and 256 other lengths of 9 bits.
	full := func() []uint8 { // 257 + 29 = 286 symbols
		l := lens(286, 9)
		// 286 codes of 9 bits fill 286/512; make 226 of them 8 bits:
		// 226/256 + 60/512 = 1.
		for s := 0; s < 226; s++ {
			l[s] = 8
		}
		return l
	}
	cases := []struct {
		name string
		make func() []byte
		out  int
	}{
		{"block type 3", func() []byte { return new(bitWriter).bits(1, 1).bits(3, 2).bytes() }, 10},
		{"stored lengths not complemented", func() []byte {
			return append(new(bitWriter).bits(1, 1).bits(0, 2).bytes(), 5, 0, 0xfa, 0xfe, 1, 2, 3, 4, 5)
		}, 5},
		{"stored block cut", func() []byte { return append(new(bitWriter).bits(1, 1).bits(0, 2).bytes(), 5, 0, 0xfa, 0xff, 1, 2) }, 5},
		{"distance before the start", func() []byte {
			w := new(bitWriter).bits(1, 1).bits(1, 2)
			fixedLit(w, 'a')
			w.code(1, 7) // length 3 (symbol 257)
			w.code(1, 5) // distance 2
			return w.code(0, 7).bytes()
		}, 4},
		{"invalid distance symbol 30", func() []byte {
			w := new(bitWriter).bits(1, 1).bits(1, 2)
			fixedLit(w, 'a')
			w.code(1, 7)
			w.code(30, 5)
			return w.code(0, 7).bytes()
		}, 4},
		{"invalid length symbol 286", func() []byte {
			w := new(bitWriter).bits(1, 1).bits(1, 2)
			fixedLit(w, 'a')
			w.code(0xc6, 8) // 280 is 0xc0: 286 is 0xc6
			return w.code(0, 7).bytes()
		}, 4},
		{"stream ends before the output is full", func() []byte {
			w := new(bitWriter).bits(1, 1).bits(1, 2)
			fixedLit(w, 'a')
			return w.code(0, 7).bytes()
		}, 2},
		{"too many length symbols", func() []byte {
			return new(bitWriter).bits(1, 1).bits(2, 2).bits(30, 5).bits(0, 5).bits(0, 4).bytes()
		}, 1},
		{"too many distance symbols", func() []byte {
			return new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(30, 5).bits(0, 4).bytes()
		}, 1},
		{"incomplete code-length code", func() []byte {
			w := new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4)
			return w.bits(1, 3).bits(0, 9).bytes() // only symbol 16, of 1 bit
		}, 1},
		{"over-subscribed code-length code", func() []byte {
			w := new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4)
			return w.bits(1, 3).bits(1, 3).bits(1, 3).bits(0, 3).bytes()
		}, 1},
		{"repeat with no previous length", func() []byte {
			w := new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4)
			for range 16 {
				w.bits(4, 3)
			}
			for range 3 {
				w.bits(0, 3)
			}
			// Symbols 16,17,18,0,8,7,9,6,10,5,11,4,12,3,13,2 have 4-bit
			// codes in symbol order: 0 is 0000, ..., 16 is 1101.
			return w.code(13, 4).bits(0, 2).bytes()
		}, 1},
		{"no end-of-block code", func() []byte {
			w := new(bitWriter)
			l := full()
			l[256] = 0
			dynamicHeader(w, 1, l, []uint8{1, 1})
			return w.bits(0, 16).bytes()
		}, 1},
		{"incomplete literal/length code", func() []byte {
			w := new(bitWriter)
			l := full()
			l[0] = 9 // frees half an 8-bit code
			dynamicHeader(w, 1, l, []uint8{1, 1})
			return w.bits(0, 16).bytes()
		}, 1},
		{"over-subscribed distance code", func() []byte {
			w := new(bitWriter)
			dynamicHeader(w, 1, full(), []uint8{1, 1, 1})
			return w.bits(0, 16).bytes()
		}, 1},
		{"incomplete distance code of two lengths", func() []byte {
			w := new(bitWriter)
			dynamicHeader(w, 1, full(), []uint8{1, 2})
			return w.bits(0, 16).bytes()
		}, 1},
		{"unused half of a single distance code", func() []byte {
			w := new(bitWriter)
			dynamicHeader(w, 1, full(), []uint8{1})
			w.code(0, 8)          // literal 0
			w.code(0xe2<<1+31, 9) // symbol 257 (length 3): 9-bit codes start at 226<<1
			w.code(1, 1)          // the unused 1-bit distance code
			return w.bits(0, 16).bytes()
		}, 4},
		{"length code without distance codes", func() []byte {
			w := new(bitWriter)
			dynamicHeader(w, 1, full(), []uint8{0})
			w.code(0, 8)
			w.code(0xe2<<1+31, 9)
			return w.bits(0, 16).bytes()
		}, 4},
		{"zero bytes", func() []byte { return make([]byte, 40) }, 8},
		{"empty input", func() []byte { return nil }, 1},
	}
	var d Decoder
	for _, c := range cases {
		src := c.make()
		dst := make([]byte, c.out)
		err := d.Decode(dst, src)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if ref := reference(make([]byte, c.out), src); ref == nil {
			t.Errorf("%s: compress/flate decodes it", c.name)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

// TestSingleCodes: the single 1-bit codes zlib accepts decode.
func TestSingleCodes(t *testing.T) {
	// Literal/length code: 'a' and EOB of 1 bit each ... a single-code
	// literal/length code can only be EOB (an empty block); here a block of
	// one distance code: literal 'x', then length 3 at distance 1.
	l := make([]uint8, 286)
	for s := 0; s < 226; s++ {
		l[s] = 8
	}
	for s := 226; s < 286; s++ {
		l[s] = 9
	}
	w := new(bitWriter)
	dynamicHeader(w, 1, l, []uint8{1})
	w.code('x', 8)
	w.code(0xe2<<1+(257-226), 9) // symbol 257
	w.code(0, 1)                 // distance 1
	w.code(0xe2<<1+(256-226), 9) // EOB
	src := w.bytes()
	var d Decoder
	dst := make([]byte, 4)
	if err := d.Decode(dst, src); err != nil || string(dst) != "xxxx" {
		t.Fatalf("single distance code: %q, %v", dst, err)
	}
	if err := reference(dst, src); err != nil || string(dst) != "xxxx" {
		t.Fatalf("compress/flate: %q, %v", dst, err)
	}
	// An empty dynamic block whose only literal/length code is EOB, then a
	// stored block.
	w = new(bitWriter)
	one := make([]uint8, 257)
	one[256] = 1
	dynamicHeader(w, 0, one, []uint8{0})
	w.code(0, 1)
	src = append(w.bits(1, 1).bits(0, 2).bytes(), 2, 0, 0xfd, 0xff, 'o', 'k')
	if err := d.Decode(dst[:2], src); err != nil || string(dst[:2]) != "ok" {
		t.Fatalf("EOB-only code: %q, %v", dst[:2], err)
	}
}

// TestMatchCopies: every distance 1..40 with lengths 3..258, near the end
// of the buffer and not, against compress/flate.
func TestMatchCopies(t *testing.T) {
	var d Decoder
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	for dist := 1; dist <= 40; dist++ {
		for _, length := range []int{3, 4, 7, 8, 9, 15, 16, 17, 31, 64, 100, 257, 258} {
			src := make([]byte, 0, dist+length+1)
			for i := range dist {
				src = append(src, byte('A'+i))
			}
			for i := range length {
				src = append(src, src[i])
			}
			src = append(src, 'z')
			for _, tail := range []int{0, 1, 7, 300} {
				in := append(bytes.Clone(src), bytes.Repeat([]byte{'q'}, tail)...)
				b.Reset()
				fw.Reset(&b)
				fw.Write(in)
				fw.Close()
				dst := make([]byte, len(in))
				if err := d.Decode(dst, b.Bytes()); err != nil || !bytes.Equal(dst, in) {
					t.Fatalf("dist %d length %d tail %d: %v", dist, length, tail, err)
				}
			}
		}
	}
}
