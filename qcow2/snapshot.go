package qcow2

import (
	"encoding/binary"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// snapshotFixedBytes is the fixed part of a snapshot table entry.
const snapshotFixedBytes = 40

// snapshot is one entry of the snapshot table (qcow2.txt "Snapshots"), each
// entry padded to a multiple of 8 bytes.
type snapshot struct {
	L1TableOffset uint64 // 0: host offset of the snapshot's L1 copy
	L1Size        uint32 // 8: entries in that L1
	// 12: id length u16, 14: name length u16
	DateSec     uint32 // 16
	DateNsec    uint32 // 20
	VMClockNsec uint64 // 24
	VMStateSize uint32 // 32
	// 36: extra data size u32, then extra data:
	VMStateSizeLarge uint64 // extra 0 (v3)
	DiskSize         uint64 // extra 8 (v3): virtual size at snapshot time; 0 = absent
	ICount           uint64 // extra 16: -1 = absent
	HasICount        bool
	ID, Name         string
	Extra            []byte // the whole extra data, preserved
	entryOffset      int64  // where the entry starts in the file
}

// parseSnapshots decodes n entries from table (read from tableOff).
func parseSnapshots(name string, table []byte, tableOff int64, n int) ([]snapshot, error) {
	be := binary.BigEndian
	var snaps []snapshot
	off := 0
	for i := range n {
		at := tableOff + int64(off)
		if off+snapshotFixedBytes > len(table) {
			return nil, formats.Corruptf(name, "snapshot table", at, "entry %d runs past the table", i)
		}
		e := table[off:]
		s := snapshot{L1TableOffset: be.Uint64(e[0:]), L1Size: be.Uint32(e[8:]),
			DateSec: be.Uint32(e[16:]), DateNsec: be.Uint32(e[20:]), VMClockNsec: be.Uint64(e[24:]),
			VMStateSize: be.Uint32(e[32:]), entryOffset: at}
		idLen, nameLen, extraLen := int(be.Uint16(e[12:])), int(be.Uint16(e[14:])), int(be.Uint32(e[36:]))
		if extraLen > maxSnapExtra {
			return nil, formats.Limitf(name, "snapshot table", at, "extra data of %d bytes exceeds %d", extraLen, maxSnapExtra)
		}
		total := snapshotFixedBytes + extraLen + idLen + nameLen
		if total > len(e) {
			return nil, formats.Corruptf(name, "snapshot table", at, "entry %d runs past the table", i)
		}
		extra := e[snapshotFixedBytes : snapshotFixedBytes+extraLen]
		s.Extra = append([]byte(nil), extra...)
		if len(extra) >= 8 {
			s.VMStateSizeLarge = be.Uint64(extra[0:])
		}
		if len(extra) >= 16 {
			s.DiskSize = be.Uint64(extra[8:])
		}
		if len(extra) >= 24 {
			s.ICount, s.HasICount = be.Uint64(extra[16:]), true
		}
		p := snapshotFixedBytes + extraLen
		s.ID = string(e[p : p+idLen])
		s.Name = string(e[p+idLen : p+idLen+nameLen])
		snaps = append(snaps, s)
		off += (total + 7) &^ 7
	}
	return snaps, nil
}

// find selects a snapshot as qemu-img convert -l does: "snapshot.id=I",
// "snapshot.name=N" (both may be given, comma separated), or a bare string
// matched first as an id, then as a name.
func findSnapshot(snaps []snapshot, spec string) (int, bool) {
	var id, nm string
	bare := true
	for _, part := range strings.Split(spec, ",") {
		switch {
		case strings.HasPrefix(part, "snapshot.id="):
			id, bare = strings.TrimPrefix(part, "snapshot.id="), false
		case strings.HasPrefix(part, "snapshot.name="):
			nm, bare = strings.TrimPrefix(part, "snapshot.name="), false
		}
	}
	if bare {
		for i, s := range snaps {
			if s.ID == spec {
				return i, true
			}
		}
		for i, s := range snaps {
			if s.Name == spec {
				return i, true
			}
		}
		return 0, false
	}
	for i, s := range snaps {
		if (id == "" || s.ID == id) && (nm == "" || s.Name == nm) {
			return i, true
		}
	}
	return 0, false
}

// info converts the entry for formats.Info.
func (s *snapshot) info() formats.Snapshot {
	state := uint64(s.VMStateSize)
	if s.VMStateSizeLarge > state {
		state = s.VMStateSizeLarge
	}
	ic := s.ICount
	if !s.HasICount || ic == ^uint64(0) {
		ic = 0
	}
	return formats.Snapshot{ID: s.ID, Name: s.Name, VMStateSize: state, DateSec: int64(s.DateSec),
		DateNsec: int64(s.DateNsec), VMClockNsec: s.VMClockNsec, ICount: ic}
}
