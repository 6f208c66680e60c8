package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"

	"github.com/vdiskio/vdisk/internal/guid"
	"github.com/vdiskio/vdisk/internal/zero"
)

// GPT header fields (offsets in the header sector).
const (
	gptSignature    = "EFI PART"
	gptHeaderCRCOff = 16 // uint32, computed with this field zero
	gptMyLBAOff     = 24 // uint64
	gptAltLBAOff    = 32 // uint64: the other header
	gptFirstUseOff  = 40 // uint64
	gptLastUseOff   = 48 // uint64
	gptDiskGUIDOff  = 56 // 16 bytes
	gptEntriesOff   = 72 // uint64: LBA of the entry array
	gptCountOff     = 80 // uint32: number of entries
	gptEntrySizeOff = 84 // uint32: bytes per entry
	gptArrayCRCOff  = 88 // uint32: CRC32 of the entry array
)

// GPT entry fields (offsets in one entry).
const (
	entTypeOff  = 0  // 16-byte type GUID (all zero: unused)
	entGUIDOff  = 16 // 16-byte unique GUID
	entFirstOff = 32 // uint64 first LBA
	entLastOff  = 40 // uint64 last LBA, inclusive
	entAttrOff  = 48 // uint64 attributes
	entNameOff  = 56 // 72 bytes of UTF-16LE
	entNameLen  = 72
)

// gptHeader is a decoded, CRC-checked GPT header.
type gptHeader struct {
	myLBA, altLBA     uint64
	firstUse, lastUse uint64
	diskGUID          string
	entriesLBA        uint64
	count, entrySize  uint32
	arrayCRC          uint32
}

// errNoHeader: no "EFI PART" signature where a header should be.
var errNoHeader = errors.New("no GPT header")

// readGPT reads the primary GPT (trying 512- and 4096-byte sectors), falling
// back to the backup header when the primary or its entries are damaged.
func readGPT(r io.ReaderAt, size int64) (*Table, error) {
	var firstErr error
	for _, ss := range []int64{512, 4096} {
		if size < 3*ss {
			continue
		}
		t, err := readGPTAt(r, size, ss)
		if err == nil {
			return t, nil
		}
		if firstErr == nil || errors.Is(firstErr, errNoHeader) {
			firstErr = err
		}
	}
	if firstErr == nil || errors.Is(firstErr, errNoHeader) {
		return nil, corrupt("the MBR is protective (type ee) but no GPT header was found")
	}
	return nil, firstErr
}

// readGPTAt reads the GPT with sectors of ss bytes: the primary at LBA 1,
// else the backup its header names (or the last LBA).
func readGPTAt(r io.ReaderAt, size, ss int64) (*Table, error) {
	lastLBA := uint64(size/ss - 1)
	primary, perr := readHeader(r, ss, 1, lastLBA)
	if perr == nil {
		parts, err := readEntries(r, ss, primary, lastLBA)
		if err == nil {
			return gptTable(ss, primary, parts, nil), nil
		}
		perr = err
	}
	alt := lastLBA
	if primary != nil && primary.altLBA > 1 && primary.altLBA <= lastLBA {
		alt = primary.altLBA
	}
	backup, err := readHeader(r, ss, alt, lastLBA)
	if err == nil {
		var parts []Partition
		if parts, err = readEntries(r, ss, backup, lastLBA); err == nil {
			return gptTable(ss, backup, parts, []string{fmt.Sprintf("primary GPT unusable (%v); read the backup at LBA %d", perr, alt)}), nil
		}
	}
	if errors.Is(perr, errNoHeader) && errors.Is(err, errNoHeader) {
		return nil, perr
	}
	return nil, fmt.Errorf("%w; backup: %v", perr, err)
}

func gptTable(ss int64, h *gptHeader, parts []Partition, warnings []string) *Table {
	return &Table{Scheme: SchemeGPT, SectorSize: int(ss), DiskGUID: h.diskGUID, Partitions: parts, Warnings: warnings}
}

// readHeader reads and checks the GPT header at lba.
func readHeader(r io.ReaderAt, ss int64, lba, lastLBA uint64) (*gptHeader, error) {
	buf := make([]byte, ss)
	if _, err := r.ReadAt(buf, int64(lba)*ss); err != nil {
		return nil, fmt.Errorf("partition: reading the GPT header at LBA %d: %w", lba, err)
	}
	if string(buf[:8]) != gptSignature {
		return nil, fmt.Errorf("%w at LBA %d (byte %d)", errNoHeader, lba, int64(lba)*ss)
	}
	hsize := binary.LittleEndian.Uint32(buf[12:])
	if hsize < gptHeaderBytes || int64(hsize) > ss {
		return nil, corrupt("GPT header at LBA %d declares %d bytes (want %d to %d)", lba, hsize, gptHeaderBytes, ss)
	}
	stored := binary.LittleEndian.Uint32(buf[gptHeaderCRCOff:])
	hdr := bytes.Clone(buf[:hsize])
	binary.LittleEndian.PutUint32(hdr[gptHeaderCRCOff:], 0)
	if got := crc32.ChecksumIEEE(hdr); got != stored {
		return nil, corrupt("GPT header at LBA %d: CRC32 %#08x, stored %#08x", lba, got, stored)
	}
	h := &gptHeader{
		myLBA: le64(buf, gptMyLBAOff), altLBA: le64(buf, gptAltLBAOff),
		firstUse: le64(buf, gptFirstUseOff), lastUse: le64(buf, gptLastUseOff),
		diskGUID:   guidString(buf[gptDiskGUIDOff:]),
		entriesLBA: le64(buf, gptEntriesOff),
		count:      binary.LittleEndian.Uint32(buf[gptCountOff:]),
		entrySize:  binary.LittleEndian.Uint32(buf[gptEntrySizeOff:]),
		arrayCRC:   binary.LittleEndian.Uint32(buf[gptArrayCRCOff:]),
	}
	switch {
	case h.myLBA != lba:
		return nil, corrupt("GPT header at LBA %d says it is at LBA %d", lba, h.myLBA)
	case h.entrySize < minGPTEntry || h.entrySize%8 != 0 || h.entrySize > 4096:
		return nil, corrupt("GPT header at LBA %d: entry size %d", lba, h.entrySize)
	case h.count > maxGPTEntries || uint64(h.count)*uint64(h.entrySize) > maxGPTArray:
		return nil, corrupt("GPT header at LBA %d: %d entries of %d bytes exceed the limit of %d entries, %d bytes",
			lba, h.count, h.entrySize, maxGPTEntries, maxGPTArray)
	case h.firstUse > h.lastUse || h.lastUse > lastLBA:
		return nil, corrupt("GPT header at LBA %d: usable LBAs %d-%d on a disk whose last LBA is %d", lba, h.firstUse, h.lastUse, lastLBA)
	}
	arrayEnd := h.entriesLBA + (uint64(h.count)*uint64(h.entrySize)+uint64(ss)-1)/uint64(ss)
	if h.entriesLBA < 2 || h.entriesLBA > lastLBA || arrayEnd > lastLBA+1 {
		return nil, corrupt("GPT header at LBA %d: entry array at LBA %d runs past the disk", lba, h.entriesLBA)
	}
	return h, nil
}

// readEntries reads and checks the entry array of h.
func readEntries(r io.ReaderAt, ss int64, h *gptHeader, lastLBA uint64) ([]Partition, error) {
	array := make([]byte, int(h.count)*int(h.entrySize))
	if _, err := r.ReadAt(array, int64(h.entriesLBA)*ss); err != nil {
		return nil, fmt.Errorf("partition: reading the GPT entries at LBA %d: %w", h.entriesLBA, err)
	}
	if got := crc32.ChecksumIEEE(array); got != h.arrayCRC {
		return nil, corrupt("GPT entries at LBA %d: CRC32 %#08x, stored %#08x", h.entriesLBA, got, h.arrayCRC)
	}
	var parts []Partition
	for i := 0; i < int(h.count); i++ {
		e := array[i*int(h.entrySize):]
		if zero.Is(e[entTypeOff : entTypeOff+16]) {
			continue
		}
		first, last := le64(e, entFirstOff), le64(e, entLastOff)
		if first > last || last > lastLBA || first < h.firstUse || last > h.lastUse {
			return nil, corrupt("GPT entry %d spans LBAs %d-%d outside the usable %d-%d", i+1, first, last, h.firstUse, h.lastUse)
		}
		typeGUID := guidString(e[entTypeOff:])
		parts = append(parts, Partition{
			Number: i + 1, Start: int64(first) * ss, Size: int64(last-first+1) * ss,
			Type: gptTypeName(typeGUID), TypeGUID: typeGUID, GUID: guidString(e[entGUIDOff:]),
			Name: utf16Name(e[entNameOff : entNameOff+entNameLen]), Attributes: le64(e, entAttrOff),
		})
	}
	return parts, nil
}

func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

// guidString formats a GPT GUID (first three fields little-endian) in the
// canonical upper-case form.
func guidString(b []byte) string { return guid.FromMixed(b).Upper() }

// utf16Name decodes a NUL-terminated UTF-16LE name.
func utf16Name(b []byte) string {
	units := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u := binary.LittleEndian.Uint16(b[i:])
		if u == 0 {
			break
		}
		units = append(units, u)
	}
	return string(utf16.Decode(units))
}
