package qcow2

import "encoding/binary"

// bitmapEntry is one entry of the bitmap directory (qcow2 spec, "Bitmap
// directory"), 8-byte aligned:
//
//	+0  u64 bitmap_table_offset
//	+8  u32 bitmap_table_size (entries)
//	+12 u32 flags (bit 0 in-use, bit 1 auto)
//	+16 u8  type, +17 u8 granularity_bits
//	+18 u16 name_size
//	+20 u32 extra_data_size
//	+24 extra data, then the name
type bitmapEntry struct {
	tableOff  int64
	tableSize int64
	flags     uint32
	granBits  uint8
	name      string
	whole     bool // the name and extra data lie inside the directory
}

const bitmapEntryFixed = 24

// bitmapDir reads the bitmap directory, or nil when the image has no valid
// bitmaps (no extension, or the autoclear bit is clear: they are stale and
// qemu ignores them). The extension's size was bounded when the header was
// read. The walk stops at an entry cut short by the end of the directory;
// that entry is returned (its fixed part is whole) with whole false.
func (img *Image) bitmapDir() []bitmapEntry {
	b := img.ext.Bitmaps
	if b == nil || img.hdr.AutoclearFeatures&autoclearBitmaps == 0 || b.DirectorySize == 0 || b.DirectorySize > maxBitmapDir {
		return nil
	}
	dir := make([]byte, b.DirectorySize)
	if n, _ := img.f.ReadAt(dir, int64(b.DirectoryOff)); n < len(dir) {
		return nil
	}
	be := binary.BigEndian
	var out []bitmapEntry
	for off, i := 0, uint32(0); i < b.NbBitmaps && off+bitmapEntryFixed <= len(dir); i++ {
		e := dir[off:]
		nameLen, extraLen := int(be.Uint16(e[18:])), int(be.Uint32(e[20:]))
		ent := bitmapEntry{tableOff: int64(be.Uint64(e[0:])), tableSize: int64(be.Uint32(e[8:])),
			flags: be.Uint32(e[12:]), granBits: e[17]}
		if extraLen > len(e) || bitmapEntryFixed+extraLen+nameLen > len(e) {
			return append(out, ent)
		}
		ent.name, ent.whole = string(e[bitmapEntryFixed+extraLen:bitmapEntryFixed+extraLen+nameLen]), true
		out = append(out, ent)
		off += (bitmapEntryFixed + extraLen + nameLen + 7) &^ 7
	}
	return out
}
