//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import "io"

// terminalColumns is 0 here: the width is taken from $COLUMNS or --width.
func terminalColumns(io.Writer) int { return 0 }
