// Package inflate decodes raw DEFLATE streams (RFC 1951) into a buffer of
// known size: a compressed qcow2 cluster, whose decoded length is the
// cluster size. It is the read side of internal/deflate, written because
// the general-purpose decoders spend a third of their time on what a
// cluster does not need: a sliding window the output is copied out of, a
// stream interface, bit reads a byte at a time.
//
// # The format
//
// A stream is a sequence of blocks, each starting with a 3-bit header read
// from the least significant bit of a byte up: BFINAL (the last block) and
// BTYPE (0 stored, 1 fixed Huffman codes, 2 dynamic codes, 3 invalid).
//
//   - Stored: skip to a byte boundary, LEN and NLEN (16 bits each, NLEN the
//     one's complement of LEN), then LEN bytes copied as they are.
//   - Compressed: symbols of the literal/length alphabet (0..255 a literal,
//     256 the end of the block, 257..285 a match length of 3..258 as a base
//     and 0-5 extra bits; 286 and 287 are invalid), each length followed by
//     a distance symbol (0..29: distance 1..32768 as a base and 0-13 extra
//     bits; 30 and 31 are invalid). A match copies length bytes from
//     distance bytes back in the output, overlapping itself when the
//     distance is shorter than the length.
//   - Dynamic blocks first send their codes (RFC 1951 3.2.7): HLIT (5 bits,
//     257..286 literal/length lengths), HDIST (5 bits, 1..30 distance
//     lengths), HCLEN (4 bits, 4..19 code-length code lengths), the 3-bit
//     code-length code lengths in the order 16 17 18 0 8 7 9 6 10 5 11 4 12
//     3 13 2 14 1 15, then the literal/length and distance code lengths as
//     one sequence in that code: 0..15 a length, 16 the previous length 3-6
//     times (2 extra bits), 17 3-10 zeros (3 bits), 18 11-138 zeros (7).
//
// Codes are canonical (3.2.2): only the lengths are sent; codes of one
// length are consecutive in symbol order, shorter codes first. A code is
// sent starting with its most significant bit, so a decoder that reads the
// stream least significant bit first indexes its tables by the bit-reversed
// code.
//
// # What is refused
//
// Decode follows zlib, qemu's inflater, wherever streams differ: a code
// whose lengths over-subscribe the code space is refused, and so is an
// incomplete one, except a literal/length or distance code of a single
// 1-bit code (the one case RFC 1951 allows); an incomplete code-length
// code is refused; a literal/length code without an end-of-block code,
// more than 286 literal/length or 30 distance lengths, a repeat of the
// previous length with none before it, a repeat past the lengths, stored
// lengths that do not complement, block type 3, the invalid symbols, a
// distance before the start of the output, and input that ends before the
// output is full are all errors (wrapping ErrCorrupt, with the byte offset
// of the input). Output is never longer than the buffer: the stream is not
// read past the point where the buffer is full (qemu accepts a cluster as
// soon as it is full: its stored length is only known to the sector, so
// the bytes after the stream are the next cluster's).
//
// # How it is fast
//
// The bits are kept in a 64-bit buffer refilled with one 8-byte load (the
// branch-free refill of libdeflate: at least 56 bits after each, enough
// for a length, its extra bits, a distance and its extra bits without
// another refill). Codes are decoded with one table lookup (11 bits for
// literal/length codes, 8 for distances; longer codes through a second,
// smaller table), whose entries carry the decoded meaning: the literal,
// or the length or distance base with its extra-bit count. Two literals
// are decoded per refill. Matches are copied straight inside the output
// buffer, eight bytes at a time when the distance allows: there is no
// window and no copy out of one.
package inflate
