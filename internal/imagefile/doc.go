// Package imagefile is how convert.Run and the CLI treat image files on
// the local disk, apart from the formats themselves:
//
//   - Create makes a new image for a destination path: a temporary file
//     beside it (with the old file's owner and mode) renamed into place by
//     Output.Commit, so a failed or interrupted run leaves nothing; a block
//     device is written through (qemu's "Cannot grow device files"), a
//     pipe or character device in order; split sets and compressed
//     streams as convert's options ask.
//   - Locks takes and holds qemu's image locks (byte-range locks at
//     qemu's offsets), so vdisk and a running qemu exclude each other.
//   - FileSet records every file an input opens (extents, backing chain)
//     so that no output replaces one of them (ErrSameFile).
//   - CouldNotOpen words an open failure as qemu-img does, which clients
//     match on stderr.
//
// It is internal: library callers use convert.Run, convert.Copy and
// convert.ToWriter, which use it; these are the CLI's shared parts.
package imagefile
