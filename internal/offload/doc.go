// Package offload copies a byte range from one OS file to another inside
// the kernel, without passing the bytes through user space: first as a
// reflink (FICLONERANGE: the target shares the source's blocks, copy on
// write, on XFS with reflink=1, btrfs, bcachefs), then with
// copy_file_range (an in-kernel copy, or a server-side copy on NFS 4.2
// and SMB; also a reflink where the file system does one for it).
//
// Copy never fails for want of support: when the file systems, the
// offsets or the OS do not allow offload (EXDEV across file systems,
// EOPNOTSUPP, EINVAL for unaligned or overlapping ranges, ENOSYS, a short
// copy at the source's end), it reports how much it copied and a nil
// error, and the caller copies the rest through user space. Only a real
// I/O error (EIO, ENOSPC, ...) is an error. Linux only; elsewhere Copy
// copies nothing and the caller falls back for all of it.
//
// This is qemu-img's convert -C (copy offloading), which qemu implements
// with copy_file_range in its file-posix driver.
package offload

// maxCallBytes caps one kernel call: a clone or copy of this much returns
// to user space often enough for cancellation and progress to be prompt.
const maxCallBytes = 64 << 20
