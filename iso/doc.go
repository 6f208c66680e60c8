// Package iso reads, browses, extracts and builds ISO 9660 (ECMA-119)
// images, with the Joliet and Rock Ridge (SUSP/RRIP) extensions and El
// Torito boot catalogs.
//
// An ISO image is a sequence of 2048-byte logical blocks. Blocks 0-15 are
// the system area (zeros, or an isohybrid MBR/GPT); volume descriptors start
// at block 16, each "type, CD001, version": the primary volume descriptor
// (type 1, ECMA-119 §8.4) with the root directory record, an El Torito boot
// record (type 0) naming the boot catalog, a Joliet supplementary descriptor
// (type 2 with a UCS-2 escape sequence) with a second directory tree, and a
// terminator (type 255). Directories are extents of directory records (§9.1)
// that never straddle a block; numbers are stored both-endian. Rock Ridge
// adds System Use entries to each record: NM (the POSIX name), PX (mode), TF
// (times), SL (symlink target), CE (continuation area).
//
// As a disk-image format ("iso") an image is a read-only device of its
// file's bytes: probing finds CD001 at byte 32769, also behind an isohybrid
// MBR or GPT, and `info` shows the volume identifiers, dates, extensions,
// boot entries and hybrid tables. Creating an "iso" target copies the bytes
// of a source that is itself an ISO 9660 image and refuses anything else.
//
// The library API (Open or OpenPath, FS.ReadDir, FS.List, FS.Walk, FS.Extract,
// Create or CreateFile) lists
// files with their Rock Ridge names (else Joliet, else ISO 9660 names),
// extracts a file or a tree without ever writing outside the destination,
// and builds images from a directory, reproducibly with a fixed timestamp.
// Every length and location read from an image is checked against the image
// size and the limits below; directory loops and continuation-area chains
// are bounded. Not supported: UDF (NSR02/NSR03) structures, logical blocks
// other than 2048 bytes, interleaved files, extended attribute records on
// extraction; the writer makes no-emulation El Torito entries only (BIOS
// and UEFI) and no hybrid MBR.
package iso
