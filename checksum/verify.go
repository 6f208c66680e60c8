package checksum

import (
	"bytes"
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Mismatch is one digest that differs from the expected one.
type Mismatch struct {
	Algorithm string
	Want, Got Digest
}

// Verification is the outcome of checking an image against expected
// digests: Bytes the image's size, Mismatches empty when everything matched.
type Verification struct {
	Bytes, WantBytes int64
	Checked          []Digest // the digests computed
	Mismatches       []Mismatch
	// TailNonZero is the first non-zero byte past WantBytes in an image
	// larger than expected (-1: none, the tail reads as zeros).
	TailNonZero int64
}

// OK reports a match: every digest equal over the first WantBytes bytes,
// and the image either of that size or larger by bytes that read as zeros
// (formats round the virtual size up: qcow2 and vdi to 512 bytes, vhd to
// its geometry).
func (v *Verification) OK() bool {
	return v.Bytes >= v.WantBytes && v.TailNonZero < 0 && len(v.Mismatches) == 0
}

// Verify computes the linear digests of the first wantBytes bytes of img
// (all of it when wantBytes < 0) for the algorithms of want and compares
// them; bytes past wantBytes must read as zeros.
func Verify(ctx context.Context, img formats.Image, want []Digest, wantBytes int64, opts Options) (*Verification, error) {
	if len(want) == 0 {
		return nil, fmt.Errorf("%w: no digest to verify against", formats.ErrInvalidOption)
	}
	if wantBytes < 0 {
		wantBytes = img.Size()
	}
	names := make([]string, len(want))
	for i, d := range want {
		names[i] = d.Algorithm
	}
	v := &Verification{Bytes: img.Size(), WantBytes: wantBytes, TailNonZero: -1}
	if v.Bytes < wantBytes {
		return v, nil
	}
	got, err := Linear(ctx, &prefix{Image: img, size: wantBytes}, names, opts)
	if err != nil {
		return nil, err
	}
	v.Checked = got
	if v.TailNonZero, err = firstNonZero(img, wantBytes); err != nil {
		return nil, err
	}
	for i, d := range want {
		if !bytes.Equal(d.Sum, got[i].Sum) {
			v.Mismatches = append(v.Mismatches, Mismatch{Algorithm: d.Algorithm, Want: d, Got: got[i]})
		}
	}
	return v, nil
}

// prefix is the first size bytes of an image.
type prefix struct {
	formats.Image
	size int64
}

func (p *prefix) Size() int64 { return p.size }

func (p *prefix) ReadAt(b []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(b, off, p.size)
	if n == 0 {
		return 0, eof
	}
	if got, err := p.Image.ReadAt(b[:n], off); got < n {
		return got, err
	}
	return n, eof
}

func (p *prefix) Extents(off, length int64) ([]formats.Extent, error) {
	return formats.ChainExtents(p.Image, off, min(length, p.size-off))
}

// maxTailBytes bounds the tail Verify reads past the expected size: size
// rounding is at most a few MiB (a vhd's geometry).
const maxTailBytes = 64 << 20

// firstNonZero returns the offset of the first non-zero byte of img at or
// after off (-1 when none).
func firstNonZero(img formats.Image, off int64) (int64, error) {
	tail := img.Size() - off
	if tail <= 0 {
		return -1, nil
	}
	if tail > maxTailBytes {
		return off, nil // not size rounding: far larger than the copy
	}
	buf := make([]byte, tail)
	if n, err := img.ReadAt(buf, off); n < len(buf) {
		return 0, fmt.Errorf("reading past the expected size at offset %d: %w", off+int64(n), err)
	}
	for i, b := range buf {
		if b != 0 {
			return off + int64(i), nil
		}
	}
	return -1, nil
}
