// Package vhd is the driver for Microsoft Virtual Hard Disk (VHD, "Virtual
// Hard Disk Image Format Specification" v1.0) images, named "vpc" as in qemu,
// with the alias "vhd".
//
// Every VHD ends with a 512-byte big-endian footer (511 bytes before Virtual
// PC 2004): cookie "conectix", disk type, CHS geometry, current size, UUID,
// checksum. A fixed disk is the raw disk followed by the footer; it is
// detected by that footer and its checksum, which qemu does not look for. A
// dynamic disk starts with a copy of the footer, then the dynamic header
// ("cxsparse": block size, BAT offset and length), the BAT (one big-endian
// sector number per block, 0xFFFFFFFF when absent) and the blocks, each a
// sector bitmap (most significant bit first) followed by the block's data.
// A differencing disk (type 4) is a dynamic disk whose bitmap bits say which
// sectors are in the child; the others, and absent blocks, come from the
// parent, found through the parent locators (W2ru relative path first, then
// Wi2r, W2ku, Wi2k, MacX and the header's parent name), opened only through
// the reference policy, and checked against the parent UUID in the header
// (a parent timestamp that differs is reported, not refused).
//
// The virtual size is read as qemu 7.2 reads it: current_size for the
// creators "win ", "qem2", "d2v ", "tap\0" and "CTXS" and whenever the
// geometry is the maximum 65535/16/255, the CHS capacity otherwise.
//
// Writing: subformat=dynamic (default; block_size, 2 MiB by default) or
// fixed; force_size as in qemu (off: the size grows to the next CHS
// geometry, creator "qemu"; on: the exact size, the geometry rounded down
// (65535/16/255 beyond it), creator "qem2"); differencing disks with
// backing_file (W2ru and W2ku locators); azure=on (fixed, exact size, whole
// MiB, or azure_round_up=on). A fixed disk can be written in one pass to a
// stream. Check verifies footers, header, BAT bounds and overlaps. Resize
// grows or shrinks a fixed disk and grows a dynamic one within its BAT's
// room. Not supported (refused by name): the "Mac " alias locator,
// shrinking dynamic and resizing differencing disks; split (.v01) images
// are not recognised. FinishSize gives a new disk created at a provisional
// size (a raw stream's) its final size: footers and geometry, and for a
// dynamic disk the header's max_table_entries (the BAT keeps its room).
package vhd
