package iso

import (
	"encoding/binary"
	"io/fs"
	"slices"
	"strings"
	"time"
)

func blocksFor(n int64) int64 { return (n + blockBytes - 1) / blockBytes }

// layout assigns every structure its blocks: descriptors, path tables,
// the Rock Ridge continuation area, directories, then file data.
func (b *builder) layout() {
	next := int64(firstVDOffset/blockBytes) + 1 + int64(b.trees) // PVD, SVD, terminator
	if b.boot != nil {
		next++ // the boot record follows the PVD
	}
	for t := 0; t < b.trees; t++ {
		for m := 0; m < 2; m++ {
			b.ptLBA[t][m] = uint32(next)
			next += blocksFor(b.ptBytes[t])
		}
	}
	if b.boot != nil {
		b.boot.catalog = uint32(next)
		next++
	}
	b.ceLBA = uint32(next)
	if b.opts.RockRidge {
		b.rockRidge()
		next += blocksFor(b.ceBytes)
	}
	for t := 0; t < b.trees; t++ {
		for _, d := range b.order[t] {
			d.dirBytes[t] = int64(len(b.directory(d, t)))
		}
		for _, d := range b.order[t] {
			d.lba[t] = uint32(next)
			next += blocksFor(d.dirBytes[t])
		}
	}
	for _, f := range b.files {
		f.lba[0] = uint32(next)
		next += blocksFor(f.size)
	}
	b.blocks = uint32(next)
	b.placeEmpty(b.root)
}

// placeEmpty points empty files and symlinks at the end of the volume.
func (b *builder) placeEmpty(dir *node) {
	for _, k := range dir.kids {
		switch {
		case k.isDir():
			b.placeEmpty(k)
		case k.size == 0:
			k.lba[0] = b.blocks
		}
	}
}

// rockRidge builds each record's System Use entries and places overflow
// in the continuation area (entries never straddle a block there).
func (b *builder) rockRidge() {
	var ce int64
	place := func(data []byte) int64 {
		if ce%blockBytes+int64(len(data)) > blockBytes {
			ce = (ce/blockBytes + 1) * blockBytes
		}
		at := ce
		ce += int64(len(data))
		return int64(b.ceLBA)*blockBytes + at
	}
	for _, d := range b.dirs {
		d.dotSU = append(suspPX(d.mode, 2), suspTF(d.mtime)...)
		parent := d.parent
		if parent == nil {
			parent = d
		}
		d.dotdot = append(suspPX(parent.mode, 2), suspTF(parent.mtime)...)
		if d == b.root {
			d.dotCE = suspER()
			d.dotCEOff = place(d.dotCE)
			d.dotSU = slices.Concat(suspSP(), d.dotSU, suspCE(d.dotCEOff, len(d.dotCE)))
		}
		for _, k := range d.kids {
			fixed := append(suspPX(k.mode, nlink(k)), suspTF(k.mtime)...)
			rest := suspNM(k.name)
			if k.mode&fs.ModeSymlink != 0 {
				rest = append(rest, suspSL(k.link)...)
			}
			room := 254 - (drFixedHeader + len(k.isoID) + 1 - len(k.isoID)%2)
			if len(fixed)+len(rest) <= room {
				k.su = append(fixed, rest...)
				continue
			}
			k.ce = rest
			k.ceOff = place(rest)
			k.su = append(fixed, suspCE(k.ceOff, len(rest))...)
		}
	}
	b.ceBytes = ce
}

func nlink(n *node) uint32 {
	if n.isDir() {
		return 2
	}
	return 1
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// posixBits is the PX mode of a file mode.
func posixBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	switch {
	case m.IsDir():
		bits |= sIFDIR
	case m&fs.ModeSymlink != 0:
		bits |= sIFLNK
	default:
		bits |= sIFREG
	}
	return bits
}

// suspPX is a RRIP 1.10 PX entry (36 bytes): mode, links, uid 0, gid 0.
func suspPX(m fs.FileMode, links uint32) []byte {
	e := make([]byte, 36)
	copy(e, "PX")
	e[2], e[3] = 36, 1
	both32(e[4:], posixBits(m))
	both32(e[12:], links)
	return e
}

// suspTF records modification, access and attribute-change times.
func suspTF(t time.Time) []byte {
	e := make([]byte, 5+3*7)
	copy(e, "TF")
	e[2], e[3], e[4] = byte(len(e)), 1, 0x0E
	for i := 0; i < 3; i++ {
		putRecordDate(e[5+7*i:], t)
	}
	return e
}

// suspNM is the name, in entries of at most 250 bytes.
func suspNM(name string) []byte {
	var out []byte
	for {
		part := name[:min(len(name), 250)]
		name = name[len(part):]
		flags := byte(0)
		if name != "" {
			flags = 1 // CONTINUE
		}
		out = append(out, 'N', 'M', byte(5+len(part)), 1, flags)
		out = append(out, part...)
		if name == "" {
			return out
		}
	}
}

// suspSL is a symlink target as component records, in entries of at most
// 255 bytes.
func suspSL(target string) []byte {
	var comps [][]byte
	if len(target) > 0 && target[0] == '/' {
		comps = append(comps, []byte{0x08, 0})
	}
	for _, part := range strings.FieldsFunc(target, func(r rune) bool { return r == '/' }) {
		switch part {
		case ".":
			comps = append(comps, []byte{0x02, 0})
		case "..":
			comps = append(comps, []byte{0x04, 0})
		default:
			for len(part) > 0 { // components over 248 bytes continue
				chunk := part[:min(len(part), 248)]
				part = part[len(chunk):]
				flags := byte(0)
				if part != "" {
					flags = 0x01
				}
				comps = append(comps, append([]byte{flags, byte(len(chunk))}, chunk...))
			}
		}
	}
	var out []byte
	entry := []byte{}
	flush := func(more bool) {
		flags := byte(0)
		if more {
			flags = 1
		}
		out = append(out, 'S', 'L', byte(5+len(entry)), 1, flags)
		out = append(out, entry...)
		entry = entry[:0]
	}
	for _, c := range comps {
		if 5+len(entry)+len(c) > 255 {
			flush(true)
		}
		entry = append(entry, c...)
	}
	flush(false)
	return out
}

func suspSP() []byte { return []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0} }

// suspCE points at a continuation area at byte offset off.
func suspCE(off int64, length int) []byte {
	e := make([]byte, 28)
	copy(e, "CE")
	e[2], e[3] = 28, 1
	both32(e[4:], uint32(off/blockBytes))
	both32(e[12:], uint32(off%blockBytes))
	both32(e[20:], uint32(length))
	return e
}

const (
	erID  = "RRIP_1991A"
	erDes = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
	erSrc = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."
)

// suspER names the Rock Ridge extension.
func suspER() []byte {
	e := []byte{'E', 'R', byte(8 + len(erID) + len(erDes) + len(erSrc)), 1, byte(len(erID)), byte(len(erDes)), byte(len(erSrc)), 1}
	return append(append(append(e, erID...), erDes...), erSrc...)
}

// putRecordDate writes a 7-byte directory record date (UTC).
func putRecordDate(b []byte, t time.Time) {
	t = t.UTC()
	y := t.Year() - 1900
	if y < 0 {
		y = 0
	}
	if y > 255 {
		y = 255
	}
	b[0], b[1], b[2] = byte(y), byte(t.Month()), byte(t.Day())
	b[3], b[4], b[5], b[6] = byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0
}

// vdDate is a 17-byte volume descriptor date (UTC); zero time is "unset".
func vdDate(t time.Time) []byte {
	if t.IsZero() {
		return append([]byte("0000000000000000"), 0)
	}
	t = t.UTC()
	return append([]byte(t.Format("20060102150405")+"00"), 0)
}

// dirRecord renders one directory record.
func dirRecord(id []byte, lba uint32, length uint32, t time.Time, flags byte, su []byte) []byte {
	n := drFixedHeader + len(id) + 1 - len(id)%2 + len(su)
	n += n % 2 // records have an even length (ECMA-119 9.1.1)
	r := make([]byte, n)
	r[drLength] = byte(n)
	both32(r[drExtent:], lba)
	both32(r[drDataLength:], length)
	putRecordDate(r[drDate:], t)
	r[drFlags] = flags
	both16(r[drVolSeq:], 1)
	r[drNameLen] = byte(len(id))
	copy(r[drName:], id)
	copy(r[drFixedHeader+len(id)+1-len(id)%2:], su)
	return r
}

// directory renders directory d of tree t: ".", "..", then the entries,
// records never straddling a block, the last block zero-padded.
func (b *builder) directory(d *node, t int) []byte {
	var out []byte
	add := func(r []byte) {
		if len(out)%blockBytes+len(r) > blockBytes {
			out = append(out, make([]byte, blockBytes-len(out)%blockBytes)...)
		}
		out = append(out, r...)
	}
	rr := b.opts.RockRidge && t == 0
	parent := d.parent
	if parent == nil {
		parent = d
	}
	var dotSU, dotdotSU []byte
	if rr {
		dotSU, dotdotSU = d.dotSU, d.dotdot
	}
	add(dirRecord([]byte{0}, d.lba[t], uint32(d.dirBytes[t]), d.mtime, flagDirectory, dotSU))
	add(dirRecord([]byte{1}, parent.lba[t], uint32(parent.dirBytes[t]), parent.mtime, flagDirectory, dotdotSU))
	kids := d.kids
	if t == 1 {
		kids = slices.Clone(kids)
		slices.SortFunc(kids, func(x, y *node) int { return slices.Compare(x.jolietID, y.jolietID) })
	}
	for _, k := range kids {
		var su []byte
		if rr {
			su = k.su
		}
		if k.isDir() {
			add(dirRecord(k.id(t), k.lba[t], uint32(k.dirBytes[t]), k.mtime, flagDirectory, su))
			continue
		}
		// Files over 4 GiB - 2 KiB take several records (multi-extent).
		lba, left := k.lba[0], k.size
		for {
			part := min(left, b.extentBytes)
			flags := byte(0)
			if left > part {
				flags = flagMultiExt
			}
			add(dirRecord(k.id(t), lba, uint32(part), k.mtime, flags, su))
			left -= part
			lba += uint32(part / blockBytes)
			if left == 0 {
				break
			}
		}
	}
	if rem := len(out) % blockBytes; rem != 0 {
		out = append(out, make([]byte, blockBytes-rem)...)
	}
	return out
}
