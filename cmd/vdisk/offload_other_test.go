//go:build !unix

package main

import "os"

func blocksKiB(st os.FileInfo) int64 { return st.Size() / 1024 }
