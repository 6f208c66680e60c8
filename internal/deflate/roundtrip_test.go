package deflate

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"io"
	"math/rand/v2"
	"testing"
)

func stdInflate(t testing.TB, stream []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(stream)))
	if err != nil {
		t.Fatalf("compress/flate: %v", err)
	}
	return out
}

// checkStream inflates stream with the standard library and with the test
// decoder, and checks both against want and the window bound.
func checkStream(t testing.TB, stream, want []byte, window int) checkStats {
	t.Helper()
	if got := stdInflate(t, stream); !bytes.Equal(got, want) {
		t.Fatalf("compress/flate inflates %d bytes that differ from the %d input bytes", len(got), len(want))
	}
	got, st, err := inflateCheck(stream)
	if err != nil {
		t.Fatalf("test decoder: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("test decoder inflates %d bytes that differ from the %d input bytes", len(got), len(want))
	}
	if st.maxDist > window {
		t.Fatalf("back-reference distance %d exceeds the %d-byte window", st.maxDist, window)
	}
	return st
}

// corpus makes inputs that exercise every path: empty, tiny, runs,
// text, random (stored blocks), long repeats at and beyond the window,
// and skewed alphabets (deep Huffman trees, length limiting).
func corpus() map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	words := []string{"disk ", "image ", "cluster ", "sector ", "the ", "qcow2 ", "vmdk\n"}
	var text []byte
	for len(text) < 70000 {
		text = append(text, words[r.IntN(len(words))]...)
	}
	far := rnd(40000)
	copy(far[4096:], far[:300])  // exactly at a 4 KiB distance
	copy(far[8200:], far[:300])  // beyond 4 KiB
	copy(far[33000:], far[:300]) // beyond 32 KiB
	fib := []byte{}
	a, b := 1, 1
	for s := 0; s < 25; s++ { // Fibonacci frequencies: an unlimited code would be 24 deep
		fib = append(fib, bytes.Repeat([]byte{byte(s)}, a)...)
		a, b = b, a+b
	}
	r.Shuffle(len(fib), func(i, j int) { fib[i], fib[j] = fib[j], fib[i] })
	return map[string][]byte{
		"empty": nil, "one": {7}, "two": {7, 7}, "abc": []byte("abcabcabcabcabc"),
		"zeros": make([]byte, 70000), "text": text, "random": rnd(70000),
		"far": far, "fibonacci": fib, "mixed": append(append(rnd(30000), text[:30000]...), make([]byte, 30000)...),
	}
}

func TestRoundTrip(t *testing.T) {
	for _, in := range corpus() {
		for lv := MinLevel; lv <= MaxLevel; lv++ {
			for _, win := range []int{256, 4096, 32768} {
				if win == 32768 && lv != MinLevel && lv != DefaultLevel {
					continue // slow (long chains); TestZlib covers more
				}
				e, err := NewEncoder(lv, win)
				if err != nil {
					t.Fatal(err)
				}
				for range 2 { // the second run reuses the tables
					out, err := e.Encode(nil, in)
					if err != nil {
						t.Fatal(err)
					}
					checkStream(t, out, in, win)
				}
			}
		}
	}
}

// TestBlockTypes: random data goes out stored (never larger than the input
// plus a few header bytes), tiny inputs in a fixed block, text dynamic.
func TestBlockTypes(t *testing.T) {
	c := corpus()
	e, _ := NewEncoder(DefaultLevel, 4096)
	for _, tc := range []struct {
		name string
		typ  int
	}{{"random", 0}, {"abc", 1}, {"text", 2}} {
		out, _ := e.Encode(nil, c[tc.name])
		st := checkStream(t, out, c[tc.name], 4096)
		if st.blocks[tc.typ] == 0 {
			t.Errorf("%s: block types %v, want some of type %d", tc.name, st.blocks, tc.typ)
		}
		if tc.typ == 0 && len(out) > len(c[tc.name])+5*(len(c[tc.name])/blockTokens+1) {
			t.Errorf("random: %d bytes out of %d", len(out), len(c[tc.name]))
		}
	}
}

func TestEncodeLimit(t *testing.T) {
	c := corpus()
	e, _ := NewEncoder(DefaultLevel, 4096)
	full, _ := e.Encode(nil, c["text"])
	dst := []byte("prefix")
	if out, ok, err := e.EncodeLimit(dst, c["text"], len(full)); ok || err != nil || string(out) != "prefix" {
		t.Fatalf("limit %d (the exact size): ok %v, err %v, out %q", len(full), ok, err, out[:min(len(out), 10)])
	}
	out, ok, err := e.EncodeLimit(dst, c["text"], len(full)+1)
	if !ok || err != nil || !bytes.Equal(out[6:], full) || string(out[:6]) != "prefix" {
		t.Fatalf("limit %d: ok %v, err %v", len(full)+1, ok, err)
	}
	if _, ok, _ := e.EncodeLimit(nil, c["random"], len(c["random"])); ok {
		t.Fatal("random data: reported smaller than its input")
	}
}

func TestBadParameters(t *testing.T) {
	for _, tc := range []struct{ level, window int }{{0, 4096}, {10, 4096}, {6, 100}, {6, 65536}, {6, 3000}} {
		if _, err := NewEncoder(tc.level, tc.window); err == nil {
			t.Errorf("NewEncoder(%d, %d): no error", tc.level, tc.window)
		}
	}
}

func TestZlib(t *testing.T) {
	c := corpus()
	for _, lv := range []int{MinLevel, DefaultLevel, MaxLevel} {
		e, _ := NewEncoder(lv, 32768)
		for name, in := range c {
			out, err := e.EncodeZlib([]byte{1, 2}, in)
			if err != nil {
				t.Fatal(err)
			}
			zr, err := zlib.NewReader(bytes.NewReader(out[2:]))
			if err != nil {
				t.Fatalf("%s level %d: %v", name, lv, err)
			}
			got, err := io.ReadAll(zr) // checks the Adler-32
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("%s level %d: %v", name, lv, err)
			}
		}
	}
}
