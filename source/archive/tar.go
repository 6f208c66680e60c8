package archive

import (
	"bytes"
	"fmt"
	"io"

	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/zero"
)

// blockBytes is tar's unit: headers and data are padded to it.
const blockBytes = 512

// The header fields of a tar block (POSIX ustar, with GNU's oldgnu
// additions), by offset:
//
//	  0 name[100]      NUL-terminated unless 100 bytes long
//	100 mode[8]        octal
//	108 uid[8], 116 gid[8]
//	124 size[12]       octal, or base-256 when the first byte has 0x80 set
//	136 mtime[12]
//	148 chksum[8]      sum of the 512 bytes, this field counted as spaces
//	156 typeflag
//	157 linkname[100]
//	257 magic[6]       "ustar\0" (POSIX) or "ustar " (GNU, version " \0")
//	263 version[2]
//	265 uname[32], 297 gname[32], 329 devmajor[8], 337 devminor[8]
//	345 prefix[155]    ustar: the name's leading directories
//	    oldgnu instead: 345 atime[12], 357 ctime[12], 369 offset[12],
//	    381 longnames[4], 385 unused, 386 sparse[4] of {offset[12],
//	    numbytes[12]}, 482 isextended, 483 realsize[12]
const (
	offName     = 0
	offSize     = 124
	offChksum   = 148
	offType     = 156
	offMagic    = 257
	offPrefix   = 345
	offSparse   = 386
	offExtended = 482
	offRealSize = 483
)

// The typeflags read.
const (
	typeReg       = '0'
	typeRegOld    = 0 // pre-POSIX regular file
	typeContig    = '7'
	typeDir       = '5'
	typeGNUSparse = 'S'
	typeGNULong   = 'L' // the next member's name
	typeGNULink   = 'K' // the next member's link name
	typePAX       = 'x' // PAX records for the next member
	typePAXGlob   = 'g' // PAX records for all that follow
	typeGNUVol    = 'V'
)

// Limits bound what an archive may make the index do; the zero value
// means the defaults.
type Limits struct {
	// MaxMembers bounds the number of members (default 100000).
	MaxMembers int
	// MaxFragments bounds the fragments of one sparse member's map
	// (default 1<<20, 16 bytes each).
	MaxFragments int
	// MaxMetaBytes bounds one PAX record block, GNU long name or PAX 1.0
	// sparse map text (default 1 MiB).
	MaxMetaBytes int64
}

func (l Limits) members() int {
	if l.MaxMembers > 0 {
		return l.MaxMembers
	}
	return 100000
}

func (l Limits) fragments() int {
	if l.MaxFragments > 0 {
		return l.MaxFragments
	}
	return 1 << 20
}

func (l Limits) metaBytes() int64 {
	if l.MaxMetaBytes > 0 {
		return l.MaxMetaBytes
	}
	return 1 << 20
}

// Member is one file of a tar archive, located in place.
type Member struct {
	Name       string // the member's path, "./" and trailing "/" removed
	Type       byte   // typeflag ('0' for regular files, 'S' for GNU sparse)
	HeaderOff  int64  // offset of its (first) header block
	DataOff    int64  // offset of its stored data
	StoredSize int64  // bytes stored at DataOff (the fragments, for a sparse member)
	Size       int64  // the file's logical size
	// Fragments, for a sparse member, are the data ranges of the file, in
	// increasing order, stored one after the other from DataOff; what lies
	// between them reads as zeros. Nil for a member stored whole.
	Fragments []Fragment
	Sparse    string // how the map was recorded: "", "oldgnu", "pax-0.0", "pax-0.1", "pax-1.0"
}

// Regular reports whether m is a file with content (not a directory, link
// or device).
func (m *Member) Regular() bool {
	return m.Type == typeReg || m.Type == typeRegOld || m.Type == typeContig || m.Type == typeGNUSparse
}

// Fragment is a data range of a sparse member, in the file's offsets.
type Fragment struct{ Offset, Length int64 }

// IsTar reports whether block, the first 512 bytes of a file, is a tar
// header: a ustar or GNU magic and a correct checksum.
func IsTar(block []byte) bool {
	if len(block) < blockBytes {
		return false
	}
	magic := block[offMagic : offMagic+6]
	if !bytes.Equal(magic, []byte("ustar\x00")) && !bytes.Equal(magic, []byte("ustar ")) {
		return false
	}
	return checksumOK(block[:blockBytes])
}

// checksumOK checks the header checksum, unsigned as POSIX says or signed
// as some old tars wrote it.
func checksumOK(h []byte) bool {
	want, err := parseNumber(h[offChksum : offChksum+8])
	if err != nil {
		return false
	}
	var unsigned, signed int64
	for i, c := range h {
		if i >= offChksum && i < offChksum+8 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return want == unsigned || want == signed
}

// parseNumber reads a numeric header field: octal digits (leading spaces,
// NUL or space terminated) or, when the first byte has 0x80 set, GNU's
// base-256. Negative numbers (first byte 0xFF) are refused.
func parseNumber(field []byte) (int64, error) {
	if len(field) > 0 && field[0]&0x80 != 0 {
		if field[0]&0x40 != 0 {
			return 0, fmt.Errorf("negative base-256 number")
		}
		var n uint64
		for i, c := range field {
			if i == 0 {
				c &= 0x7F
			}
			if n > (1<<63-1)>>8 {
				return 0, fmt.Errorf("base-256 number over 63 bits")
			}
			n = n<<8 | uint64(c)
		}
		return int64(n), nil
	}
	s := strings.TrimLeft(string(field), " ")
	if i := strings.IndexAny(s, " \x00"); i >= 0 {
		if strings.Trim(s[i:], " \x00") != "" {
			return 0, fmt.Errorf("octal field %q has text after its terminator", field)
		}
		s = s[:i]
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return 0, fmt.Errorf("octal field %q: %v", field, err)
	}
	return n, nil
}

// cString is a NUL-terminated header string.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// CleanName is how member names are compared: "./" prefixes and trailing
// slashes removed. It never makes a name that leaves the archive: the
// result is only ever compared, never opened.
func CleanName(name string) string {
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	return strings.TrimRight(name, "/")
}

// indexer walks the headers of an archive in r.
type indexer struct {
	r       io.ReaderAt
	size    int64
	file    string
	lim     Limits
	global  map[string]string // PAX global records
	pending map[string]string // PAX records for the next member
	long    string            // GNU long name for the next member
	hasLong bool
}

// Index lists the members of the tar archive r of size bytes, reading
// only their headers (and sparse maps). file names the archive in errors.
// The archive ends at two zero blocks, or at its end.
func Index(r io.ReaderAt, size int64, file string, lim Limits) ([]Member, error) {
	ix := &indexer{r: r, size: size, file: file, lim: lim}
	var members []Member
	off := int64(0)
	block := make([]byte, blockBytes)
	for off+blockBytes <= size {
		if _, err := r.ReadAt(block, off); err != nil {
			return nil, fmt.Errorf("%s: tar header at offset %d: %w", file, off, err)
		}
		if zero.Is(block) {
			break
		}
		m, next, err := ix.member(block, off)
		if err != nil {
			return nil, err
		}
		if m != nil {
			if len(members) >= lim.members() {
				return nil, formats.Limitf(file, "tar header", off, "more than %d members", lim.members())
			}
			members = append(members, *m)
		}
		off = next
	}
	if off+blockBytes > size && off < size {
		return nil, formats.Corruptf(file, "tar header", off, "truncated: %d bytes where a 512-byte header belongs", size-off)
	}
	if ix.hasLong || ix.pending != nil {
		return nil, formats.Corruptf(file, "tar header", off, "a long name or PAX header is not followed by its member")
	}
	return members, nil
}

// member reads the header at off; it returns the member it completes (nil
// for a metadata header: PAX, GNU long name) and the next header's offset.
func (ix *indexer) member(h []byte, off int64) (*Member, int64, error) {
	if !checksumOK(h) {
		return nil, 0, formats.Corruptf(ix.file, "tar header", off, "bad checksum (not a tar header)")
	}
	stored, err := parseNumber(h[offSize : offSize+12])
	if err != nil {
		return nil, 0, formats.Corruptf(ix.file, "tar header size", off+offSize, "%v", err)
	}
	dataOff := off + blockBytes
	typ := h[offType]
	switch typ {
	case typePAX, typePAXGlob, typeGNULong, typeGNULink:
		text, err := ix.meta(dataOff, stored, off)
		if err != nil {
			return nil, 0, err
		}
		next := dataOff + padded(stored)
		switch typ {
		case typePAX:
			if ix.pending, err = parsePAX(text, ix.file, dataOff); err != nil {
				return nil, 0, err
			}
		case typePAXGlob:
			recs, err := parsePAX(text, ix.file, dataOff)
			if err != nil {
				return nil, 0, err
			}
			if ix.global == nil {
				ix.global = map[string]string{}
			}
			for k, v := range recs {
				ix.global[k] = v
			}
		case typeGNULong:
			ix.long, ix.hasLong = cString([]byte(text)), true
		}
		return nil, next, nil
	}
	m := &Member{Type: typ, HeaderOff: off, StoredSize: stored, Size: stored, DataOff: dataOff}
	m.Name = cString(h[offName : offName+100])
	if bytes.Equal(h[offMagic:offMagic+6], []byte("ustar\x00")) {
		if p := cString(h[offPrefix : offPrefix+155]); p != "" {
			m.Name = p + "/" + m.Name
		}
	}
	if ix.hasLong {
		m.Name, ix.long, ix.hasLong = ix.long, "", false
	}
	recs := ix.records()
	ix.pending = nil
	if p, ok := recs["path"]; ok {
		m.Name = p
	}
	if s, ok := recs["size"]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, 0, formats.Corruptf(ix.file, "PAX size record", off, "%q is not a size", s)
		}
		m.StoredSize, m.Size = n, n
	}
	// Directories, links, devices store nothing, whatever size says (GNU
	// tar's dumpdir 'D' aside, which stores its listing).
	if !m.Regular() && typ != 'D' && typ != typeGNUVol {
		m.StoredSize, m.Size = 0, 0
	}
	if m.StoredSize > ix.size-m.DataOff {
		return nil, 0, formats.Corruptf(ix.file, "tar header size", off+offSize,
			"member %q claims %d bytes at offset %d, past the archive's end (%d bytes)", m.Name, m.StoredSize, m.DataOff, ix.size)
	}
	// The end of what the header claims, before a sparse map moves DataOff.
	next := m.DataOff + padded(m.StoredSize)
	if err := ix.sparse(m, h, recs); err != nil {
		return nil, 0, err
	}
	if m.StoredSize > ix.size-m.DataOff {
		return nil, 0, formats.Corruptf(ix.file, "tar sparse member", off,
			"member %q: %d bytes of data at offset %d, past the archive's end (%d bytes)", m.Name, m.StoredSize, m.DataOff, ix.size)
	}
	next = max(next, m.DataOff+padded(m.StoredSize))
	if sn, ok := recs["GNU.sparse.name"]; ok && m.Sparse != "" {
		m.Name = sn
	}
	m.Name = CleanName(m.Name)
	return m, next, nil
}

// records merges the global PAX records with the pending ones.
func (ix *indexer) records() map[string]string {
	if ix.global == nil {
		if ix.pending == nil {
			return map[string]string{}
		}
		return ix.pending
	}
	recs := map[string]string{}
	for k, v := range ix.global {
		recs[k] = v
	}
	for k, v := range ix.pending {
		recs[k] = v
	}
	return recs
}

// meta reads the data of a metadata member (PAX records, long name).
func (ix *indexer) meta(dataOff, n, hdrOff int64) (string, error) {
	if n > ix.lim.metaBytes() {
		return "", formats.Limitf(ix.file, "tar metadata member", hdrOff, "%d bytes of PAX records or long name (limit %d)", n, ix.lim.metaBytes())
	}
	if dataOff+n > ix.size {
		return "", formats.Corruptf(ix.file, "tar metadata member", hdrOff, "%d bytes past the archive's end", n)
	}
	buf := make([]byte, n)
	if _, err := ix.r.ReadAt(buf, dataOff); err != nil {
		return "", fmt.Errorf("%s: tar metadata at offset %d: %w", ix.file, dataOff, err)
	}
	return string(buf), nil
}

// parsePAX parses PAX extended header records: "LEN KEY=VALUE\n", LEN
// counting the whole record.
func parsePAX(text, file string, off int64) (map[string]string, error) {
	recs := map[string]string{}
	var sparseMap []string // GNU.sparse.offset/numbytes pairs of format 0.0, in order
	pos := int64(0)
	for text != "" {
		sp := strings.IndexByte(text, ' ')
		if sp <= 0 || sp > 20 {
			return nil, formats.Corruptf(file, "PAX record", off+pos, "no length")
		}
		n, err := strconv.Atoi(text[:sp])
		if err != nil || n <= sp+1 || n > len(text) {
			return nil, formats.Corruptf(file, "PAX record", off+pos, "bad length %q", text[:sp])
		}
		rec := text[sp+1 : n]
		if !strings.HasSuffix(rec, "\n") {
			return nil, formats.Corruptf(file, "PAX record", off+pos, "not ended by a newline")
		}
		k, v, ok := strings.Cut(rec[:len(rec)-1], "=")
		if !ok || k == "" {
			return nil, formats.Corruptf(file, "PAX record", off+pos, "no key=value")
		}
		if k == "GNU.sparse.offset" || k == "GNU.sparse.numbytes" {
			sparseMap = append(sparseMap, v)
		} else {
			recs[k] = v
		}
		pos += int64(n)
		text = text[n:]
	}
	if sparseMap != nil {
		recs[pax00Map] = strings.Join(sparseMap, ",")
	}
	return recs, nil
}

// pax00Map is where parsePAX gathers format 0.0's repeated records (a key
// no archive can hold: it has a NUL).
const pax00Map = "\x00GNU.sparse.offset,numbytes"

// padded rounds n up to whole blocks.
func padded(n int64) int64 { return (n + blockBytes - 1) / blockBytes * blockBytes }
