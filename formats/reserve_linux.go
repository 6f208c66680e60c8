package formats

import (
	"os"

	"golang.org/x/sys/unix"
)

// reserveBeforeWrite allocates [off, off+length) of f (as unwritten
// extents, FALLOC_FL_KEEP_SIZE: the size stays the write's business)
// before a large write fills it, as qemu's qcow2 driver does for the
// clusters it allocates. A buffered write into a hole on ext4 reserves
// and records every 4 KiB block on its own (delayed allocation); into
// blocks already allocated it only copies: 832 MiB in 128 KiB writes
// took 0.20-0.23 s of system time with one fallocate per 2 MiB against
// 0.30-0.31 s without (5 interleaved runs each, KEEP_SIZE, mode 0 and
// ZERO_RANGE alike; one fallocate per 128 KiB write gained nothing). A
// range already allocated is left as it is. Errors are ignored: a file
// system without fallocate, or short of space, lets the write itself
// succeed or report.
func reserveBeforeWrite(f *os.File, off, length int64) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, length)
}
