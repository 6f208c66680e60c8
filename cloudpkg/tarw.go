package cloudpkg

import (
	"fmt"
	"io"
	"time"
)

// blockBytes is tar's unit.
const blockBytes = 512

// tarHeader is what the writer puts in a header block.
type tarHeader struct {
	Name     string
	Size     int64 // bytes of data that follow the header (the stored fragments, for sparse)
	ModTime  time.Time
	GNU      bool // oldgnu magic "ustar  \0" instead of POSIX "ustar\0" "00"
	Sparse   []fragment
	RealSize int64 // the file's size, for a sparse member
}

// fragment is a data range of a sparse file, in the file's offsets.
type fragment struct{ Offset, Length int64 }

// Header block fields (see source/archive's tar.go for the whole layout).
const (
	hdrName     = 0
	hdrMode     = 100
	hdrUID      = 108
	hdrGID      = 116
	hdrSize     = 124
	hdrMtime    = 136
	hdrChksum   = 148
	hdrType     = 156
	hdrMagic    = 257
	hdrUname    = 265
	hdrGname    = 297
	hdrSparse   = 386 // oldgnu: 4 pairs of offset[12], numbytes[12]
	hdrExtended = 482
	hdrRealSize = 483
	pairsInHdr  = 4
	pairsInExt  = 21
)

// encode returns the header block and, for a sparse member with more
// than 4 fragments, its oldgnu extension blocks.
func (h tarHeader) encode() ([]byte, error) {
	if len(h.Name) > 100 {
		return nil, fmt.Errorf("tar member name %q longer than 100 bytes", h.Name)
	}
	b := make([]byte, blockBytes)
	copy(b[hdrName:], h.Name)
	octal(b[hdrMode:hdrMode+8], 0o644)
	octal(b[hdrUID:hdrUID+8], 0)
	octal(b[hdrGID:hdrGID+8], 0)
	if err := number(b[hdrSize:hdrSize+12], h.Size); err != nil {
		return nil, err
	}
	octal(b[hdrMtime:hdrMtime+12], max(h.ModTime.Unix(), 0))
	b[hdrType] = '0'
	if h.GNU {
		copy(b[hdrMagic:], "ustar  \x00")
	} else {
		copy(b[hdrMagic:], "ustar\x0000")
	}
	copy(b[hdrUname:], "root")
	copy(b[hdrGname:], "root")
	var ext []byte
	if h.Sparse != nil {
		b[hdrType] = 'S'
		if err := number(b[hdrRealSize:hdrRealSize+12], h.RealSize); err != nil {
			return nil, err
		}
		rest, err := putPairs(b[hdrSparse:hdrSparse+pairsInHdr*24], h.Sparse)
		if err != nil {
			return nil, err
		}
		prev, flagAt := b, hdrExtended
		for len(rest) > 0 {
			prev[flagAt] = 1 // an extension block follows
			blk := make([]byte, blockBytes)
			if rest, err = putPairs(blk[:pairsInExt*24], rest); err != nil {
				return nil, err
			}
			ext = append(ext, blk...)
			prev, flagAt = ext[len(ext)-blockBytes:], pairsInExt*24
		}
	}
	checksum(b)
	return append(b, ext...), nil
}

// putPairs writes as many fragments as fit in slots and returns the rest.
func putPairs(slots []byte, frags []fragment) ([]fragment, error) {
	n := len(slots) / 24
	for i := 0; i < n && i < len(frags); i++ {
		if err := number(slots[i*24:i*24+12], frags[i].Offset); err != nil {
			return nil, err
		}
		if err := number(slots[i*24+12:i*24+24], frags[i].Length); err != nil {
			return nil, err
		}
	}
	if len(frags) <= n {
		return nil, nil
	}
	return frags[n:], nil
}

// octal writes n as zero-padded octal digits and a NUL.
func octal(field []byte, n int64) {
	s := fmt.Sprintf("%0*o", len(field)-1, n)
	copy(field, s)
	field[len(field)-1] = 0
}

// number writes n in octal when it fits, else in GNU base-256 (as GNU
// tar does for members of 8 GiB and more).
func number(field []byte, n int64) error {
	if n < 0 {
		return fmt.Errorf("negative tar number %d", n)
	}
	if n < 1<<(3*(len(field)-1)) {
		octal(field, n)
		return nil
	}
	clear(field)
	for i := len(field) - 1; i > 0 && n > 0; i-- {
		field[i] = byte(n)
		n >>= 8
	}
	if n > 0 {
		return fmt.Errorf("tar number too large for a %d-byte field", len(field))
	}
	field[0] = 0x80
	return nil
}

// checksum fills the header checksum: six octal digits, NUL, space.
func checksum(b []byte) {
	copy(b[hdrChksum:hdrChksum+8], "        ")
	var s int64
	for _, c := range b[:blockBytes] {
		s += int64(c)
	}
	copy(b[hdrChksum:], fmt.Sprintf("%06o\x00 ", s))
}

// padding writes the zeros that end a member's data on a block boundary.
func padding(w io.Writer, size int64) error {
	if r := size % blockBytes; r != 0 {
		_, err := w.Write(make([]byte, blockBytes-r))
		return err
	}
	return nil
}

// endOfArchive is two zero blocks.
func endOfArchive(w io.Writer) error {
	_, err := w.Write(make([]byte, 2*blockBytes))
	return err
}
