package iso

import (
	"encoding/binary"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// El Torito boot catalog (El Torito 1.0 §2): 32-byte entries.
const (
	catEntryBytes    = 32
	maxCatalogBlocks = 4 // entries read at most: 4 blocks of 64
	catValidation    = 0x01
	catBootable      = 0x88
	catSectionMore   = 0x90
	catSectionLast   = 0x91
)

// BootEntry is one El Torito boot image.
type BootEntry struct {
	Platform    string `json:"platform"` // "x86", "PowerPC", "Mac", "UEFI" or a number
	Bootable    bool   `json:"bootable"`
	Emulation   string `json:"emulation"` // "none", "1.2M floppy", "1.44M floppy", "2.88M floppy", "hard disk"
	LoadSegment uint16 `json:"load-segment"`
	SystemType  byte   `json:"system-type"`
	LoadSectors uint16 `json:"load-size"` // 512-byte sectors loaded at boot ("load size")
	LoadRBA     uint32 `json:"load-rba"`  // 2048-byte block of the boot image
}

func platformName(id byte) string {
	switch id {
	case 0:
		return "x86"
	case 1:
		return "PowerPC"
	case 2:
		return "Mac"
	case 0xEF:
		return "UEFI"
	}
	return fmt.Sprintf("%#02x", id)
}

func emulationName(media byte) string {
	switch media & 0x0F {
	case 0:
		return "none"
	case 1:
		return "1.2M floppy"
	case 2:
		return "1.44M floppy"
	case 3:
		return "2.88M floppy"
	case 4:
		return "hard disk"
	}
	return fmt.Sprintf("unknown (%d)", media&0x0F)
}

// readBootCatalog parses the catalog at LBA lba.
func readBootCatalog(r readerAt, name string, size, lba int64) ([]BootEntry, error) {
	off := lba * blockBytes
	if lba <= 0 || off+blockBytes > size {
		return nil, formats.Corruptf(name, "El Torito boot record", firstVDOffset, "boot catalog block %d is outside the image", lba)
	}
	n := min(int64(maxCatalogBlocks*blockBytes), size-off)
	buf := make([]byte, n/catEntryBytes*catEntryBytes)
	if err := fileio.ReadFull(r, buf, off); err != nil {
		return nil, fmt.Errorf("%s: reading boot catalog: %w", name, err)
	}
	v := buf[:catEntryBytes]
	if v[0] != catValidation || v[30] != 0x55 || v[31] != 0xAA {
		return nil, formats.Corruptf(name, "El Torito boot catalog", off, "no validation entry")
	}
	if validationSum(v) != 0 {
		return nil, formats.Corruptf(name, "El Torito boot catalog", off, "validation entry checksum")
	}
	platform := v[1]
	entries := []BootEntry{parseBootEntry(buf[catEntryBytes:2*catEntryBytes], platform)}
	// Section headers and their entries follow the default entry.
	pos := 2 * catEntryBytes
	for pos+catEntryBytes <= len(buf) {
		h := buf[pos : pos+catEntryBytes]
		if h[0] != catSectionMore && h[0] != catSectionLast {
			break
		}
		count := int(binary.LittleEndian.Uint16(h[2:]))
		platform = h[1]
		pos += catEntryBytes
		for i := 0; i < count && pos+catEntryBytes <= len(buf); i++ {
			e := buf[pos : pos+catEntryBytes]
			pos += catEntryBytes
			if e[0] == 0x44 { // extension entry
				continue
			}
			entries = append(entries, parseBootEntry(e, platform))
		}
		if h[0] == catSectionLast {
			break
		}
	}
	return entries, nil
}

// validationSum is the 16-bit sum of the validation entry's words, 0 when
// its checksum is right.
func validationSum(v []byte) uint16 {
	var sum uint16
	for i := 0; i < catEntryBytes; i += 2 {
		sum += binary.LittleEndian.Uint16(v[i:])
	}
	return sum
}

func parseBootEntry(e []byte, platform byte) BootEntry {
	le := binary.LittleEndian
	return BootEntry{
		Platform:    platformName(platform),
		Bootable:    e[0] == catBootable,
		Emulation:   emulationName(e[1]),
		LoadSegment: le.Uint16(e[2:]),
		SystemType:  e[4],
		LoadSectors: le.Uint16(e[6:]),
		LoadRBA:     le.Uint32(e[8:]),
	}
}

// Hybrid boot tables in the system area.
type hybridInfo struct {
	mbr bool // a partition table with at least one partition
	gpt bool // "EFI PART" at LBA 1 (512 or 4096-byte sectors)
}

func detectHybrid(sys []byte) hybridInfo {
	var h hybridInfo
	if len(sys) < systemAreaBytes {
		return h
	}
	if sys[510] == 0x55 && sys[511] == 0xAA {
		for i := 0; i < 4; i++ {
			p := sys[446+16*i:]
			if p[4] != 0 && binary.LittleEndian.Uint32(p[12:]) != 0 {
				h.mbr = true
			}
		}
	}
	h.gpt = string(sys[512:520]) == "EFI PART" || string(sys[4096:4104]) == "EFI PART"
	return h
}
