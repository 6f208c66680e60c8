package archive_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/source/archive"
)

// FuzzIndex: any archive indexes without a panic; every member indexed
// lies inside the archive and reads (its first 64 KiB) without a panic.
// The input describes the archive (tarOfDesc, which says why): the seeds
// are an OVA, a Vagrant box, oldgnu sparse members (one with an extension
// block), the three PAX sparse formats, GNU and PAX long names, a hostile
// size and a bad checksum.
func FuzzIndex(f *testing.F) {
	for _, seed := range descSeeds() {
		f.Add(seed.desc)
	}
	f.Fuzz(func(t *testing.T, desc []byte) {
		data := tarOfDesc(desc)
		a, err := archive.Read(bytes.NewReader(data), int64(len(data)), "f.tar", archive.Limits{MaxFragments: 4096})
		if err != nil {
			return
		}
		file := formats.ReaderAtFile(bytes.NewReader(data), int64(len(data)), "f.tar")
		for _, m := range a.Members {
			if m.DataOff < 0 || m.StoredSize < 0 || m.DataOff+m.StoredSize > int64(len(data)) {
				t.Fatalf("member %q outside the archive: data at %d, %d bytes", m.Name, m.DataOff, m.StoredSize)
			}
			mf := archive.NewMemberFile(file, m, "f.tar/"+m.Name, false)
			buf := make([]byte, min(m.Size, 64<<10))
			if _, err := mf.ReadAt(buf, 0); err != nil && err != io.EOF {
				t.Fatalf("member %q: %v", m.Name, err)
			}
			if _, err := mf.Runs(0, m.Size); err != nil {
				t.Fatalf("member %q runs: %v", m.Name, err)
			}
		}
		a.Choose(0, "")
	})
}

// FuzzSparseMap: a map ValidateMap accepts reads, through a MemberFile,
// exactly as the naive expansion of its fragments.
func FuzzSparseMap(f *testing.F) {
	seed := func(realSize int64, pairs ...int64) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(realSize))
		for _, p := range pairs {
			b = binary.LittleEndian.AppendUint16(b, uint16(p))
		}
		return b
	}
	f.Add(seed(1000, 10, 100, 200, 50, 999, 1))
	f.Add(seed(1000, 100, 10, 50, 10))
	f.Add(seed(0))
	f.Add(seed(70000, 0, 65535))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 4 {
			return
		}
		realSize := int64(binary.LittleEndian.Uint32(in) % (1 << 20))
		in = in[4:]
		var pairs []archive.Fragment
		var stored int64
		for len(in) >= 4 && len(pairs) < 256 {
			p := archive.Fragment{Offset: int64(binary.LittleEndian.Uint16(in)) * 16, Length: int64(binary.LittleEndian.Uint16(in[2:]))}
			pairs = append(pairs, p)
			stored += p.Length
			in = in[4:]
		}
		if archive.ValidateMap(pairs, realSize, stored) != nil {
			return
		}
		data := make([]byte, stored)
		for i := range data {
			data[i] = byte(i%251 + 1)
		}
		want := make([]byte, realSize)
		pos := int64(0)
		for _, p := range pairs {
			copy(want[p.Offset:p.Offset+p.Length], data[pos:pos+p.Length])
			pos += p.Length
		}
		frags := []archive.Fragment{}
		for _, p := range pairs {
			if p.Length > 0 {
				frags = append(frags, p)
			}
		}
		m := archive.Member{Name: "d", Type: 'S', Size: realSize, StoredSize: stored, Fragments: frags}
		mf := archive.NewMemberFile(formats.ReaderAtFile(bytes.NewReader(data), stored, "d"), m, "d", false)
		got := make([]byte, realSize)
		if _, err := mf.ReadAt(got, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("sparse read differs from the naive expansion")
		}
		runs, err := mf.Runs(0, realSize)
		if err != nil {
			t.Fatal(err)
		}
		end := int64(0)
		for _, r := range runs {
			if r.Offset != end {
				t.Fatalf("runs not contiguous at %d", r.Offset)
			}
			if r.Hole && !bytes.Equal(want[r.Offset:r.Offset+r.Length], make([]byte, r.Length)) {
				t.Fatalf("hole at %d holds data", r.Offset)
			}
			end += r.Length
		}
		if end != realSize {
			t.Fatalf("runs end at %d, size %d", end, realSize)
		}
	})
}

// FuzzParseOVF: any descriptor parses or fails without a panic.
func FuzzParseOVF(f *testing.F) {
	f.Add([]byte(ovfText("a.vmdk", "b.vmdk")))
	f.Add([]byte(`<Envelope xmlns="` + archive.OVFNamespace1 + `"><DiskSection><Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^40"/></DiskSection></Envelope>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><Envelope>&a;</Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := archive.ParseOVF(data, "f.ovf")
		if err != nil {
			return
		}
		if len(env.Files) > archive.MaxOVFDisks || len(env.Disks) > archive.MaxOVFDisks {
			t.Fatal("limits not applied")
		}
		for _, fl := range env.Files {
			archive.ValidHref(fl.Href)
		}
	})
}
