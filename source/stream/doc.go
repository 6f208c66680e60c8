// Package stream reads a disk image from a pipe (standard input) once, in
// order, in bounded memory and without a spool file, for the images whose
// layout allows it:
//
//   - raw: the bytes are the disk. The size is known only at the end of
//     the stream, so the Image starts with a provisional size (an upper
//     bound) and End reports the real one once the stream has ended; the
//     consumer (package convert) then shrinks its output to it.
//   - a fixed VHD: raw bytes followed by a 512-byte footer (VHD
//     specification 2.0, "Hard Disk Footer Format"; the copy of the footer
//     at offset 0 exists only in dynamic and differencing VHDs). The last
//     512 bytes are held back; at the end they are the footer when they
//     have the "conectix" cookie, disk type 2 (fixed), a valid checksum
//     and a current size equal to the bytes before them, and the image
//     ends before them. Otherwise (without -f vpc) they are raw data, as
//     for qemu's probe of a file.
//   - a streamOptimized VMDK (VMware Virtual Disk Format 1.1, section
//     "Stream-Optimized Compressed Sparse Extents"): a sparse header
//     (KDMV, flags "compressed grains" and "markers") declaring the
//     capacity, then sector-aligned markers: grain markers (LBA u64,
//     compressed size u32, a zlib stream of one grain), and metadata
//     markers (sector count u64, size 0, type u32: 0 end of stream, 1
//     grain table, 2 grain directory, 3 footer) followed by that many
//     sectors. The grain tables and directory at the end are not needed:
//     each grain says where it goes. Grains must come in increasing LBA
//     order, as every stream writer (VMware's, qemu's, vdisk's) writes
//     them; an out-of-order or overlapping grain is refused.
//
// Everything else (qcow2, VHDX, VDI, dynamic VHD, sparse VMDK, ISO, LUKS,
// EWF, ...) needs random access and is spooled by package
// source/compressed; Probe tells which is which from the first bytes.
//
// The Image serves ReadAt from a window of decoded pages (1 MiB each, at
// most WindowBytes ahead of the lowest byte not yet read): every byte may
// be read once, in any order within the window, which is how the
// conversion engine reads (each chunk once, a bounded number in flight).
// A read of bytes already passed fails naming the offset.
package stream
