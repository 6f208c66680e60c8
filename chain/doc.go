// Package chain changes backing chains of images of any format: rebase
// (point an image at another backing file, keeping or not keeping its
// content) and commit (merge an image into a layer below it), as
// qemu-img rebase and qemu-img commit do.
//
// Rebase in safe mode reads, for every cluster the top does not allocate,
// what the old backing chain and the new backing show there and writes the
// old content into the top where they differ; ranges that read as zeros in
// both (unallocated or zero through each chain) are not read. The data is
// flushed and synced before the link is rewritten, which is the last write
// (formats.BackingSetter): an interruption leaves the old link, and every
// cluster written so far holds what the old chain shows there, so the top
// reads as before.
//
// Commit copies every range allocated above the base (data, and zeros as
// zeros) into the base, then flushes it. An interruption leaves the base
// readable and consistent (each of its own writes is complete metadata
// once flushed, and qcow2's dirty/refcount handling repairs leaks), holding
// part of the top's data: ranges already committed read as the top,
// the rest as before. The top and the layers between are not changed by
// the copy, so the top still reads as before as long as the base was its
// direct backing and the committed ranges are the top's own.
package chain
