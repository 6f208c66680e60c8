//go:build unix

package main

import (
	"os"
	"syscall"
)

func blocksKiB(st os.FileInfo) int64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Blocks / 2
	}
	return st.Size() / 1024
}
