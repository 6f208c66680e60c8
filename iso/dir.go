package iso

import (
	"encoding/binary"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

type readerAt = io.ReaderAt

// Directory record layout (ECMA-119 §9.1).
const (
	drLength      = 0  // record length
	drExtAttr     = 1  // extended attribute record length (blocks)
	drExtent      = 2  // extent LBA, both-endian 32
	drDataLength  = 10 // data length, both-endian 32
	drDate        = 18 // 7-byte recording date
	drFlags       = 25 // file flags
	drUnitSize    = 26 // interleave unit size
	drGap         = 27 // interleave gap
	drVolSeq      = 28 // volume sequence number, both-endian 16
	drNameLen     = 32 // file identifier length
	drName        = 33 // file identifier
	drMinBytes    = 34 // smallest valid record (one-byte identifier)
	drFixedHeader = 33

	flagHidden     = 0x01
	flagDirectory  = 0x02
	flagAssociated = 0x04
	flagMultiExt   = 0x80
)

// record is one parsed directory record.
type record struct {
	extent   uint32 // LBA of the data
	length   uint32 // bytes
	extAttr  uint8  // blocks of extended attribute record before the data
	date     time.Time
	flags    byte
	ident    []byte // raw file identifier
	sysUse   []byte // system use area (Rock Ridge)
	interlvd bool
	offset   int64 // where the record is in the image
}

func (r *record) isDir() bool { return r.flags&flagDirectory != 0 }

// parseRecord decodes the record at the start of b (b is the rest of the
// block); ok is false at the zero padding that ends a block.
func parseRecord(name string, b []byte, off int64) (record, int, error) {
	n := int(b[drLength])
	if n == 0 {
		return record{}, 0, nil
	}
	if n < drMinBytes || n > len(b) {
		return record{}, 0, formats.Corruptf(name, "directory record", off, "length %d (room %d)", n, len(b))
	}
	idLen := int(b[drNameLen])
	if idLen == 0 || drName+idLen > n {
		return record{}, 0, formats.Corruptf(name, "directory record", off, "identifier length %d in a %d-byte record", idLen, n)
	}
	le := binary.LittleEndian
	r := record{
		extent:   le.Uint32(b[drExtent:]),
		length:   le.Uint32(b[drDataLength:]),
		extAttr:  b[drExtAttr],
		date:     recordDate(b[drDate : drDate+7]),
		flags:    b[drFlags],
		ident:    b[drName : drName+idLen],
		interlvd: b[drUnitSize] != 0 || b[drGap] != 0,
		offset:   off,
	}
	su := drName + idLen
	if idLen%2 == 0 {
		su++ // padding byte after an even-length identifier
	}
	if su < n {
		r.sysUse = b[su:n]
	}
	return r, n, nil
}

// recordDate decodes the 7-byte directory record date.
func recordDate(b []byte) time.Time {
	if b[0] == 0 && b[1] == 0 && b[2] == 0 {
		return time.Time{}
	}
	zone := time.FixedZone("", int(int8(b[6]))*15*60)
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, zone)
}

// isoName turns an ISO 9660 identifier into a file name: the version
// (";1") and a trailing dot of an extension-less name are dropped.
func isoName(id []byte) string {
	s := string(id)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if strings.HasSuffix(s, ".") && len(s) > 1 {
		s = s[:len(s)-1]
	}
	return s
}

// jolietName decodes a UCS-2 identifier and drops the version.
func jolietName(id []byte) string {
	s := ucs2String(id)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Entry is a file or directory in an ISO image.
type Entry struct {
	Name    string      // the name as Rock Ridge, Joliet or ISO 9660 gives it
	Path    string      // the absolute path in the image ("/dir/name")
	Size    int64       // bytes (0 for directories)
	Mode    fs.FileMode // type bits and, with Rock Ridge, permissions
	ModTime time.Time
	Link    string // symlink target (Rock Ridge SL)
	Hidden  bool
	extents []extent
	dirKey  uint32 // directory: the LBA of its extent
	multi   bool   // the last record read continues in the next one
}

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Mode.IsDir() }

// extent is a run of file data in the image.
type extent struct {
	off, length int64
}
