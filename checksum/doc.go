// Package checksum computes digests of a disk image's guest bytes, the same
// whatever format stores them (raw, qcow2 with any options or in a chain,
// vmdk, vhd, vhdx, vdi).
//
// Block (the default of `vdisk checksum`) is the blkhash construction of Nir
// Soffer's blksum (https://gitlab.com/nirs/blkhash, "An Efficient Hash
// Function Construction for Sparse Data", SECRYPT 2024):
//
//	H( H(block 0) || H(block 1) || ... || H(block n-1) || le64(length) )
//
// where the image is cut into 64 KiB blocks (the last one may be shorter and
// is hashed at its length), H is the chosen digest (sha256 by default) and
// le64 is the byte length as 8 little-endian bytes. A block that is all
// zeros hashes to the precomputed H(64 KiB of zeros), so ranges the image
// records as zero or unallocated are never read, and block digests are
// computed by all CPUs at once; only the short outer hash is sequential. With
// the same digest and block size the result equals blksum's output.
//
// Linear is the plain digest (md5, sha1, sha256, sha512...) of the guest
// bytes in order, equal to `sha256sum` of the image converted to raw: reads
// run ahead in parallel and zero ranges are hashed from memory without
// reading, but the hash itself is one sequential stream per algorithm.
// Hashes is the io.Writer behind it, also used to hash a conversion as it
// copies.
package checksum
