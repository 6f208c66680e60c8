package deflate

import "testing"

// FuzzEncode: any input, at any level and window, inflates back to itself
// with compress/flate and with the test decoder, and no back-reference
// reaches past the window.
func FuzzEncode(f *testing.F) {
	c := corpus()
	for _, name := range []string{"empty", "abc", "far", "fibonacci"} {
		in := c[name]
		f.Add(in[:min(len(in), 64<<10)], uint8(DefaultLevel), uint8(1))
	}
	f.Add(c["text"][:20000], uint8(1), uint8(0))
	f.Add(c["mixed"][25000:40000], uint8(9), uint8(2))
	windows := []int{256, 4096, 32768}
	f.Fuzz(func(t *testing.T, in []byte, level, window uint8) {
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
