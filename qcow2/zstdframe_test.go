package qcow2

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zstdFrames are frames of several shapes made by klauspost's encoder: with
// and without a content size and checksum, single and multi-block, raw and
// RLE blocks.
func zstdFrames(t testing.TB) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("a cluster of text, "), 4000)
	var frames [][]byte
	for _, opts := range [][]zstd.EOption{
		{zstd.WithEncoderCRC(false)},
		{zstd.WithEncoderCRC(true)},
		{zstd.WithSingleSegment(true), zstd.WithEncoderCRC(false)},
		{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithZeroFrames(true)},
	} {
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range [][]byte{text, random, make([]byte, 200<<10), text[:100], nil} {
			if fr := enc.EncodeAll(in, nil); len(fr) > 0 {
				frames = append(frames, fr)
			}
		}
		enc.Close()
	}
	skippable := binary.LittleEndian.AppendUint32(nil, zstdSkippableMagic|7)
	skippable = binary.LittleEndian.AppendUint32(skippable, 5)
	return append(frames, append(skippable, "12345"...))
}

// TestZstdFrameLen: the walker finds each frame's end with other bytes
// after it (the next cluster's frame), and refuses every cut of a frame.
func TestZstdFrameLen(t *testing.T) {
	frames := zstdFrames(t)
	for i, f := range frames {
		next := frames[(i+1)%len(frames)]
		n, err := zstdFrameLen(append(bytes.Clone(f), next...))
		if err != nil || n != len(f) {
			t.Fatalf("frame %d (%d bytes): length %d, %v", i, len(f), n, err)
		}
		for cut := 0; cut < len(f); cut += 1 + cut/8 {
			if n, err := zstdFrameLen(f[:cut]); err == nil {
				t.Fatalf("frame %d cut to %d of %d bytes: length %d, no error", i, cut, len(f), n)
			}
		}
	}
	if _, err := zstdFrameLen(make([]byte, 64)); err == nil {
		t.Fatal("zeros taken for a frame")
	}
}

// TestUnzstdStopsAtTheCluster: a cluster followed by the next cluster's
// frame (as qemu packs them) decodes to its own bytes; a frame with more
// content than the cluster, or less, is refused.
func TestUnzstdStopsAtTheCluster(t *testing.T) {
	c := &codec{typ: compressionZstd}
	a := bytes.Repeat([]byte("cluster A "), 6554)[:65536]
	b := bytes.Repeat([]byte("cluster B "), 6554)[:65536]
	ca, _, err := c.compress(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := c.compress(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, slack := range []int{0, zstdSlackBytes} {
		dst := make([]byte, len(a), len(a)+slack)
		if err := c.decompress(dst, append(bytes.Clone(ca), cb...)); err != nil || !bytes.Equal(dst, a) {
			t.Fatalf("slack %d: %v", slack, err)
		}
		if err := c.decompress(dst[:len(a)-512], ca); err == nil {
			t.Fatalf("slack %d: a 64 KiB frame decoded into a smaller cluster", slack)
		}
		big := make([]byte, len(a)+512, len(a)+512+slack)
		if err := c.decompress(big, ca); err == nil {
			t.Fatalf("slack %d: a 64 KiB frame filled a larger cluster", slack)
		}
	}
}

func FuzzZstdFrameLen(f *testing.F) {
	for _, fr := range zstdFrames(f) {
		f.Add(fr[:min(len(fr), 4096)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := zstdFrameLen(b)
		if err == nil && (n < 8 || n > len(b)) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
	})
}
