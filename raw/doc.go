// Package raw is the driver for raw disk images: the file's bytes are the
// disk's bytes, byte for byte, and its length is the disk's size.
//
// Allocation comes from the file system: on a regular file, holes found with
// SEEK_DATA/SEEK_HOLE are reported as Zero extents, so converting a sparse raw
// file never reads its holes. A block device (size from BLKGETSIZE64) opens
// read-only, as the source of a physical-to-virtual conversion, and reports
// everything as data.
//
// Writing: a new image is a file truncated to its size, so everything not
// written stays a hole; WriteZeroes punches holes. Create options follow
// qemu's raw/file driver: preallocation=off (default), falloc (reserve
// blocks) or full (write zeros across the disk).
//
// Raw is the fallback of probing: every file is a raw disk, at the lowest
// confidence, so any real format signature wins.
package raw
