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
// A format driver needs random access, and these streams have none (an xz
// block index or seekable-zstd frames would give some; they are not used
// yet). So a compressed input is decompressed once into a spool: a
// temporary file in a caller-given directory (the CLI puts it next to the
// output, or beside the input when there is none). 4 KiB blocks of zeros are not
// written, so the spool is sparse and holes stay holes in the output's
// extents. On Unix the spool is unlinked as soon as it is created: it
// disappears when the process ends, however it ends (success, failure,
// SIGINT, even SIGKILL); on Windows it is removed on Close.
//
// A decompression bomb (a small file that expands to a huge stream) stops
// with an error wrapping formats.ErrLimit once the stream passes
// Spooler.LimitBytes (DefaultLimitBytes when zero). Decompression stops
// too when the context is cancelled.
//
// Stdin ("-") is a source too: it has no random access, so it is always
// spooled, compressed or not.
package compressed
