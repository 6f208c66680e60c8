//go:build unix

package main

import (
	"os"
	"syscall"
)

// syncAll flushes every file system's dirty pages (sync(2)).
func syncAll() { syscall.Sync() }

// peakRSSKiB is the child's peak resident set (ru_maxrss: KiB on Linux and
// FreeBSD, bytes on macOS — the benchmark is Linux's).
func peakRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return int64(ru.Maxrss)
	}
	return 0
}
