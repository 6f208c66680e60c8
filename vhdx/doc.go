// Package vhdx is the driver for Microsoft's VHDX format (MS-VHDX), the
// disk format of Hyper-V since Windows Server 2012.
//
// A VHDX file starts with a 1 MiB header section: the "vhdxfile"
// identifier, two 4 KiB headers (the valid one with the larger sequence
// number is current; CRC-32C checksums) and two copies of the region table,
// which locates the BAT and the metadata region. Metadata items give the
// block size (1–256 MiB), the virtual size, the logical and physical sector
// sizes, the page 83 identity and, for differencing disks, the parent
// locator. The BAT maps each payload block to a 1 MiB-aligned file offset
// with a state; after every chunk-ratio payload entries comes the entry of
// a sector-bitmap block, which for PARTIALLY_PRESENT blocks of differencing
// disks says, one bit per sector, whether a sector is here or in the parent.
//
// Reading supports fixed, dynamic and differencing disks and every block
// state. A pending log (a metadata journal left by a crash) is replayed in
// memory: reads see the replayed file, the file is unchanged; only Check
// with RepairAll replays it on disk. Parents are opened through the
// Resolver from the locator's relative_path (absolute paths need
// --references=any) and must carry the DataWriteGuid the child links to.
//
// Writing creates dynamic (default), fixed and differencing disks with
// qemu's option names (subformat, block_size, log_size, block_state_zero,
// backing_file) plus logical_sector_size (512 or 4096, which qemu 7.2 cannot
// open); everything is 1 MiB aligned, the log is empty and the GUIDs are
// fresh. A new disk never uses the log: metadata is written in place and
// the image is complete after Flush. A differencing disk (2 MiB blocks by
// default) stores a block written whole as FULLY_PRESENT and a block written
// in part as PARTIALLY_PRESENT with its sectors marked in the chunk's
// sector bitmap, so the rest still reads from the parent. Every chunk of a
// new differencing disk gets its (all-zero) sector bitmap block at once, as
// a hole: libvhdi reads a chunk's bitmap whatever its BAT entry says.
//
// Existing images open for writing in place (inplace.go): a new
// DataWriteGuid before the first content change, data in place or in new
// blocks at the end, and every BAT and metadata change through the log
// (set the log GUID, write and sync an entry, apply and sync, clear the
// log GUID). A differencing disk relinks to another parent (a new parent
// locator) and empties (sector bitmaps zeroed, then every block
// NOT_PRESENT) in place; becoming or ceasing to be a differencing disk is
// refused in place.
//
// The parent locator holds parent_linkage (the parent's DataWriteGuid,
// lowercase in braces, the form Hyper-V writes and libvhdi parses),
// relative_path (".\base.vhdx") and absolute_win32_path (the parent's
// absolute path with backslashes; outside Windows without a drive letter).
// volume_path (\\?\Volume{GUID}\...) is left out: MS-VHDX requires only
// parent_linkage, the path entries are alternatives, and outside Windows
// there is no volume GUID to name (a made-up one would point nowhere).
//
// Refused by name (ErrUnsupported): header version other than 1, log
// version other than 0, unknown regions or metadata items flagged required,
// a parent that is not VHDX. Limits (ErrLimit): a log larger than
// Limits.MaxTableBytes, metadata items over 1 MiB, a virtual size over
// Limits.MaxVirtualSize; the format itself caps disks at 64 TiB. A BAT
// within Limits.MaxTableBytes is loaded and validated whole at open; a
// larger one is read in 64 KiB pages through a cache of Limits.CacheBytes,
// each page validated when loaded. The writer keeps its BAT in memory and
// refuses one over the table limit (use a larger block_size). FinishSize
// gives a new dynamic disk created at a provisional size (a raw stream's)
// its final size: the metadata's virtual disk size (the BAT region keeps its
// room).
package vhdx
