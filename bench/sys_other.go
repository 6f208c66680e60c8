//go:build !unix

package main

import "os"

// syncAll does nothing where the OS has no sync(2) (Windows flushes per
// file): timings there include the previous run's write-back.
func syncAll() {}

// peakRSSKiB is 0 where the OS reports no peak resident set to os/exec.
func peakRSSKiB(ps *os.ProcessState) int64 { return 0 }
