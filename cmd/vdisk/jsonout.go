package main

import (
	"io"

	"github.com/vdiskio/vdisk/imageinfo"
)

// writeJSON prints v as qemu's pretty printer does (imageinfo.WriteJSON).
func writeJSON(w io.Writer, v any) error { return imageinfo.WriteJSON(w, v) }
