// Package vmdk is the driver for VMware virtual disks (VMDK), following
// VMware's "Virtual Disk Format 5.0" technical note and libyal's libvmdk
// notes, with qemu's block/vmdk.c as the interoperability oracle.
//
// A VMDK is a text descriptor plus one or more extents. The descriptor
// ("# Disk DescriptorFile", key="value" lines, extent lines
// `RW <sectors> <TYPE> "file" [offset]`, then ddb.* keys) is either embedded
// in a hosted sparse extent (monolithicSparse, streamOptimized) at
// descriptorOffset, or a standalone text file next to its extents
// (monolithicFlat, twoGbMaxExtent*, vmfs, custom layouts). Extent files are
// opened only through the caller's Resolver (the safe reference policy).
//
// A hosted sparse extent starts with a 512-byte little-endian header (magic
// "KDMV", versions 1-3). Virtual sector s maps through a grain directory (GD,
// u32 sector offsets of grain tables) and grain tables (GT, 512 u32 sector
// offsets of grains): grain g = s/grainSize, GD index g/512, GT index g%512.
// GTE 0 is unallocated (read the parent), GTE 1 with the zeroed-grain flag is
// a zero grain. streamOptimized extents hold zlib-compressed grains behind
// 12-byte grain markers, with GTs, GD and a footer (a header copy with the
// real gdOffset) written after the data and an end-of-stream marker.
//
// Supported: extent types SPARSE, FLAT, ZERO, VMFS, VMFSSPARSE (hosted
// sparse), createTypes monolithicSparse, monolithicFlat, twoGbMaxExtentSparse,
// twoGbMaxExtentFlat, streamOptimized, vmfs, vmfsThin, vmfsSparse and custom
// multi-extent descriptors; delta disks through parentFileNameHint with the
// parentCID checked. Refused by name: seSparse, vmfsRaw/RDM devices, ESX COWD
// sparse extents, and header versions above 3.
//
// Limits (security.md §7): descriptors of at most 1 MiB - 1 at sector 1,
// numGTEsPerGT 1..512, grains of 1..0x200000 sectors, at most 32 Mi GD
// entries, compressed grains that inflate to at most one grain.
//
// Writing: monolithicSparse (default), monolithicFlat, twoGbMaxExtentSparse,
// twoGbMaxExtentFlat (extents of at most 2047 MiB, VMware's split size,
// named name-s001.vmdk / name-f001.vmdk) and streamOptimized (VMware's
// canonical layout in one sequential pass, safe for pipes, grains compressed
// in parallel). Sparse extents use qemu's layout: redundant and primary GD
// with preallocated GTs, grains appended; a monolithicSparse disk created at
// a provisional size (a raw stream's, formats.CreateRequest.Provisional)
// allocates its GTs (both copies) at the end of the file as they fill, and
// FinishSize allocates the rest its final size needs. FinishSize also gives
// a streamOptimized disk written to a file its final size. Check verifies
// grain offsets and the redundant grain tables.
package vmdk
