package partition

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MBR layout (offsets in the 512-byte sector).
const (
	mbrDiskIDOff  = 440 // uint32 disk signature
	mbrEntriesOff = 446 // four 16-byte entries
	mbrEntryBytes = 16
	mbrSigOff     = 510 // 0x55 0xAA
	typeGPTProt   = 0xEE
)

// mbrEntry is one 16-byte MBR partition entry.
type mbrEntry struct {
	status   byte   // +0: 0x80 active, 0x00 inactive
	typ      byte   // +4: partition type
	firstLBA uint32 // +8
	sectors  uint32 // +12
}

type mbr struct {
	diskID  uint32
	entries [4]mbrEntry
}

// parseMBR decodes sector 0; it fails when the sector is not an MBR (no
// signature, or status bytes other than 0x00 and 0x80, as in a boot sector
// of a file system that fills the partition-entry area with code).
func parseMBR(sector []byte) (*mbr, error) {
	if sector[mbrSigOff] != 0x55 || sector[mbrSigOff+1] != 0xAA {
		return nil, fmt.Errorf("no MBR signature")
	}
	m := &mbr{diskID: binary.LittleEndian.Uint32(sector[mbrDiskIDOff:])}
	used := 0
	for i := range m.entries {
		e := sector[mbrEntriesOff+i*mbrEntryBytes:]
		m.entries[i] = mbrEntry{status: e[0], typ: e[4],
			firstLBA: binary.LittleEndian.Uint32(e[8:]), sectors: binary.LittleEndian.Uint32(e[12:])}
		if e[0] != 0 && e[0] != 0x80 {
			return nil, fmt.Errorf("entry %d has status %#x", i+1, e[0])
		}
		if m.entries[i].typ != 0 {
			used++
		}
	}
	if used == 0 {
		return nil, fmt.Errorf("no partitions")
	}
	return m, nil
}

// protective reports whether the MBR guards a GPT (has a type EE entry).
func (m *mbr) protective() bool {
	for _, e := range m.entries {
		if e.typ == typeGPTProt {
			return true
		}
	}
	return false
}

// hybrid: a protective MBR that also lists other partitions.
func (m *mbr) hybrid() bool {
	for _, e := range m.entries {
		if e.typ != 0 && e.typ != typeGPTProt {
			return true
		}
	}
	return false
}

func isExtended(typ byte) bool { return typ == 0x05 || typ == 0x0F || typ == 0x85 }

// readMBR lists the primary partitions and walks the extended chain.
func readMBR(r io.ReaderAt, size int64, m *mbr) (*Table, error) {
	t := &Table{Scheme: SchemeMBR, SectorSize: 512, DiskID: m.diskID}
	sectors := size / 512
	var logical []Partition // listed after the primaries
	extended := false
	for i, e := range m.entries {
		if e.typ == 0 {
			continue
		}
		start, n := int64(e.firstLBA), int64(e.sectors)
		if start == 0 || start+n > sectors {
			return nil, corrupt("MBR entry %d (offset %d) spans sectors %d-%d of a %d-sector disk",
				i+1, mbrEntriesOff+i*mbrEntryBytes, start, start+n, sectors)
		}
		if isExtended(e.typ) {
			if extended {
				return nil, corrupt("MBR has a second extended partition (entry %d)", i+1)
			}
			extended = true
			parts, warn, err := readExtended(r, start, n)
			if err != nil {
				return nil, err
			}
			logical = parts
			t.Warnings = append(t.Warnings, warn...)
		}
		t.Partitions = append(t.Partitions, Partition{Number: i + 1, Start: start * 512, Size: n * 512,
			Type: mbrTypeName(e.typ), TypeByte: e.typ, Bootable: e.status == 0x80})
	}
	t.Partitions = append(t.Partitions, logical...)
	return t, nil
}

// readExtended follows the EBR chain of the extended partition at sector
// base of n sectors. Each EBR must lie inside the extended partition, be
// visited once, and the chain is at most maxLogical long.
func readExtended(r io.ReaderAt, base, n int64) ([]Partition, []string, error) {
	var parts []Partition
	var warnings []string
	seen := map[int64]bool{}
	sector := make([]byte, 512)
	for ebr := base; ; {
		if len(parts) >= maxLogical {
			return nil, nil, corrupt("extended partition at sector %d holds more than %d logical partitions", base, maxLogical)
		}
		if seen[ebr] {
			return nil, nil, corrupt("EBR chain loops back to sector %d", ebr)
		}
		seen[ebr] = true
		if _, err := r.ReadAt(sector, ebr*512); err != nil {
			return nil, nil, fmt.Errorf("partition: reading the EBR at sector %d: %w", ebr, err)
		}
		if sector[mbrSigOff] != 0x55 || sector[mbrSigOff+1] != 0xAA {
			return nil, nil, corrupt("EBR at sector %d (byte %d) has no 55 AA signature", ebr, ebr*512)
		}
		logical := decodeEntry(sector, 0)
		next := decodeEntry(sector, 1)
		if logical.typ != 0 && logical.sectors > 0 {
			start, cnt := ebr+int64(logical.firstLBA), int64(logical.sectors)
			if logical.firstLBA == 0 || start+cnt > base+n {
				return nil, nil, corrupt("logical partition %d (EBR at sector %d) spans sectors %d-%d outside the extended partition %d-%d",
					5+len(parts), ebr, start, start+cnt, base, base+n)
			}
			parts = append(parts, Partition{Number: 5 + len(parts), Start: start * 512, Size: cnt * 512,
				Type: mbrTypeName(logical.typ), TypeByte: logical.typ, Bootable: logical.status == 0x80, Logical: true})
		} else {
			warnings = append(warnings, fmt.Sprintf("EBR at sector %d holds no logical partition", ebr))
		}
		if next.typ == 0 || next.firstLBA == 0 {
			return parts, warnings, nil
		}
		link := base + int64(next.firstLBA)
		if link >= base+n {
			return nil, nil, corrupt("EBR at sector %d links to sector %d outside the extended partition %d-%d", ebr, link, base, base+n)
		}
		ebr = link
	}
}

func decodeEntry(sector []byte, i int) mbrEntry {
	e := sector[mbrEntriesOff+i*mbrEntryBytes:]
	return mbrEntry{status: e[0], typ: e[4], firstLBA: binary.LittleEndian.Uint32(e[8:]), sectors: binary.LittleEndian.Uint32(e[12:])}
}
