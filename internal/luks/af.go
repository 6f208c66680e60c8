package luks

import (
	"crypto/rand"
	"encoding/binary"
	"hash"
)

// The anti-forensic splitter (LUKS1 spec §2.4, "AFsplit"): a key of n bytes
// becomes stripes×n bytes, all of which are needed to recover it, so that
// erasing any part of a key slot's material destroys the key. Stripes
// 0..stripes-2 are random; each is XORed into an accumulator that is then
// diffused with the hash; the last stripe is the accumulator XOR the key.

// diffuse replaces block with H(be32(i) || block[i-th digest-sized piece])
// for each piece (the last piece may be shorter and takes a truncated hash).
func diffuse(newHash func() hash.Hash, block []byte) {
	h := newHash()
	size := h.Size()
	var iv [4]byte
	var digest []byte
	for i := 0; i*size < len(block); i++ {
		piece := block[i*size : min(len(block), (i+1)*size)]
		h.Reset()
		binary.BigEndian.PutUint32(iv[:], uint32(i))
		h.Write(iv[:])
		h.Write(piece)
		digest = h.Sum(digest[:0])
		copy(piece, digest)
	}
	clear(digest)
}

func xorInto(dst, src []byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// afSplit returns the split form of key over stripes.
func afSplit(newHash func() hash.Hash, key []byte, stripes int) ([]byte, error) {
	n := len(key)
	out := make([]byte, n*stripes)
	acc := make([]byte, n)
	defer clear(acc)
	if _, err := rand.Read(out[:n*(stripes-1)]); err != nil {
		return nil, err
	}
	for i := 0; i < stripes-1; i++ {
		xorInto(acc, out[i*n:(i+1)*n])
		diffuse(newHash, acc)
	}
	last := out[(stripes-1)*n:]
	copy(last, acc)
	xorInto(last, key)
	return out, nil
}

// afMerge recovers the key of n bytes from its split form.
func afMerge(newHash func() hash.Hash, split []byte, n, stripes int) []byte {
	acc := make([]byte, n)
	for i := 0; i < stripes-1; i++ {
		xorInto(acc, split[i*n:(i+1)*n])
		diffuse(newHash, acc)
	}
	xorInto(acc, split[(stripes-1)*n:stripes*n])
	return acc
}
