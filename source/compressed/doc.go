// Package compressed reads disk images that arrive compressed: a
// `disk.qcow2.xz`, `disk.raw.zst`, `disk.vmdk.gz` or `disk.img.bz2` opens
// as the image inside, whatever its format.
//
// The compression is recognised by content, never by name, from the
// first bytes of the file:
//
//	xz     FD 37 7A 58 5A 00   (multi-block and multi-stream files)
//	zstd   28 B5 2F FD         (any number of frames)
//	gzip   1F 8B               (any number of members)
//	bzip2  42 5A 68 '1'..'9'   ("BZh" and the block size; concatenated streams)
//
// A format driver needs random access. A file that is seekable and made
// of independently decodable blocks is read in place, without a spool
// (InPlace): an xz file with a block index (several blocks or streams,
// as `xz -T0` or `xz --block-size` write them; the index is read from the
// stream footers, xzindex.go), a seekable-zstd file (the seek table in a
// skippable frame at its end) and a zstd file of frames that carry their
// content size (zstdindex.go). The block holding an offset is decoded when
// read, the next ones ahead in parallel, and a cache bounded by
// Spooler.CacheBytes keeps the latest; a block larger than
// Spooler.MaxBlockBytes makes the file spooled instead. The index's sizes
// are the decompressed size, checked against the limit before anything is
// decoded, and each block must decode to exactly its indexed size.
//
// Anything else (gzip, bzip2, a single large xz block or zstd frame,
// stdin) is decompressed once into a spool: a
// temporary file in a caller-given directory (the CLI puts it next to the
// output, or beside the input when there is none). 4 KiB blocks of zeros are not
// written, so the spool is sparse and holes stay holes in the output's
// extents. On Unix the spool is unlinked as soon as it is created: it
// disappears when the process ends, however it ends (success, failure,
// SIGINT, even SIGKILL); on Windows it is removed on Close.
//
// A decompression bomb (a small file that expands to a huge stream) stops
// with an error wrapping formats.ErrLimit once the stream passes
// Spooler.LimitBytes (DefaultLimitBytes when zero) or, when no limit was
// set, the virtual size the image header at the start of the stream
// declares plus room for its metadata (declared.go). Decompression stops
// too when the context is cancelled.
//
// Stdin ("-") is a source too: it has no random access, so it is always
// spooled, compressed or not.
package compressed
