package convert

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// zeroWriter is a Hash that can take a run of zeros without a buffer
// (checksum.Hashes).
type zeroWriter interface {
	WriteZeros(n int64)
}

// hasher feeds Options.Hash the guest bytes in offset order, from the
// ordered committer: each committed task's bytes, and zeros for the ranges
// the plan skipped (zero and unallocated extents on a zero target).
type hasher struct {
	w     io.Writer
	pos   int64 // bytes hashed so far
	zeros []byte
}

func newHasher(w io.Writer, opts Options) (*hasher, error) {
	if w == nil {
		return nil, nil
	}
	if opts.TopLayerOnly {
		return nil, fmt.Errorf("%w: hashing the guest bytes needs the whole disk, not only the top layer (-B)", formats.ErrUnsupported)
	}
	return &hasher{w: w}, nil
}

// task hashes a committed task: zeros up to its start, then its bytes
// (buf for data, zeros for a zero range).
func (h *hasher) task(t *task, buf []byte) error {
	if h == nil {
		return nil
	}
	if err := h.zerosTo(t.off); err != nil {
		return err
	}
	if t.data {
		if _, err := h.w.Write(buf[:t.length]); err != nil {
			return fmt.Errorf("hashing at offset %d: %w", t.off, err)
		}
		h.pos = t.off + t.length
		return nil
	}
	return h.zerosTo(t.off + t.length)
}

// zerosTo hashes zeros from the current position to end.
func (h *hasher) zerosTo(end int64) error {
	if h == nil || end <= h.pos {
		return nil
	}
	n := end - h.pos
	h.pos = end
	if zw, ok := h.w.(zeroWriter); ok {
		zw.WriteZeros(n)
		return nil
	}
	if h.zeros == nil {
		h.zeros = make([]byte, 1<<20)
	}
	for n > 0 {
		k := min(n, int64(len(h.zeros)))
		if _, err := h.w.Write(h.zeros[:k]); err != nil {
			return fmt.Errorf("hashing zeros: %w", err)
		}
		n -= k
	}
	return nil
}
