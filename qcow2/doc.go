// Package qcow2 is the driver for QEMU copy-on-write images, versions 2
// (compat=0.10) and 3 (compat=1.1), as qemu's docs/interop/qcow2.txt
// describes them. Everything on disk is big-endian.
//
// Cluster 0 holds the header, its extensions (backing format, feature
// names, external data file name, bitmaps) and the backing file name. A
// guest offset maps through two tables: the L1 table (contiguous, one entry
// per L2 table) and L2 tables (one cluster each, one entry per guest
// cluster; 128-bit entries with 32 subclusters when extended L2 is on).
// An L2 entry is unallocated (read from the backing file, else zeros), a
// zero cluster (v3, with or without a preallocated host cluster), a normal
// cluster at a host offset, or a compressed cluster (raw deflate with a
// 4 KiB window, or zstd) packed byte-wise into host clusters (read straight
// into the caller's buffer: deflate by internal/inflate, zstd frame by frame
// with DecodeAll, zstdframe.go finding where each frame ends). Every host
// cluster in use is counted in 1..64-bit refcounts, reached through the
// refcount table; internal snapshots keep their own L1 copies.
//
// Supported: reading all of the above, backing files of any format (opened
// through formats.OpenReference), external data files (through the
// resolver), snapshots by id or name, dirty images (read-only or with
// refcounts recomputed), corrupt images read-only. Writing: create with
// qemu's options (compat, cluster_size, compression_type, preallocation,
// lazy_refcounts, refcount_bits, extended_l2, backing_file, backing_fmt),
// concurrent WriteAt, zero clusters, compressed clusters, resize (with
// internal snapshots and persistent bitmaps, as qemu), internal snapshots
// (create, apply, also across disk sizes, delete), bitmaps, amend (compat,
// lazy_refcounts, refcount_bits, size, data_file, data_file_raw, LUKS key
// slots), check and repair. Encryption (encrypt.go): LUKS (crypt_method 2)
// read and written with the key in formats.OpenOptions.Key, legacy AES (1)
// read-only. Refused by name: unknown incompatible features, guest data
// writes, resize and snapshots with an external data file (its metadata
// is writable), compression with encryption.
//
// A writable image keeps its refcounts in memory (2 bytes per host cluster)
// and its changed L2 tables in the bounded L2 cache (written back when
// evicted), and writes the remaining metadata at Flush: an image is only
// consistent after Flush. Allocation appends to the file.
package qcow2
