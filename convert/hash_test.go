package convert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// TestCopyHash: Options.Hash sees every guest byte in order, whatever the
// target and mode, including ranges the copy never reads.
func TestCopyHash(t *testing.T) {
	src := mixedSource()
	want := sha256.Sum256(src.data)
	for _, tc := range []struct {
		name string
		dst  func() formats.Writable
		opts Options
	}{
		{"raw-like", func() formats.Writable { return &memImage{data: make([]byte, src.Size())} }, Options{TargetIsZero: true, OutOfOrder: true}},
		{"not-zero-target", func() formats.Writable { return &memImage{data: make([]byte, src.Size())} }, Options{}},
		{"no-sparse", func() formats.Writable { return &memImage{data: make([]byte, src.Size())} }, Options{NoSparse: true, Workers: 3}},
		{"small-chunks", func() formats.Writable { return &memImage{data: make([]byte, src.Size())} }, Options{TargetIsZero: true, ChunkBytes: 12345}},
		{"sequential", func() formats.Writable { return &seqTarget{memImage: memImage{data: make([]byte, src.Size())}} }, Options{TargetIsZero: true}},
		{"compressed", func() formats.Writable {
			return &deflateTarget{memImage: memImage{data: make([]byte, src.Size())}, cluster: 64 << 10, compressed: map[int64][]byte{}}
		}, Options{TargetIsZero: true, Compress: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sha256.New()
			tc.opts.Hash = h
			if err := Copy(context.Background(), tc.dst(), src, tc.opts); err != nil {
				t.Fatal(err)
			}
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Errorf("hash %x, want %x", got, want)
			}
		})
	}
	err := Copy(context.Background(), &memImage{data: make([]byte, src.Size())}, src, Options{TopLayerOnly: true, Hash: sha256.New()})
	if !errors.Is(err, formats.ErrUnsupported) {
		t.Errorf("hash with -B: %v, want ErrUnsupported", err)
	}
}

// TestCopyHashSalvage: the hash covers the zeros written for unreadable
// sectors, as dc3dd's does.
func TestCopyHashSalvage(t *testing.T) {
	data := bytes.Repeat([]byte{0x5c}, 4<<20)
	bad := int64(3<<20 + 512)
	src := &failingSource{memImage: memImage{data: data}, failAt: bad}
	h := sha256.New()
	if err := Copy(context.Background(), &memImage{data: make([]byte, len(data))}, src, Options{Salvage: true, TargetIsZero: true, Hash: h}); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), data...)
	clear(want[bad : bad+512])
	if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Error("salvage hash is not the hash of what was written")
	}
}
