// Package vdi is the driver for VirtualBox Disk Images (VDI), following
// VirtualBox's VDICore.h and qemu's block/vdi.c.
//
// A VDI file starts with a 72-byte pre-header (64 bytes of banner text, the
// signature 0xBEDA107F at offset 64, the version at 68) and a header: version
// 1.x (VDIHEADER1, 384 bytes, or 400 with the LCHS geometry VirtualBox writes)
// names the block map and data area offsets; the old version 0 layout
// (VDIHEADER0) has none and its map follows the header directly. All numbers
// are little-endian; UUIDs use the Microsoft mixed-endian layout.
//
// The disk is cut into blocks (1 MiB by default). The block map has one
// 32-bit entry per block: the index of the block in the data area, or
// 0xFFFFFFFF (never allocated: reads through to the parent, or zeros) or
// 0xFFFFFFFE (discarded: reads as zeros). A block's bytes are at
// offData + index*(cbBlockExtra+cbBlock) + cbBlockExtra.
//
// Supported: reading versions 0, 1.0 and 1.1, dynamic (type 1) and static
// (type 2) images, disk sizes that are not a multiple of the block size, and
// differencing images (type 4, or any image with a parent UUID) when the
// caller supplies the parent with OpenOptions.Parents (the CLI's --parent
// PATH): a parent is found by UUID only, so it is never looked up on its own.
// Writing creates version 1.1 images as VirtualBox lays them out (400-byte
// header, block map and data area aligned to 1 MiB, 1 MiB blocks, random
// non-null creation and modification UUIDs), dynamic or with static=on
// preallocated. Whole blocks written as zeros are recorded as 0xFFFFFFFE.
// Check reports what qemu-img check reports: block indexes out of range,
// blocks used twice and a wrong allocated-block count.
//
// Refused by name: differencing images without their parent, parents that
// are not VDI images, writing to differencing images, unknown header flags,
// header versions other than 0.x and 1.0/1.1.
//
// FinishSize gives a new dynamic image created at a provisional size (a raw
// stream's) its final size: cbDisk and cBlocks (the block map keeps its
// room before offData).
package vdi
