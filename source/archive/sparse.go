package archive

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// GNU sparse files store only their data ranges; a map of (offset, length)
// pairs in the file's offsets says where each stored range goes, and the
// rest reads as zeros. Four encodings exist:
//
//	oldgnu   typeflag 'S'; up to 4 pairs in the header (offset 386, 12+12
//	         octal bytes each), isextended (482) announcing extension
//	         blocks of 21 pairs and their own isextended (504); realsize
//	         (483) is the file's size. The data follows the last block.
//	pax 0.0  records GNU.sparse.size, GNU.sparse.numblocks, then
//	         GNU.sparse.offset and GNU.sparse.numbytes repeated, in order
//	pax 0.1  GNU.sparse.size, GNU.sparse.numblocks, GNU.sparse.map =
//	         "off,len,off,len,..."
//	pax 1.0  GNU.sparse.major=1, minor=0, realsize and name; the member's
//	         data starts with the map as decimal lines (the count, then
//	         offset and length lines), padded to a 512-byte block.

// extPairs is the number of pairs in an oldgnu extension block; the
// header itself holds hdrPairs.
const (
	extPairs = 21
	hdrPairs = 4
	pairSize = 24
)

// sparse reads the sparse map of m, if it has one, from the oldgnu header
// h or the PAX records recs, and moves m.DataOff past any map blocks.
func (ix *indexer) sparse(m *Member, h []byte, recs map[string]string) error {
	switch {
	case m.Type == typeGNUSparse:
		return ix.oldGNU(m, h)
	case recs["GNU.sparse.major"] == "1" && recs["GNU.sparse.minor"] == "0":
		return ix.pax10(m, recs)
	case recs["GNU.sparse.map"] != "" || recs[pax00Map] != "" || recs["GNU.sparse.numblocks"] != "":
		return ix.pax0x(m, recs)
	}
	return nil
}

// oldGNU reads an oldgnu sparse header and its extension blocks.
func (ix *indexer) oldGNU(m *Member, h []byte) error {
	real, err := parseNumber(h[offRealSize : offRealSize+12])
	if err != nil {
		return formats.Corruptf(ix.file, "oldgnu realsize", m.HeaderOff+offRealSize, "%v", err)
	}
	var pairs []Fragment
	pairs, err = ix.pairs(pairs, h[offSparse:offSparse+hdrPairs*pairSize], m.HeaderOff+offSparse)
	if err != nil {
		return err
	}
	extended := h[offExtended] != 0
	block := make([]byte, blockBytes)
	for extended {
		if m.DataOff+blockBytes > ix.size {
			return formats.Corruptf(ix.file, "oldgnu sparse extension", m.DataOff, "past the archive's end")
		}
		if _, err := ix.r.ReadAt(block, m.DataOff); err != nil {
			return fmt.Errorf("%s: oldgnu sparse extension at offset %d: %w", ix.file, m.DataOff, err)
		}
		if pairs, err = ix.pairs(pairs, block[:extPairs*pairSize], m.DataOff); err != nil {
			return err
		}
		extended = block[extPairs*pairSize] != 0
		m.DataOff += blockBytes
	}
	m.Sparse = "oldgnu"
	return ix.setFragments(m, pairs, real, m.StoredSize, m.HeaderOff)
}

// pairs appends the (offset, numbytes) pairs of raw, up to the first empty
// one.
func (ix *indexer) pairs(to []Fragment, raw []byte, off int64) ([]Fragment, error) {
	for i := 0; i+pairSize <= len(raw); i += pairSize {
		if raw[i] == 0 {
			break
		}
		o, err := parseNumber(raw[i : i+12])
		if err != nil {
			return nil, formats.Corruptf(ix.file, "oldgnu sparse map", off+int64(i), "offset: %v", err)
		}
		n, err := parseNumber(raw[i+12 : i+24])
		if err != nil {
			return nil, formats.Corruptf(ix.file, "oldgnu sparse map", off+int64(i)+12, "length: %v", err)
		}
		if len(to) >= ix.lim.fragments() {
			return nil, formats.Limitf(ix.file, "oldgnu sparse map", off+int64(i), "more than %d fragments", ix.lim.fragments())
		}
		to = append(to, Fragment{Offset: o, Length: n})
	}
	return to, nil
}

// pax0x reads the maps of PAX formats 0.0 and 0.1.
func (ix *indexer) pax0x(m *Member, recs map[string]string) error {
	text, format := recs["GNU.sparse.map"], "pax-0.1"
	if text == "" {
		text, format = recs[pax00Map], "pax-0.0"
	}
	real, err := ix.decimal(recs["GNU.sparse.size"], "GNU.sparse.size", m.HeaderOff)
	if err != nil {
		return err
	}
	var nums []string
	if text != "" {
		nums = strings.Split(text, ",")
	}
	if len(nums)%2 != 0 {
		return formats.Corruptf(ix.file, "PAX sparse map", m.HeaderOff, "%d numbers, not pairs", len(nums))
	}
	if len(nums)/2 > ix.lim.fragments() {
		return formats.Limitf(ix.file, "PAX sparse map", m.HeaderOff, "%d fragments (limit %d)", len(nums)/2, ix.lim.fragments())
	}
	if nb, ok := recs["GNU.sparse.numblocks"]; ok && nb != strconv.Itoa(len(nums)/2) {
		return formats.Corruptf(ix.file, "PAX sparse map", m.HeaderOff, "GNU.sparse.numblocks=%q but %d pairs", nb, len(nums)/2)
	}
	pairs := make([]Fragment, 0, len(nums)/2)
	for i := 0; i < len(nums); i += 2 {
		o, err := ix.decimal(nums[i], "PAX sparse map offset", m.HeaderOff)
		if err != nil {
			return err
		}
		n, err := ix.decimal(nums[i+1], "PAX sparse map length", m.HeaderOff)
		if err != nil {
			return err
		}
		pairs = append(pairs, Fragment{Offset: o, Length: n})
	}
	m.Sparse = format
	return ix.setFragments(m, pairs, real, m.StoredSize, m.HeaderOff)
}

// pax10 reads the map that starts the data of a PAX 1.0 sparse member.
func (ix *indexer) pax10(m *Member, recs map[string]string) error {
	real, err := ix.decimal(recs["GNU.sparse.realsize"], "GNU.sparse.realsize", m.HeaderOff)
	if err != nil {
		return err
	}
	lines := &lineReader{ix: ix, off: m.DataOff, end: m.DataOff + m.StoredSize}
	count, err := lines.number()
	if err != nil {
		return err
	}
	if count > int64(ix.lim.fragments()) {
		return formats.Limitf(ix.file, "PAX 1.0 sparse map", m.DataOff, "%d fragments (limit %d)", count, ix.lim.fragments())
	}
	pairs := make([]Fragment, 0, min(count, 1024))
	for range count {
		o, err := lines.number()
		if err != nil {
			return err
		}
		n, err := lines.number()
		if err != nil {
			return err
		}
		pairs = append(pairs, Fragment{Offset: o, Length: n})
	}
	mapBytes := padded(lines.off - m.DataOff)
	if mapBytes > m.StoredSize {
		return formats.Corruptf(ix.file, "PAX 1.0 sparse map", m.DataOff, "the map (%d bytes) is larger than the member (%d)", mapBytes, m.StoredSize)
	}
	m.DataOff += mapBytes
	m.StoredSize -= mapBytes
	m.Sparse = "pax-1.0"
	return ix.setFragments(m, pairs, real, m.StoredSize, m.HeaderOff)
}

// lineReader reads the decimal lines of a PAX 1.0 map.
type lineReader struct {
	ix       *indexer
	off, end int64
	buf      []byte
	bufOff   int64
}

// number reads one "digits\n" line.
func (l *lineReader) number() (int64, error) {
	start := l.off
	var digits []byte
	for {
		if l.off >= l.end {
			return 0, formats.Corruptf(l.ix.file, "PAX 1.0 sparse map", start, "ends inside a number")
		}
		if l.off-start > 20 {
			return 0, formats.Corruptf(l.ix.file, "PAX 1.0 sparse map", start, "a line longer than a number")
		}
		c, err := l.byteAt(l.off)
		if err != nil {
			return 0, err
		}
		l.off++
		if c == '\n' {
			break
		}
		digits = append(digits, c)
	}
	return l.ix.decimal(string(digits), "PAX 1.0 sparse map", start)
}

func (l *lineReader) byteAt(off int64) (byte, error) {
	if off < l.bufOff || off >= l.bufOff+int64(len(l.buf)) {
		n := min(int64(blockBytes), l.end-off)
		l.buf = make([]byte, n)
		if _, err := l.ix.r.ReadAt(l.buf, off); err != nil {
			return 0, fmt.Errorf("%s: PAX 1.0 sparse map at offset %d: %w", l.ix.file, off, err)
		}
		l.bufOff = off
	}
	return l.buf[off-l.bufOff], nil
}

// decimal parses a non-negative decimal number read from the archive.
func (ix *indexer) decimal(s, what string, off int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || (s != "" && (s[0] == '+' || s[0] == '-')) {
		return 0, formats.Corruptf(ix.file, what, off, "%q is not a non-negative number", s)
	}
	return n, nil
}

// setFragments validates a sparse map against the file's size and the
// bytes stored, and records it in m.
func (ix *indexer) setFragments(m *Member, pairs []Fragment, realSize, stored, off int64) error {
	if err := ValidateMap(pairs, realSize, stored); err != nil {
		return formats.Corruptf(ix.file, m.Sparse+" sparse map", off, "member %q: %v", CleanName(m.Name), err)
	}
	// Zero-length fragments (GNU tar ends a map that finishes in a hole
	// with one at the file's end) carry nothing.
	kept := pairs[:0]
	for _, p := range pairs {
		if p.Length > 0 {
			kept = append(kept, p)
		}
	}
	m.Fragments, m.Size = kept, realSize
	if m.Fragments == nil {
		m.Fragments = []Fragment{}
	}
	return nil
}

// MaxRealSize bounds the logical size of a sparse member (1 PiB, the
// largest virtual disk formats allow).
const MaxRealSize = formats.DefaultMaxVirtualSize

// ValidateMap checks a sparse map: fragments in increasing order, not
// overlapping, inside realSize, their lengths adding up to stored.
func ValidateMap(pairs []Fragment, realSize, stored int64) error {
	if realSize < 0 || realSize > MaxRealSize {
		return fmt.Errorf("real size %d out of range (0 to %d)", realSize, MaxRealSize)
	}
	var end, sum int64
	for i, p := range pairs {
		switch {
		case p.Offset < 0 || p.Length < 0:
			return fmt.Errorf("fragment %d (offset %d, length %d) is negative", i, p.Offset, p.Length)
		case p.Offset < end:
			return fmt.Errorf("fragment %d at offset %d starts before the end of the previous one (%d): out of order or overlapping", i, p.Offset, end)
		case p.Length > realSize-p.Offset:
			return fmt.Errorf("fragment %d (offset %d, length %d) goes past the file's end (%d)", i, p.Offset, p.Length, realSize)
		}
		end = p.Offset + p.Length
		sum += p.Length
	}
	if sum != stored {
		return fmt.Errorf("the fragments hold %d bytes but the member stores %d", sum, stored)
	}
	return nil
}
