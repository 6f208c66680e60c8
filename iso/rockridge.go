package iso

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// SUSP / Rock Ridge limits: continuation areas may chain, but only so far.
const (
	maxCEHops     = 32
	maxSUBytes    = 64 << 10
	maxNameBytes  = 4096
	maxLinkTarget = 4096
)

// POSIX file type bits (RRIP PX).
const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
)

// rrInfo is what a record's Rock Ridge entries say.
type rrInfo struct {
	name      string
	hasName   bool
	mode      uint32
	hasMode   bool
	mtime     time.Time
	link      string
	isLink    bool
	relocated bool  // RE: a relocated directory, listed where CL points instead
	childLink int64 // CL: LBA of the relocated directory, -1 if none
}

// parseRockRidge decodes the System Use entries of a record (after skip
// bytes), following CE continuation areas within bounds.
func (f *FS) parseRockRidge(su []byte, recOff int64) (rrInfo, error) {
	info := rrInfo{childLink: -1}
	if len(su) < f.suspSkip {
		return info, nil
	}
	su = su[f.suspSkip:]
	var nameParts, linkParts strings.Builder
	linkState := linkNew
	total := 0
	for hop := 0; ; hop++ {
		next, err := f.walkSUSP(su, recOff, &info, &nameParts, &linkParts, &linkState)
		if err != nil {
			return info, err
		}
		if next.length == 0 {
			break
		}
		if hop >= maxCEHops {
			return info, formats.Limitf(f.name, "Rock Ridge continuation", recOff, "more than %d continuation areas", maxCEHops)
		}
		total += int(next.length)
		if total > maxSUBytes {
			return info, formats.Limitf(f.name, "Rock Ridge continuation", recOff, "more than %d bytes of system use entries", maxSUBytes)
		}
		if next.off+next.length > f.size {
			return info, formats.Corruptf(f.name, "Rock Ridge continuation", recOff, "area %d+%d is past the end of the image", next.off, next.length)
		}
		su = make([]byte, next.length)
		if err := fileio.ReadFull(f.r, su, next.off); err != nil {
			return info, err
		}
		recOff = next.off
	}
	if info.hasName {
		info.name = nameParts.String()
	}
	if info.isLink {
		info.link = linkParts.String()
	}
	return info, nil
}

// SL component assembly state.
const (
	linkNew  = iota // nothing yet
	linkMid         // inside a component continued from the previous record
	linkNext        // a component ended: the next one needs a slash
)

// walkSUSP decodes one area of entries and returns the continuation it names.
func (f *FS) walkSUSP(su []byte, off int64, info *rrInfo, name, link *strings.Builder, linkState *int) (extent, error) {
	var ce extent
	for len(su) >= 4 {
		sig, n := string(su[0:2]), int(su[2])
		if n < 4 || n > len(su) {
			break // padding or a broken entry: stop, as the kernel does
		}
		data := su[4:n]
		switch sig {
		case "ST":
			return ce, nil
		case "CE":
			if len(data) >= 24 {
				le := binary.LittleEndian
				ce = extent{
					off:    int64(le.Uint32(data[0:]))*blockBytes + int64(le.Uint32(data[8:])),
					length: int64(le.Uint32(data[16:])),
				}
			}
		case "NM":
			if len(data) >= 1 && data[0]&0x06 == 0 {
				info.hasName = true
				if name.Len()+len(data)-1 > maxNameBytes {
					return ce, formats.Limitf(f.name, "Rock Ridge NM", off, "name longer than %d bytes", maxNameBytes)
				}
				name.Write(data[1:])
			}
		case "PX":
			if len(data) >= 8 {
				info.mode, info.hasMode = binary.LittleEndian.Uint32(data[0:]), true
			}
		case "TF":
			if t, ok := tfModify(data); ok {
				info.mtime = t
			}
		case "SL":
			info.isLink = true
			if err := appendSL(data, link, linkState); err != nil || link.Len() > maxLinkTarget {
				return ce, formats.Corruptf(f.name, "Rock Ridge SL", off, "bad symbolic link entry")
			}
		case "RE":
			info.relocated = true
		case "CL":
			if len(data) >= 8 {
				info.childLink = int64(binary.LittleEndian.Uint32(data[0:]))
			}
		}
		su = su[n:]
		off += int64(n)
	}
	return ce, nil
}

// tfModify returns the modification time of a TF entry.
func tfModify(data []byte) (time.Time, bool) {
	if len(data) < 1 {
		return time.Time{}, false
	}
	flags := data[0]
	size := 7
	if flags&0x80 != 0 {
		size = 17
	}
	pos := 1
	if flags&0x01 != 0 { // creation comes first
		pos += size
	}
	if flags&0x02 == 0 || pos+size > len(data) {
		return time.Time{}, false
	}
	if size == 17 {
		return parseVDDate(string(data[pos : pos+17]))
	}
	t := recordDate(data[pos : pos+7])
	return t, !t.IsZero()
}

// appendSL adds the components of one SL entry to the link target.
func appendSL(data []byte, link *strings.Builder, state *int) error {
	if len(data) < 1 {
		return errBadSL
	}
	comps := data[1:]
	for len(comps) > 0 {
		if len(comps) < 2 || 2+int(comps[1]) > len(comps) {
			return errBadSL
		}
		flags, n := comps[0], int(comps[1])
		text := comps[2 : 2+n]
		if *state == linkNext {
			link.WriteByte('/')
		}
		switch {
		case flags&0x02 != 0:
			link.WriteString(".")
		case flags&0x04 != 0:
			link.WriteString("..")
		case flags&0x08 != 0:
			link.WriteString("/")
		default:
			link.Write(text)
		}
		switch {
		case flags&0x01 != 0:
			*state = linkMid
		case flags&0x08 != 0:
			*state = linkNew // "/" already written
		default:
			*state = linkNext
		}
		comps = comps[2+n:]
	}
	return nil
}

// errBadSL reports a malformed SL component list.
var errBadSL = errors.New("bad SL entry")

// posixMode converts a PX mode to an fs.FileMode.
func posixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & sIFMT {
	case sIFDIR:
		mode |= fs.ModeDir
	case sIFLNK:
		mode |= fs.ModeSymlink
	case sIFREG:
	default:
		mode |= fs.ModeIrregular
	}
	return mode
}
