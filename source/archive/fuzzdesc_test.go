package archive_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/source/archive"
)

// FuzzIndex's input is not an archive but a short description of one,
// which tarOfDesc builds: whole tar inputs are KiBs of mostly padding that
// Go's fuzzer minimises (some n*n/2 runs for n bytes) each time one finds
// new coverage, so a worker spent the run minimising one input of a few
// headers. A description of a few members fits in descMaxBytes (only
// those are read), the builder writes the checksums, padding and record
// lengths a random byte string almost never gets right, and the edit and
// size choices keep every field reachable with hostile values.
//
// The description is a run of ops, each a byte (kind = op%8, flags =
// op/8) and its arguments; an argument past the input's end reads as 0.
//
//	descReg        a member: name, stored length (num); typeflag from
//	               descTypes[flags%8], size field from a num when flags&8
//	               (the data stays the stored length), GNU magic when
//	               flags&16. An .ovf or metadata.json name stores a valid
//	               descriptor or JSON instead of filler.
//	descPAX        a PAX 'x' header of flags%4+1 records: key (descKeys),
//	               value (a num or a name; a list of nums for a map).
//	               flags&8: the size field from a num.
//	descPAXGlobal  the same, 'g'.
//	descLong       a GNU long name ('L'; 'K' when flags&1): name, extra
//	               length (num) of "d/" it gains. flags&8: hostile size.
//	descOldSparse  an oldgnu 'S' member of flags%8 pairs (past 4 in
//	               extension blocks): name, pairs (offset gap, length:
//	               nums), realsize (a num around their end). flags&8:
//	               stored size from a num; the data written stays the
//	               pairs' sum.
//	descPAXSparse  a PAX sparse member, format 0.0, 0.1, 1.0 by flags%3,
//	               of flags/4%4 pairs, as descOldSparse, GNU.sparse.name
//	               disk.raw when flags&16.
//	descEdit       overwrite a field (descFields) of the next header with
//	               n (0..12) input bytes before its checksum (after it,
//	               for the checksum field itself).
//	descEnd        end: two zero blocks, one, the archive cut by a num
//	               of bytes, or a num of 0xAA bytes appended (flags%4).
//	               The rest of the input is not read.
//
// A num is one byte: 0..63 itself; 64..127 byte-64 512-byte blocks;
// 128..191 the natural value (the data's length, the pairs' end) plus
// byte-160; 192..255 one of descNums (huge, negative, the edges of the
// octal field).
const (
	descReg = iota
	descPAX
	descPAXGlobal
	descLong
	descOldSparse
	descPAXSparse
	descEdit
	descEnd
)

// descMaxBytes is how much of an input tarOfDesc reads.
const descMaxBytes = 64

// descMaxData bounds the data one member stores (sizes claimed beyond it
// are what the size choices are for) and descMaxArchive the archive.
const (
	descMaxData    = 16 << 10
	descMaxArchive = 64 << 10
)

var (
	descNames = []string{"disk.raw", "vm.ovf", "a.vmdk", "box.img", "box.ovf", "metadata.json", "./disk.raw/",
		"../../etc/passwd", "/abs", "d", "", strings.Repeat("n", 100), "dir/", "PaxHeaders/d", "A.OVF", "b.vmdk"}
	descTypes = []byte{'0', 0, '7', '5', 'D', 'V', '2', 'S'}
	descKeys  = []string{"path", "size", "GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.size", "GNU.sparse.realsize",
		"GNU.sparse.numblocks", "GNU.sparse.map", "GNU.sparse.offset", "GNU.sparse.numbytes", "GNU.sparse.name", "linkpath",
		"mtime", "", "=", "bad"}
	descNums = []int64{1 << 20, 1<<20 + 1, 1 << 31, 1 << 32, 1 << 40, 1 << 55, 1 << 62, 1<<63 - 1,
		0o77777777777, 0o77777777777 + 1, 99999999999, -1, -512, 4095, 4097, 65536}
	// descFields are (offset, length) of the header fields an edit may
	// overwrite.
	descFields = [][2]int{{0, 100}, {100, 8}, {124, 12}, {148, 8}, {156, 1}, {157, 100}, {257, 8}, {345, 155},
		{386, 24}, {410, 24}, {482, 1}, {483, 12}}
)

// descReader hands out a description's bytes, zeros past its end.
type descReader struct{ b []byte }

func (d *descReader) next() byte {
	if len(d.b) == 0 {
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *descReader) name() string { return descNames[int(d.next())%len(descNames)] }

// num reads a num (see FuzzIndex's description) around natural.
func (d *descReader) num(natural int64) int64 {
	c := d.next()
	switch c >> 6 {
	case 0:
		return int64(c)
	case 1:
		return int64(c&63) * 512
	case 2:
		return natural + int64(c&63) - 32
	}
	return descNums[int(c&63)%len(descNums)]
}

// tarBuilder accumulates the archive; edit is applied to the next header.
type tarBuilder struct {
	out  bytes.Buffer
	edit []byte // field index, then the bytes
}

// sizeField writes n at h[off:off+12]: octal when it fits, else base-256
// (two's complement, so negative numbers come out 0xFF-led).
func sizeField(h []byte, off int, n int64) {
	if n >= 0 && n < 1<<33 {
		copy(h[off:], fmt.Sprintf("%011o\x00", n))
		return
	}
	binary.BigEndian.PutUint64(h[off+4:], uint64(n))
	fill := byte(0)
	if n < 0 {
		fill = 0xFF
	}
	for i := off; i < off+4; i++ {
		h[i] = fill
	}
	h[off] |= 0x80
}

// header appends a header block and data padded to 512 bytes.
func (b *tarBuilder) header(name string, typ byte, size int64, gnu bool, extra func(h []byte), data []byte) {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	sizeField(h, 124, size)
	h[156] = typ
	if gnu {
		copy(h[257:], "ustar  \x00")
	} else {
		copy(h[257:], "ustar\x0000")
	}
	if extra != nil {
		extra(h)
	}
	var chksum []byte
	if b.edit != nil {
		f := descFields[int(b.edit[0])%len(descFields)]
		v := b.edit[1:min(len(b.edit), 1+f[1])]
		if f[0] == 148 {
			chksum = v
		} else {
			copy(h[f[0]:], v)
		}
		b.edit = nil
	}
	sum(h)
	copy(h[148:], chksum)
	b.out.Write(h)
	b.data(data)
}

// data appends data padded to whole blocks.
func (b *tarBuilder) data(p []byte) {
	b.out.Write(p)
	if pad := len(p) % 512; pad != 0 {
		b.out.Write(make([]byte, 512-pad))
	}
}

// filler is n bytes of stored data (at most descMaxData).
func filler(n int64) []byte {
	p := make([]byte, min(max(n, 0), descMaxData))
	for i := range p {
		p[i] = byte(i%251 + 1)
	}
	return p
}

// pairs reads n sparse pairs: a gap from the previous end, a length.
func (d *descReader) pairs(n int) (pairs [][2]int64, end, stored int64) {
	for range n {
		off := end + d.num(0)
		length := d.num(512)
		pairs = append(pairs, [2]int64{off, length})
		end, stored = off+length, stored+length
	}
	return pairs, end, stored
}

func decimals(pairs [][2]int64) []string {
	var s []string
	for _, p := range pairs {
		s = append(s, strconv.FormatInt(p[0], 10), strconv.FormatInt(p[1], 10))
	}
	return s
}

// paxRecs reads n PAX records.
func (d *descReader) paxRecs(n int) []string {
	var recs []string
	for range n {
		k := descKeys[int(d.next())%len(descKeys)]
		var v string
		switch k {
		case "path", "GNU.sparse.name", "linkpath":
			v = d.name()
		case "GNU.sparse.map":
			ps, _, _ := d.pairs(int(d.next() % 4))
			v = strings.Join(decimals(ps), ",")
		case "GNU.sparse.major", "GNU.sparse.minor":
			v = strconv.Itoa(int(d.next() % 3))
		case "mtime":
			v = "1.5"
		default:
			v = strconv.FormatInt(d.num(4096), 10)
		}
		recs = append(recs, k+"="+v)
	}
	return recs
}

// tarOfDesc builds the archive FuzzIndex's input describes.
func tarOfDesc(desc []byte) []byte {
	d := &descReader{b: desc[:min(len(desc), descMaxBytes)]}
	b := &tarBuilder{}
	for len(d.b) > 0 && b.out.Len() < descMaxArchive {
		op := d.next()
		kind, flags := op%8, op/8
		switch kind {
		case descReg:
			name, n := d.name(), d.num(0)
			data := filler(n)
			switch {
			case strings.HasSuffix(strings.ToLower(name), ".ovf"):
				data = []byte(ovfText("a.vmdk", "b.vmdk"))
			case name == "metadata.json":
				data = []byte(`{"provider":"libvirt"}`)
			}
			size := int64(len(data))
			if flags&8 != 0 {
				size = d.num(size)
			}
			b.header(name, descTypes[flags%8], size, flags&16 != 0, nil, data)
		case descPAX, descPAXGlobal:
			text := paxRecords(d.paxRecs(int(flags%4) + 1)...)
			size := int64(len(text))
			if flags&8 != 0 {
				size = d.num(size)
			}
			typ := byte('x')
			if kind == descPAXGlobal {
				typ = 'g'
			}
			b.header("PaxHeaders/x", typ, size, false, nil, text)
		case descLong:
			name := strings.Repeat("d/", int(min(max(d.num(0), 0), descMaxData))/2) + d.name()
			text := []byte(name + "\x00")
			size := int64(len(text))
			if flags&8 != 0 {
				size = d.num(size)
			}
			typ := byte('L')
			if flags&1 != 0 {
				typ = 'K'
			}
			b.header("././@LongLink", typ, size, true, nil, text)
		case descOldSparse:
			name := d.name()
			pairs, end, stored := d.pairs(int(flags % 8))
			real := d.num(end)
			size := stored
			if flags&8 != 0 {
				size = d.num(stored)
			}
			var ext [][]byte
			b.header(name, 'S', size, true, func(h []byte) {
				for i, p := range pairs[:min(len(pairs), 4)] {
					sizeField(h, 386+24*i, p[0])
					sizeField(h, 386+24*i+12, p[1])
				}
				sizeField(h, 483, real)
				if len(pairs) > 4 {
					h[482] = 1
					e := make([]byte, 512)
					for i, p := range pairs[4:] {
						sizeField(e, 24*i, p[0])
						sizeField(e, 24*i+12, p[1])
					}
					ext = append(ext, e)
				}
			}, nil)
			for _, e := range ext {
				b.out.Write(e)
			}
			b.data(filler(stored))
		case descPAXSparse:
			name := d.name()
			pairs, end, stored := d.pairs(int(flags / 4 % 4))
			real := strconv.FormatInt(d.num(end), 10)
			var recs []string
			data := filler(stored)
			switch flags % 3 {
			case 0:
				recs = []string{"GNU.sparse.size=" + real, "GNU.sparse.numblocks=" + strconv.Itoa(len(pairs))}
				for _, p := range pairs {
					recs = append(recs, "GNU.sparse.offset="+strconv.FormatInt(p[0], 10), "GNU.sparse.numbytes="+strconv.FormatInt(p[1], 10))
				}
			case 1:
				recs = []string{"GNU.sparse.size=" + real, "GNU.sparse.numblocks=" + strconv.Itoa(len(pairs)),
					"GNU.sparse.map=" + strings.Join(decimals(pairs), ",")}
			case 2:
				recs = []string{"GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=" + real}
				m := strconv.Itoa(len(pairs)) + "\n" + strings.Join(decimals(pairs), "\n") + "\n"
				m += string(make([]byte, (512-len(m)%512)%512))
				data = append([]byte(m), data...)
			}
			if flags&16 != 0 {
				recs = append(recs, "GNU.sparse.name=disk.raw")
			}
			text := paxRecords(recs...)
			b.header("PaxHeaders/"+name, 'x', int64(len(text)), false, nil, text)
			b.header(name, '0', int64(len(data)), false, nil, data)
		case descEdit:
			field := d.next()
			n := int(d.next() % 13)
			b.edit = []byte{field}
			for range n {
				b.edit = append(b.edit, d.next())
			}
		case descEnd:
			out := b.out.Bytes()
			switch flags % 4 {
			case 0:
				return append(out, make([]byte, 1024)...)
			case 1:
				return append(out, make([]byte, 512)...)
			case 2:
				return out[:max(0, len(out)-int(min(max(d.num(0), 0), int64(len(out)))))]
			case 3:
				return append(out, bytes.Repeat([]byte{0xAA}, int(min(max(d.num(0), 0), descMaxData)))...)
			}
		}
	}
	return b.out.Bytes()
}

// descSeed is one of FuzzIndex's seeds and what indexing it gives: the
// member's name and sparse format, or the error's words.
type descSeed struct {
	desc         []byte
	name, sparse string
	fragments    int
	err          string
}

// descSeeds are FuzzIndex's seeds: an OVA, a Vagrant box, oldgnu sparse
// members (one with an extension block), the three PAX sparse formats, GNU
// and PAX long names, a hostile size and a bad checksum.
func descSeeds() []descSeed {
	op := func(kind, flags int) byte { return byte(kind + 8*flags) }
	nm := func(name string) byte { return byte(slices.Index(descNames, name)) }
	const exact, blocks = 160, 64 // nums: the natural value; n 512-byte blocks
	end := op(descEnd, 0)
	return []descSeed{
		{desc: []byte{op(descReg, 0), nm("vm.ovf"), 0, op(descReg, 0), nm("a.vmdk"), 5, op(descReg, 0), nm("b.vmdk"), blocks + 2, end}, name: "b.vmdk"},
		{desc: []byte{op(descReg, 0), nm("metadata.json"), 0, op(descReg, 16), nm("box.img"), blocks + 1, end}, name: "box.img"},
		// GNU tar's way: whole blocks but for the last fragment, a
		// trailing hole as a last empty one.
		{desc: []byte{op(descOldSparse, 3), nm("d"), 10, blocks + 2, blocks + 8, 24, 5, 0, exact, end}, name: "d", sparse: "oldgnu", fragments: 2},
		{desc: []byte{op(descOldSparse, 6), nm("disk.raw"), 0, blocks + 1, 1, blocks + 1, 2, blocks + 1, 3, blocks + 1, 4, blocks + 1, 5, 11, exact, end}, name: "disk.raw", sparse: "oldgnu", fragments: 6},
		{desc: []byte{op(descPAXSparse, 12), nm("d"), blocks + 1, exact, blocks + 2, exact, 1, 0, exact, end}, name: "d", sparse: "pax-0.0", fragments: 2},
		{desc: []byte{op(descPAXSparse, 4), nm("d"), blocks + 8, blocks + 8, exact, end}, name: "d", sparse: "pax-0.1", fragments: 1},
		{desc: []byte{op(descPAXSparse, 20), nm("d"), 0, blocks + 8, exact, end}, name: "disk.raw", sparse: "pax-1.0", fragments: 1},
		{desc: []byte{op(descLong, 0), 6, nm("disk.raw"), op(descReg, 0), nm("d"), 3, end}, name: "d/d/d/disk.raw"},
		{desc: []byte{op(descPAXGlobal, 1), 0, nm("disk.raw"), 1, 7, op(descReg, 0), nm("d"), 7, end}, name: "disk.raw"},
		{desc: []byte{op(descReg, 8), nm("disk.raw"), 5, 192 + 4, end}, err: "past the archive's end"},
		{desc: []byte{op(descEdit, 0), 3, 2, 'x', 'y', op(descReg, 0), nm("d"), 1, end}, err: "checksum"},
	}
}

// TestDescSeeds: FuzzIndex's seeds build the archives they are meant to
// (their last member's name and sparse map), and GNU tar lists each valid
// one as vdisk does.
func TestDescSeeds(t *testing.T) {
	for i, s := range descSeeds() {
		data := tarOfDesc(s.desc)
		a, err := archive.Read(bytes.NewReader(data), int64(len(data)), "s.tar", archive.Limits{})
		if s.err != "" {
			if err == nil || !strings.Contains(err.Error(), s.err) {
				t.Errorf("seed %d: error %v, want one saying %q", i, err, s.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("seed %d: %v", i, err)
			continue
		}
		m := a.Members[len(a.Members)-1]
		if m.Name != s.name || m.Sparse != s.sparse || len(m.Fragments) != s.fragments {
			t.Errorf("seed %d: last member %q, sparse %q, %d fragments; want %q, %q, %d", i, m.Name, m.Sparse, len(m.Fragments), s.name, s.sparse, s.fragments)
		}
		gnuList(t, i, data, a)
	}
}

// gnuList: GNU tar lists the archive's members with the names and sizes
// vdisk indexed, and extracts each with the bytes vdisk reads.
func gnuList(t *testing.T, seed int, data []byte, a *archive.Archive) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := qemutest.Exec(t, "tar", "--numeric-owner", "-tvf", path)
	if r.Code != 0 {
		t.Fatalf("seed %d: tar -tvf: exit %d: %s", seed, r.Code, r.Stderr)
	}
	var got, want []string
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		// -rw-r--r-- 0/0    5 1970-01-01 00:00 name
		if f := strings.Fields(line); len(f) >= 6 {
			got = append(got, archive.CleanName(strings.Join(f[5:], " "))+" "+f[2])
		}
	}
	for _, m := range a.Members {
		want = append(want, m.Name+" "+strconv.FormatInt(m.Size, 10))
	}
	if !slices.Equal(got, want) {
		t.Errorf("seed %d: GNU tar lists %q, vdisk %q", seed, got, want)
	}
	dir := t.TempDir()
	if r := qemutest.Exec(t, "tar", "-C", dir, "-xf", path); r.Code != 0 {
		t.Fatalf("seed %d: tar -xf: exit %d: %s", seed, r.Code, r.Stderr)
	}
	file := formats.ReaderAtFile(bytes.NewReader(data), int64(len(data)), "s.tar")
	for _, m := range a.Members {
		gnu, err := os.ReadFile(filepath.Join(dir, m.Name))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ours := make([]byte, m.Size)
		if _, err := archive.NewMemberFile(file, m, m.Name, false).ReadAt(ours, 0); err != nil && err != io.EOF {
			t.Fatalf("seed %d: %s: %v", seed, m.Name, err)
		}
		if !bytes.Equal(gnu, ours) {
			t.Errorf("seed %d: %s reads differently from what GNU tar extracts", seed, m.Name)
		}
	}
}
