// Package ewf is the driver for Expert Witness Compression Format images
// (EnCase .E01, SMART .s01), the forensic evidence format, following
// libyal's "Expert Witness Compression Format (EWF)" specification; libewf's
// ewf-tools (ewfacquire, ewfexport, ewfverify, ewfinfo) are the oracle.
//
// An image is a set of segment files, NAME.E01 to .E99 then .EAA to .ZZZ
// (lower case .e01 and .s01 sets likewise). Each starts with a 13-byte file
// header ("EVF\t\r\n\xff\x00", 0x01, the segment number) followed by
// sections back to back. Every section starts with a 76-byte descriptor:
// its type ("header", "volume", "sectors", "table", ...), the offset of the
// next section, its size and an Adler-32 of the descriptor. All numbers are
// little-endian, every structure carries an Adler-32.
//
// The first segment holds the case metadata (header and header2 sections:
// zlib-compressed tab-separated text, ASCII and UTF-16) and the volume
// section: the disk's geometry (sectors of 512 bytes, 64 per chunk by
// default, the chunk and sector counts). The disk is cut into chunks
// (32 KiB by default), each stored zlib-compressed or plain with an Adler-32
// after it. A "sectors" section holds the chunks; the "table" section after
// it lists one 32-bit entry per chunk (the top bit: compressed; the rest:
// the offset from the table's base, the sectors section since EnCase 6),
// and "table2" repeats it. A chunk's stored size is the distance to the
// next entry (for the last, to the end of its sectors section). In SMART
// and EnCase 1 images the chunks follow the entries inside the table
// section instead. Segments but the last end with a "next" section; the
// last ends with "hash" (MD5 of the disk), "digest" (MD5 and SHA-1, EnCase
// 6.12 and later) and "done". EWF-X adds xheader and xhash (XML).
//
// Reading: every layout ewfacquire writes (ewf, smart, ftk, encase2 to 6,
// linen5/6, ewfx), chunk sizes of 16 to 32768 sectors of 512 to 4096 bytes,
// segment sets opened by name next to the first segment through the
// reference policy. Every chunk's checksum is checked when read: a mismatch
// is an ErrCorrupt naming the segment file, the file offset and the disk
// offset (convert --salvage reads on, the chunk as zeros). A damaged table
// is read from its table2 copy. Check checks the tables against their
// copies and every chunk; VerifyDigests (vdisk verify) hashes the disk and
// compares the stored MD5 and SHA-1. Every count and size read from the
// image is bounded before it sizes an allocation or a loop: section bodies
// read whole (16 MiB), decompressed headers (4 MiB), tables (Limits), chunk
// sizes (64 MiB, a stored chunk at most twice its size); the tables' chunk
// count must equal the volume's, so a missing or cut segment is an error
// naming it.
//
// Writing: the EnCase 6 layout of ewfacquire -f encase6 (header2 twice,
// header, volume; sectors, table and table2 runs of at most 16375 chunks;
// data, digest, hash and done), with the case metadata of the create
// options, MD5 and SHA-1 of the disk, segment files of at most
// segment_size named as ewfacquire names them. The writer is sequential
// (formats.SequentialWriter): chunks are compressed by a pool of workers,
// hashed in order by two goroutines and placed by one. Flush completes the
// image, and so does Close once the last byte is written; an image left
// partway by a failed or interrupted copy stays unfinished (no done
// section), rather than hashing and storing the rest of the disk.
//
// Refused by name: EWF2 (Ex01/Lx01, whose samples this ewfacquire cannot
// make), EWF-L01 logical evidence files, images with an "incomplete"
// section, disk sizes that are not whole 512-byte sectors (writing),
// writing to a stream.
package ewf
