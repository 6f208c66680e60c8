// Package deflate is vdisk's own DEFLATE encoder (RFC 1951), with a zlib
// wrapper (RFC 1950), written for compressed disk images: qcow2 clusters,
// whose readers (qemu: inflateInit2 with windowBits -12) only accept
// back-references within 4 KiB, and streamOptimized VMDK grains (zlib
// streams with the usual 32 KiB window). General-purpose Go encoders
// either cannot bound the window at a good ratio or give up on text-like
// data that is worth compressing; this one matches zlib's level-6 output
// size with a quarter of its match search, on any window from 256 bytes
// to 32 KiB. Decoding is left to compress/flate (or klauspost's).
//
// # The format
//
// A deflate stream is a sequence of blocks; a 3-bit header starts each
// (BFINAL: last block; BTYPE: 0 stored, 1 fixed codes, 2 dynamic codes).
// Bits are packed from the least significant bit of each byte up; Huffman
// codes are sent starting with their most significant bit, so the encoder
// stores them bit-reversed (bits.go).
//
// Stored blocks (type 0) skip to a byte boundary, then carry LEN and its
// one's complement NLEN (16 bits each) and LEN raw bytes (at most 65535).
// They bound the expansion of incompressible data to 5 bytes a block.
//
// Compressed blocks (types 1 and 2) carry symbols of two alphabets:
//
//   - literal/length, 0..285: 0..255 a literal byte, 256 the end of the
//     block, 257..285 a match length 3..258 (the symbol gives a base, 0 to
//     5 extra bits follow the code: tables.go);
//   - distance, 0..29, after every length: distance 1..32768 as a base and
//     0 to 13 extra bits. A match copies length bytes from distance bytes
//     back in the output (it may overlap itself: distance 1 repeats a byte).
//
// Type 1 uses fixed codes (RFC 1951 3.2.6: 7 to 9 bits for literal/length
// symbols, 5 bits for distances). Type 2 sends its own canonical Huffman
// codes first (3.2.7): HLIT, HDIST and HCLEN (how many literal/length,
// distance and code-length code lengths follow), the 3-bit lengths of the
// code-length code in a fixed order, then the literal/length and distance
// code lengths as one sequence coded with the code-length code, in which
// 16 repeats the previous length 3-6 times and 17 and 18 stand for runs of
// 3-10 and 11-138 zeros. Codes are canonical (3.2.2): only lengths are
// sent; codes of one length are consecutive, in symbol order, and shorter
// codes come first. Lengths are limited to 15 bits (7 for the code-length
// code), and zlib's inflater refuses incomplete codes, so every code built
// here is complete (a lone symbol gets a spare partner).
//
// # The encoder
//
// Matching (match.go) is LZ77 over hash chains: the hash of the 4 bytes
// at each position heads a chain of earlier positions with the same hash
// (head4, and prev, a ring of window entries holding each position's
// distance back to the previous one, 16 bits each). The search walks the
// chain newest first, no further back than the window, examining at most
// the level's chain length and stopping at its "nice" length. 3-byte
// matches only pay when close (more than 4 KiB back one costs more bits
// than its three literals), so a second table, head3, keeps just the
// newest position of each 3-byte hash, tried when no longer match is
// found. Hashing 4 bytes keeps most chains free of candidates that share
// only 3 bytes, which is what makes the chains short to walk. Levels 1-3
// take the longest match found at once (greedy); levels 4-9 look one byte
// ahead first (lazy matching) and emit a literal instead when the next
// position starts a longer match. Positions inside a match are hashed
// too, but for a match over twice the nice length (a run, a copied block)
// only its last bytes. At levels 1-6, after 64 literals in a row the parser
// searches only every second position, after 128 every third, and so on
// until the next match (the skipped positions are still hashed): text
// whose only redundancy is its alphabet, like base64, and compressed data
// inside binaries are nearly all literals, and searching each of their
// positions was most of the time spent on them, for matches that mostly
// cost more bits than the literals they replace. Tables hold the low 16 bits of positions and are
// cleared for every stream; every candidate is compared with the input
// before it is used, so an aliased entry costs a comparison, never a
// wrong match, and the output depends on the input alone.
//
// Every 32768 symbols (and at the end) the pending symbols are sent
// (block.go), as one block or split where the symbol statistics change
// (split.go: entropy estimates over snapshots of the counts taken every
// 4096 symbols decide, halving recursively). For each block sent, Huffman
// code lengths are computed from the symbol counts
// (huffman.go: the two-queue method on sorted counts, and package-merge,
// optimal under the 15-bit limit, when a code would be deeper), the exact
// size of the block is computed for all three types, and the smallest is
// written. EncodeLimit abandons the stream as soon as it would reach a
// limit (qcow2 keeps a cluster compressed only if it shrinks), before any
// bits of the failing block are written.
//
// An Encoder is reused (pooled) per goroutine: NewEncoder allocates its
// tables once (about 200 KiB; a stream clears only the parts its window
// uses: 76 KiB for 4 KiB, 196 KiB for 32 KiB).
package deflate
