package checksum

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Block returns the blkhash digest of img's guest bytes (see the package
// comment): blksum's checksum when opts.BlockBytes is the default.
func Block(ctx context.Context, img formats.Image, opts Options) (Digest, error) {
	opts = opts.withDefaults()
	if opts.BlockBytes%2 != 0 {
		return Digest{}, fmt.Errorf("%w: block size %d is odd", formats.ErrInvalidOption, opts.BlockBytes)
	}
	b, err := newBlockHash(opts.Algorithm, opts.BlockBytes)
	if err != nil {
		return Digest{}, err
	}
	p := &pipeline{img: img, opts: opts}
	p.process = func(s *segment) error {
		s.sums = b.blockSums(s.buf)
		p.pool <- s.buf[:cap(s.buf)] // the digests are all the committer needs
		s.buf = nil
		return nil
	}
	p.commit = func(s *segment) error {
		if s.data {
			b.outer.Write(s.sums)
			return nil
		}
		b.zeros(s.length)
		return nil
	}
	if err := p.run(ctx); err != nil {
		return Digest{}, err
	}
	return Digest{Algorithm: opts.Algorithm, Sum: b.final(img.Size())}, nil
}

// blockHash is the state of one blkhash computation.
type blockHash struct {
	algorithm  string
	blockBytes int64
	zeroSum    []byte // H(blockBytes zeros)
	outer      interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
}

func newBlockHash(algorithm string, blockBytes int64) (*blockHash, error) {
	outer, err := New(algorithm)
	if err != nil {
		return nil, err
	}
	b := &blockHash{algorithm: algorithm, blockBytes: blockBytes, outer: outer}
	b.zeroSum = b.sum(make([]byte, blockBytes))
	return b, nil
}

func (b *blockHash) sum(p []byte) []byte {
	h, _ := New(b.algorithm)
	h.Write(p)
	return h.Sum(nil)
}

// blockSums returns the digests of the blocks of p, concatenated; full
// zero blocks take the precomputed digest.
func (b *blockHash) blockSums(p []byte) []byte {
	h, _ := New(b.algorithm)
	out := make([]byte, 0, (int64(len(p))+b.blockBytes-1)/b.blockBytes*int64(len(b.zeroSum)))
	for len(p) > 0 {
		n := min(int64(len(p)), b.blockBytes)
		block := p[:n]
		p = p[n:]
		if n == b.blockBytes && zero.Is(block) {
			out = append(out, b.zeroSum...)
			continue
		}
		h.Reset()
		h.Write(block)
		out = h.Sum(out)
	}
	return out
}

// zeros adds a run of length zero bytes (whole blocks, but for the image's
// last, shorter block, which is hashed at its length).
func (b *blockHash) zeros(length int64) {
	for ; length >= b.blockBytes; length -= b.blockBytes {
		b.outer.Write(b.zeroSum)
	}
	if length > 0 {
		b.outer.Write(b.sum(make([]byte, length)))
	}
}

func (b *blockHash) final(size int64) []byte {
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], uint64(size))
	b.outer.Write(le[:])
	return b.outer.Sum(nil)
}
