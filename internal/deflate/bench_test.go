package deflate

import (
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// benchData is 4 MiB of base64 text (like the bench's text workload) or
// of the corpus' mixed text, random and zero data.
func benchData(kind string) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	raw := make([]byte, 3<<20)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	if kind == "base64" {
		return []byte(base64.StdEncoding.EncodeToString(raw))[:4<<20]
	}
	var out []byte
	for len(out) < 4<<20 {
		out = append(out, corpus()["mixed"]...)
	}
	return out[:4<<20]
}

func benchEncode(b *testing.B, kind string, level, window int) {
	data := benchData(kind)
	e, _ := NewEncoder(level, window)
	var buf []byte
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for off := 0; off < len(data); off += 65536 {
			out, ok, _ := e.EncodeLimit(buf[:0], data[off:off+65536], 65536)
			if ok {
				buf = out
			}
		}
	}
}

func BenchmarkBase64Level6(b *testing.B)        { benchEncode(b, "base64", 6, 4096) }
func BenchmarkMixedLevel1(b *testing.B)         { benchEncode(b, "mixed", 1, 4096) }
func BenchmarkMixedLevel6(b *testing.B)         { benchEncode(b, "mixed", 6, 4096) }
func BenchmarkMixedLevel6Window32(b *testing.B) { benchEncode(b, "mixed", 6, 32768) }
