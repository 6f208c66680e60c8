package inflate

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"
)

// BenchmarkDecode decodes the test samples' vdisk-encoded streams (4 KiB
// window, as qcow2 clusters are), against compress/flate's reader.
func BenchmarkDecode(b *testing.B) {
	raw, comp := streams(b)
	var n int64
	for i := range raw {
		n += int64(len(raw[i]))
	}
	b.Run("inflate", func(b *testing.B) {
		var d Decoder
		b.SetBytes(n)
		for range b.N {
			for i := range raw {
				if err := d.Decode(make([]byte, len(raw[i])), comp[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("compress-flate", func(b *testing.B) {
		b.SetBytes(n)
		r := flate.NewReader(nil)
		for range b.N {
			for i := range raw {
				r.(flate.Resetter).Reset(bytes.NewReader(comp[i]), nil)
				if _, err := io.ReadFull(r, make([]byte, len(raw[i]))); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
