// Package chain changes backing chains of images of any format: rebase
// (point an image at another backing file, keeping or not keeping its
// content), commit (merge an image into a layer below it), as qemu-img
// rebase and qemu-img commit do, and Difference, the view convert -B uses
// to write only what differs from a base.
//
// # Chains in each format
//
//   - qcow2 names its backing file and format in its header; any format may
//     be below it (mixed chains: qcow2 over vmdk, vhdx, vhd, vdi, raw).
//   - VMDK delta disks name their parent by parentFileNameHint and pin it by
//     parentCID, the parent's CID (its content id, changed by every writer).
//   - VHD differencing disks carry the parent's unique id and timestamp and
//     parent locators: W2ru (relative) and W2ku (absolute) paths.
//   - VHDX differencing disks carry a parent locator with parent_linkage (the
//     parent's DataWriteGuid), relative_path and absolute_win32_path.
//   - VDI differencing images (type 4) carry only the parent's creation and
//     modification UUIDs: the parent is supplied (--parent), never looked up.
//
// A parent that is missing, or that is not the image the link was made over
// (another CID, unique id, DataWriteGuid or UUID), a loop and a chain deeper
// than formats.DefaultMaxChainDepth (64) are refused when the chain is
// opened, in one error naming the link. A backing image of another size is
// read as qemu reads it: past its end an overlay reads zeros.
//
// # Difference (convert -B)
//
// A Difference reads as its source and reports, grain by grain (64 KiB or
// the target's smaller cluster), Unallocated where source and base read the
// same, Zero where only the base holds data, Data elsewhere; copied in
// top-layer mode into an overlay of the base it writes exactly the grains
// that differ. Ranges that read as zeros in both are not read, nor are the
// ranges a source chain reads from the base's own file.
//
// # Rebase
//
// Rebase in safe mode writes into the top, for every cluster it does not
// allocate, what the old backing chain shows there where it differs from
// the new backing (a Difference of the old chain against the new one, so
// ranges the old chain reads from the new backing's file are not read).
// The data is flushed and synced before the link is rewritten, which is the
// last write (formats.BackingSetter, in place in every chain format): an
// interruption leaves the old link, and every cluster written so far holds
// what the old chain shows there, so the top reads as before. How each
// driver rewrites the link:
//
//   - qcow2: the header's backing name and format (one write).
//   - vdi: the parent UUIDs in the header (one write).
//   - vmdk: parentCID and parentFileNameHint in the descriptor, every other
//     line kept: an embedded descriptor in its fixed area (one write,
//     refused with ErrLimit when the new text does not fit), a descriptor
//     file by a temporary file renamed over it.
//   - vpc: the header's parent unique id, timestamp and name and the
//     W2ru/W2ku locators (their data in its own space when it fits, else in
//     new space at the end of the file, written before the header); the
//     footer's disk type, both copies, when the disk gains or loses its
//     parent. Between the locator data and the header an open follows the
//     new path, finds the wrong unique id and falls back to the header's
//     parent name (the old parent); between the two footer copies vdisk's
//     check reports them differing (check -r all repairs).
//   - vhdx: the parent locator item in the metadata region, through the
//     log (the entry complete: the new link; before: the old one). A VHDX
//     that gains or loses its parent is rebased by package chain/replace
//     (a new image renamed over the old: the old one byte for byte until
//     the rename).
//
// # Commit
//
// Commit copies every range allocated above the base (data, and zeros as
// zeros), and nothing else, into the base in place through its driver's
// WriteAt, then flushes it; the top is emptied only after that (qemu-img
// commit without -d). An interruption leaves:
//
//   - qcow2 base: readable and consistent (qemu-img check finds no
//     corruption; clusters being allocated may leak, which check -r leaks
//     repairs); each cluster reads as the base before or as the top.
//   - vdi base: each block reads as before or as the top; the header's
//     allocated-block count is written before the block map, so an
//     interruption between them leaks a block (check reports a leak), never
//     a map entry that a later write would reuse.
//   - vpc base: vdisk's check finds no corruption and each sector reads as
//     before or as the top (a block being allocated may be lost, its space
//     leaked).
//   - vmdk base: qemu-img check finds no corruption and each grain reads as
//     before or as the top (a grain being allocated is leaked: its table
//     entry is written after its data, the redundant table first, and vdisk's
//     check reports the two tables differing until the primary is written).
//     The base's CID is renewed before its first change, as qemu does, so
//     the layer above (whose parentCID pins the old one) refuses to open,
//     in qemu too, until the commit ends by relinking it, or `rebase -u`
//     does.
//   - vhdx base: vdisk's check finds no corruption and each sector reads as
//     before or as the top; BAT changes go through the log, so a pending
//     entry may be left, which vdisk replays in memory and qemu-img check
//     -r all on disk (qemu refuses a read-only open until then). The base's
//     DataWriteGuid is renewed before its first change; the layer above
//     (parent_linkage) refuses to open until relinked, as for vmdk.
//
// A committed vmdk or vhdx base keeps its subformat, block and grain size:
// nothing is rewritten. Emptying the top (formats.Emptier) drops its
// clusters in place: qcow2 and vdi as before; vpc writes the BAT all
// unused, then the footer, then cuts the file; vmdk zeroes the grain
// tables (redundant first), then cuts the grains; vhdx zeroes the sector
// bitmaps, then marks every block NOT_PRESENT through the log (the file
// keeps its size). Interrupted, each cluster of the top reads as before or
// through to the base, which holds the same data by then.
//
// In every case the top and the layers between are not changed by the
// copy, so the top still reads as before; emptying it after a complete
// commit, interrupted at any point, leaves it reading the same (its freed
// ranges read the base, which holds the same data by then).
package chain
