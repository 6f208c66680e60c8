package main

import (
	"io"

	"github.com/vdiskio/vdisk/imageinfo"
)

// writeJSON prints v as qemu's pretty printer does (imageinfo.WriteJSON).
func writeJSON(w io.Writer, v any) error { return imageinfo.WriteJSON(w, v) }

// humanSize formats a byte count as qemu's size_to_str.
func humanSize(n int64) string { return imageinfo.HumanSize(n) }
