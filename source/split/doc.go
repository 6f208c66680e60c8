// Package split reads and writes split images: one file's bytes cut into
// pieces NAME.001, NAME.002, ... (as `split -d -a 3 --numeric-suffixes=1`,
// FTK Imager and dc3dd's ofs= name them) so that an image fits FAT32's 4 GiB
// file limit, an upload limit or removable media. Every piece but the last
// has the same size; the pieces concatenated are exactly the file that
// would have been written unsplit, whatever its format (a raw disk, a
// qcow2, a vhdx...).
//
// Writer is a formats.File that a driver writes as if it were one file; it
// creates pieces as writes reach them and, on Close, gives every piece its
// exact size and writes a small manifest NAME.split:
//
//	vdisk split set 1
//	size 10737418240
//	piece-size 4294967296
//	piece NAME.001 4294967296 9f2c54e1a0b3c7d8
//	piece NAME.002 4294967296 03ab...
//	piece NAME.003 2147483648 77e1...
//
// The last field of a piece line is a fingerprint: the first 16 hex digits
// of SHA-256 over the piece's first, middle and last 4 KiB and its size.
//
// Open reads a set as one formats.File, given its first piece or its
// manifest. A missing piece, a piece of the wrong size, and (with the
// manifest) a piece whose fingerprint differs, which is how reordered or
// swapped pieces show, are errors naming the piece. Without a manifest,
// reordered pieces of equal size cannot be told apart; a hash log's
// per-piece digests check every byte.
package split
