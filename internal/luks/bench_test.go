package luks

import "testing"

// BenchmarkSectorCipher measures payload encryption throughput.
func BenchmarkSectorCipher(b *testing.B) {
	for _, spec := range []Spec{DefaultSpec, {Cipher: "aes", Mode: ModeCBC, IVGen: IVESSIV, IVHash: "sha256"}} {
		key := make([]byte, 64)
		if spec.Mode != ModeXTS {
			key = key[:32]
		}
		c, err := NewSectorCipher(spec, key, 512)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		b.Run(spec.String(), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				c.Encrypt(buf, 0)
			}
		})
	}
}
