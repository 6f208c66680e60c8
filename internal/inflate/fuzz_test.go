package inflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"testing"
)

// FuzzDecode decodes any input into buffers of several sizes: no panic,
// every error wraps ErrCorrupt, and whatever decodes is what
// compress/flate decodes (it refuses what compress/flate refuses, but for
// an input that ends inside the stream once the buffer is full, which
// zlib accepts as Decode does: testdata/fuzz/FuzzDecode/a0927eda1c24837e,
// 6000 bytes from 40, as python3's zlib.decompressobj(-15) gives them).
func FuzzDecode(f *testing.F) {
	for _, s := range [][]byte{[]byte("hello, hello, hello"), bytes.Repeat([]byte("ab"), 3000), {0, 1, 2, 3, 250}} {
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression, flate.HuffmanOnly} {
			var b bytes.Buffer
			w, _ := flate.NewWriter(&b, level)
			w.Write(s)
			w.Close()
			f.Add(b.Bytes(), uint16(len(s)))
		}
	}
	f.Add([]byte{0x03, 0x00}, uint16(0))
	f.Add(make([]byte, 16), uint16(8))
	var d Decoder
	f.Fuzz(func(t *testing.T, src []byte, size uint16) {
		dst := make([]byte, size)
		err := d.Decode(dst, src)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		want := make([]byte, size)
		n, ref := io.ReadFull(flate.NewReader(bytes.NewReader(src)), want)
		switch {
		case err != nil:
		case ref == io.ErrUnexpectedEOF:
			// The input ends after the buffer is full but inside the
			// stream: zlib (qemu's inflater) fills the buffer and so does
			// Decode, while compress/flate drops what it decoded since its
			// last flush. What it did give must be what Decode gave.
			if !bytes.Equal(dst[:n], want[:n]) {
				t.Fatal("output differs from compress/flate's")
			}
		case ref != nil:
			t.Fatalf("decoded what compress/flate refuses (%v)", ref)
		case !bytes.Equal(dst, want):
			t.Fatal("output differs from compress/flate's")
		}
	})
}
