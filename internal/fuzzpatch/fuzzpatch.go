// Package fuzzpatch turns a short fuzz input into a disk image: a base
// image chosen from a few valid ones, with patches laid over it. Fuzz
// targets whose input would otherwise be a whole image (KiBs that the
// fuzzer minimises for a minute each time it finds new coverage) take
// inputs of a few bytes this way and run tens of thousands a minute, while
// every byte of every base stays reachable.
//
// An input is: one byte choosing the base (modulo their number), then
// records of an offset (unsigned varint), a 1-byte length n and n bytes,
// copied over the base at that offset (growing it when past the end). A
// record cut short by the end of the input is applied as far as it goes.
//
// Only the first MaxInputBytes of an input are read. Go's fuzzer minimises
// every input that finds new coverage by trying to remove each run of its
// bytes (some n*n/2 runs of the fuzz function for n bytes, plus 32 for
// each byte) and counts none of those runs unless it finishes within a
// minute: left unbounded, the mutator's inputs grow to KiBs and a worker
// spends the rest of the run minimising one of them. With the tail ignored,
// the minimiser cuts it first (a few halving steps) and finishes the rest
// in about 4000 runs.
package fuzzpatch

import "encoding/binary"

// MaxBytes bounds the image an input can make (bases are small).
const MaxBytes = 1 << 20

// MaxInputBytes is how much of an input Apply reads: the base's byte and
// some seven 4-byte patches (offsets past 16 KiB take 3 bytes of varint).
const MaxInputBytes = 64

// Apply returns the image input describes over bases (which it does not
// modify). No bases, or an empty input, give the input itself.
func Apply(bases [][]byte, input []byte) []byte {
	if len(bases) == 0 || len(input) == 0 {
		return input
	}
	input = input[:min(len(input), MaxInputBytes)]
	base := bases[int(input[0])%len(bases)]
	out := append(make([]byte, 0, len(base)), base...)
	for rec := input[1:]; len(rec) >= 2; {
		off64, k := binary.Uvarint(rec)
		if k <= 0 || len(rec) < k+1 {
			break
		}
		n := min(int(rec[k]), len(rec)-k-1)
		data := rec[k+1 : k+1+n]
		rec = rec[k+1+n:]
		if n == 0 || off64 > MaxBytes-uint64(n) {
			continue
		}
		off := int(off64)
		if off+n > len(out) {
			out = append(out, make([]byte, off+n-len(out))...)
		}
		copy(out[off:], data)
	}
	return out
}

// Seeds returns one input per base, choosing it unpatched.
func Seeds(bases [][]byte) [][]byte {
	seeds := make([][]byte, len(bases))
	for i := range bases {
		seeds[i] = []byte{byte(i)}
	}
	return seeds
}
