//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly && !windows

package main

import "os"

// isTerminal is false where no terminal query is wired: progress is drawn
// as qemu-img's plain lines.
func isTerminal(f *os.File) bool { return false }
