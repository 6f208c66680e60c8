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
// last write (formats.BackingSetter: qcow2, vdi): an interruption leaves the
// old link, and every cluster written so far holds what the old chain shows
// there, so the top reads as before.
//
// Formats whose drivers cannot rewrite the link in place (vmdk, vpc, vhdx)
// are rebased by package chain/replace: a new image is written beside the
// old one and renamed over it; an interruption leaves the old image byte
// for byte (the temporary is removed, or by the next run beside it).
//
// # Commit
//
// Commit copies every range allocated above the base (data, and zeros as
// zeros) into the base, then flushes it; the top is emptied only after
// that (qemu-img commit without -d). An interruption leaves:
//
//   - qcow2 base: readable and consistent (qemu-img check finds no
//     corruption; clusters being allocated may leak, which check -r leaks
//     repairs); each cluster reads as the base before or as the top.
//   - vdi base (in place): each block reads as before or as the top; the
//     header's allocated-block count is written before the block map, so an
//     interruption between them leaks a block (check reports a leak), never
//     a map entry that a later write would reuse.
//   - vpc base (in place): vdisk's check finds no corruption and each
//     sector reads as before or as the top (a block being allocated may be
//     lost, its space leaked).
//   - vmdk and vhdx bases (chain/replace: a new base renamed over the old
//     one): the old base unchanged until the rename, the new one complete
//     after it. The layer above the base is then relinked (its link pins the
//     base's identity: CID, DataWriteGuid); between the two renames that
//     layer refuses to open with a "parent changed" error until rebase -u
//     relinks it.
//
// In every case the top and the layers between are not changed by the
// copy, so the top still reads as before; emptying it after a complete
// commit, interrupted at any point, leaves it reading the same (its freed
// ranges read the base, which holds the same data by then).
package chain
