package archive_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/source/archive"
)

// block builds one tar header: name, typeflag, size field text, GNU magic
// when gnu, edit applied before the checksum.
func block(name string, typ byte, size int64, gnu bool, edit func(h []byte)) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	h[156] = typ
	if gnu {
		copy(h[257:], "ustar  \x00")
	} else {
		copy(h[257:], "ustar\x0000")
	}
	if edit != nil {
		edit(h)
	}
	sum(h)
	return h
}

// sum writes the header checksum.
func sum(h []byte) {
	copy(h[148:], "        ")
	var s int64
	for _, c := range h {
		s += int64(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", s))
}

// octal writes n at h[off:off+12].
func octal(h []byte, off int, n int64) { copy(h[off:], fmt.Sprintf("%011o\x00", n)) }

// oldgnuSparse is a 'S' header with the given pairs (up to 4) and realsize.
func oldgnuSparse(name string, stored, real int64, pairs ...[2]int64) []byte {
	return block(name, 'S', stored, true, func(h []byte) {
		for i, p := range pairs {
			octal(h, 386+24*i, p[0])
			octal(h, 386+24*i+12, p[1])
		}
		octal(h, 483, real)
	})
}

// archiveOf joins blocks, pads data and ends with two zero blocks.
func archiveOf(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.Write(p)
		if pad := len(p) % 512; pad != 0 {
			b.Write(make([]byte, 512-pad))
		}
	}
	b.Write(make([]byte, 1024))
	return b.Bytes()
}

func paxRecords(recs ...string) []byte {
	var b strings.Builder
	for _, r := range recs {
		n := len(r) + 2
		for len(fmt.Sprintf("%d %s\n", n, r)) != n {
			n++
		}
		fmt.Fprintf(&b, "%d %s\n", n, r)
	}
	return []byte(b.String())
}

func paxMember(name string, data []byte, recs ...string) [][]byte {
	r := paxRecords(recs...)
	return [][]byte{block("PaxHeaders/"+name, 'x', int64(len(r)), false, nil), r,
		block(name, '0', int64(len(data)), false, nil), data}
}

// TestHostileArchives: every malformed archive is refused with the
// sentinel and words that say what is wrong, never a panic.
func TestHostileArchives(t *testing.T) {
	data4k := bytes.Repeat([]byte{7}, 4096)
	cases := []struct {
		name  string
		tar   []byte
		lim   archive.Limits
		kind  error
		words string
	}{
		{"size past the end", archiveOf(block("disk.raw", '0', 1<<40, false, nil)), archive.Limits{}, formats.ErrCorrupt, "past the archive's end"},
		{"negative base-256 size", archiveOf(block("disk.raw", '0', 0, false, func(h []byte) {
			for i := 124; i < 136; i++ {
				h[i] = 0xFF
			}
		})), archive.Limits{}, formats.ErrCorrupt, "negative"},
		{"base-256 over 63 bits", archiveOf(block("disk.raw", '0', 0, false, func(h []byte) {
			h[124] = 0x80
			for i := 125; i < 136; i++ {
				h[i] = 0x7F
			}
		})), archive.Limits{}, formats.ErrCorrupt, "63 bits"},
		{"bad checksum", archiveOf(func() []byte { h := block("a", '0', 0, false, nil); h[0] = 'b'; return h }()), archive.Limits{}, formats.ErrCorrupt, "checksum"},
		{"truncated header", archiveOf(block("a", '0', 5, false, nil), []byte("hello"))[:1024+100], archive.Limits{}, formats.ErrCorrupt, "truncated"},
		{"sparse out of order", archiveOf(oldgnuSparse("d", 8192, 1<<20, [2]int64{65536, 4096}, [2]int64{0, 4096}), data4k, data4k), archive.Limits{}, formats.ErrCorrupt, "out of order"},
		{"sparse overlapping", archiveOf(oldgnuSparse("d", 8192, 1<<20, [2]int64{0, 8192}, [2]int64{4096, 0}), data4k, data4k), archive.Limits{}, formats.ErrCorrupt, "overlapping"},
		{"sparse past the end", archiveOf(oldgnuSparse("d", 4096, 4096, [2]int64{4096, 4096}), data4k), archive.Limits{}, formats.ErrCorrupt, "past the file's end"},
		{"sparse sum differs", archiveOf(oldgnuSparse("d", 4096, 1<<20, [2]int64{0, 4096}, [2]int64{8192, 4096}), data4k), archive.Limits{}, formats.ErrCorrupt, "hold 8192 bytes"},
		{"sparse real size huge", archiveOf(func() []byte {
			h := oldgnuSparse("d", 4096, 0, [2]int64{0, 4096})
			clear(h[483:495])
			h[483], h[488] = 0x80, 0x80 // base-256: 1<<55
			sum(h)
			return h
		}(), data4k), archive.Limits{}, formats.ErrCorrupt, "real size"},
		{"sparse extension past the end", archiveOf(block("d", 'S', 0, true, func(h []byte) { h[482] = 1; octal(h, 483, 10) }))[:512], archive.Limits{}, formats.ErrCorrupt, "extension"},
		{"sparse too many fragments", archiveOf(oldgnuSparse("d", 4, 100, [2]int64{0, 1}, [2]int64{2, 1}, [2]int64{4, 1}, [2]int64{6, 1}), []byte("abcd")), archive.Limits{MaxFragments: 3}, formats.ErrLimit, "fragments"},
		{"pax 0.1 odd map", archiveOf(paxMember("d", data4k, "GNU.sparse.size=8192", "GNU.sparse.numblocks=1", "GNU.sparse.map=0,4096,5")...), archive.Limits{}, formats.ErrCorrupt, "not pairs"},
		{"pax 0.1 numblocks lies", archiveOf(paxMember("d", data4k, "GNU.sparse.size=8192", "GNU.sparse.numblocks=9", "GNU.sparse.map=0,4096")...), archive.Limits{}, formats.ErrCorrupt, "numblocks"},
		{"pax 0.1 negative", archiveOf(paxMember("d", data4k, "GNU.sparse.size=8192", "GNU.sparse.map=-1,4096")...), archive.Limits{}, formats.ErrCorrupt, "non-negative"},
		{"pax 1.0 huge count", archiveOf(paxMember("d", append([]byte("99999999999\n"), data4k...), "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=8192")...), archive.Limits{}, formats.ErrLimit, "fragments"},
		{"pax 1.0 map ends early", archiveOf(paxMember("d", []byte("2\n0\n4"), "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=8192")...), archive.Limits{}, formats.ErrCorrupt, "ends inside"},
		{"pax 1.0 map larger than member", archiveOf(paxMember("d", []byte("1\n0\n0\n"), "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.realsize=8192")[:3]...)[:2048], archive.Limits{}, formats.ErrCorrupt, ""},
		{"pax bad length", archiveOf(block("p", 'x', 12, false, nil), []byte("99 path=abc\n"), block("a", '0', 0, false, nil)), archive.Limits{}, formats.ErrCorrupt, "bad length"},
		{"pax negative size", archiveOf(paxMember("d", nil, "size=-5")...), archive.Limits{}, formats.ErrCorrupt, "not a size"},
		{"pax records too large", archiveOf(block("p", 'x', 1<<21, false, nil), make([]byte, 1<<21)), archive.Limits{}, formats.ErrLimit, "PAX records"},
		{"long name without member", archiveOf(block("././@LongLink", 'L', 4, true, nil), []byte("abc\x00")), archive.Limits{}, formats.ErrCorrupt, "not followed"},
		{"too many members", archiveOf(block("a", '0', 0, false, nil), block("b", '0', 0, false, nil), block("c", '0', 0, false, nil)), archive.Limits{MaxMembers: 2}, formats.ErrLimit, "members"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := archive.Index(bytes.NewReader(tc.tar), int64(len(tc.tar)), "h.tar", tc.lim)
			if err == nil {
				t.Fatal("accepted")
			}
			errIs(t, err, tc.kind, tc.words)
			if !strings.Contains(err.Error(), "h.tar") {
				t.Errorf("error does not name the archive: %v", err)
			}
		})
	}
}

// TestSparseMapCrafted: a crafted oldgnu map with an extension block reads
// as its fragments say.
func TestSparseMapCrafted(t *testing.T) {
	a := bytes.Repeat([]byte{'a'}, 1000)
	b := bytes.Repeat([]byte{'b'}, 24)
	hdr := oldgnuSparse("disk.raw", 1024+10, 100000, [2]int64{10, 1000}, [2]int64{5000, 24})
	hdr[482] = 1
	sum(hdr)
	ext := make([]byte, 512)
	octal(ext, 0, 99990)
	octal(ext, 12, 10)
	octal(ext, 24, 100000)
	octal(ext, 36, 0)
	data := append(append(append([]byte{}, a...), b...), []byte("0123456789")...)
	tarb := archiveOf(hdr, ext, data)
	ms, err := archive.Index(bytes.NewReader(tarb), int64(len(tarb)), "c.tar", archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	mf := archive.NewMemberFile(formats.ReaderAtFile(bytes.NewReader(tarb), int64(len(tarb)), "c.tar"), ms[0], "c.tar/disk.raw", false)
	got := make([]byte, 100000)
	if _, err := mf.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 100000)
	copy(want[10:], a)
	copy(want[5000:], b)
	copy(want[99990:], "0123456789")
	if !bytes.Equal(got, want) {
		t.Fatal("crafted sparse member reads wrong")
	}
	if _, err := mf.WriteAt([]byte{1}, 0); err == nil {
		t.Fatal("a member was written")
	}
}

// TestTraversalNamesOnlyCompared: members named ../ or / are listed and
// chosen by name like any other; nothing is ever written for them.
func TestTraversalNamesOnlyCompared(t *testing.T) {
	tarb := archiveOf(block("../../etc/passwd", '0', 4, false, nil), []byte("root"), block("/abs", '0', 0, false, nil))
	a, err := archive.Read(bytes.NewReader(tarb), int64(len(tarb)), "t.tar", archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Choose(0, "../../etc/passwd")
	if err != nil || string(tarb[m.DataOff:m.DataOff+m.Size]) != "root" {
		t.Fatalf("choose: %v %v", m, err)
	}
}
