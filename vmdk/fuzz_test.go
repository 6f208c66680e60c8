package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// tinySparse is a hand-built sparse extent: 16 sectors, 1-sector grains,
// 4 GTEs per GT, GD at sector 1, GTs at 2-5, grains from sector 6, one
// zeroed grain.
func tinySparse() []byte {
	h := sparseHeader{Magic: sparseMagic, Version: 2, Flags: flagNewlineTest | flagZeroedGrain, Capacity: 16,
		GrainSize: 1, NumGTEsPerGT: 4, GDOffset: 1, OverHead: 6, NewlineCheck: newlineCheck}
	b := make([]byte, 8*sectorSize)
	copy(b, h.encode())
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint32(b[sectorSize+4*i:], uint32(2+i))
	}
	binary.LittleEndian.PutUint32(b[2*sectorSize:], 6)
	binary.LittleEndian.PutUint32(b[2*sectorSize+4:], zeroedGrainGTE)
	binary.LittleEndian.PutUint32(b[5*sectorSize+12:], 7)
	copy(b[6*sectorSize:], bytes.Repeat([]byte{0xab}, sectorSize))
	copy(b[7*sectorSize:], bytes.Repeat([]byte{0xcd}, sectorSize))
	return b
}

func TestTinySparse(t *testing.T) {
	img, err := Open(context.Background(), fileio.NewMem("t.vmdk", tinySparse()), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, img)
	want := make([]byte, 16*sectorSize)
	copy(want, bytes.Repeat([]byte{0xab}, sectorSize))
	copy(want[15*sectorSize:], bytes.Repeat([]byte{0xcd}, sectorSize))
	if !bytes.Equal(got, want) {
		t.Fatal("tiny sparse content")
	}
	exts, _ := img.Extents(0, img.Size())
	kinds := []formats.ExtentKind{}
	for _, e := range exts {
		kinds = append(kinds, e.Kind)
	}
	if diff := cmp.Diff([]formats.ExtentKind{formats.Data, formats.Zero, formats.Unallocated, formats.Data}, kinds); diff != "" {
		t.Fatal(diff)
	}
}

func FuzzSparse(f *testing.F) {
	// Inputs are patches over small valid extents (fuzzpatch): a whole
	// image as the input is minimised for a minute each time the fuzzer
	// finds new coverage. The hand-built extent has a GD, GTs, a zeroed
	// grain and data; the stream has markers and compressed grains.
	bases := [][]byte{tinySparse(), smallStream(f)}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		data := fuzzpatch.Apply(bases, input)
		lim := formats.Limits{MaxTableBytes: 1 << 20, CacheBytes: 64 << 10}
		img, err := Open(context.Background(), fileio.NewMem("f.vmdk", data), formats.OpenOptions{Limits: lim})
		if err != nil {
			return
		}
		defer img.Close()
		buf := make([]byte, 64<<10)
		for _, off := range []int64{0, img.Size() / 2, img.Size() - 1000} {
			if off >= 0 {
				img.ReadAt(buf, off)
			}
		}
		img.Extents(0, min(img.Size(), 8<<20))
		img.(*Image).Info()
	})
}

// smallStream is a streamOptimized image of a 1 MiB disk with 4 KiB of
// data, 11.5 KiB: the writer puts the first grain at 64 KiB, as qemu does;
// here it goes right after the header and the 10 KiB descriptor area, and
// OverHead says so (TestSmallStream: qemu-img reads it as the 64 KiB
// layout).
func smallStream(t testing.TB) []byte {
	mem := fileio.NewMem("s.vmdk", nil)
	w := createWith(t, mem, 1<<20, "subformat=streamOptimized", 3)
	const overhead = 1 + embeddedDescSectors
	sw := w.(*streamWriter)
	sw.pos, sw.hdr.OverHead = overhead*sectorSize, overhead
	if _, err := w.WriteAt(bytes.Repeat([]byte("vmdk"), 1024), 8192); err != nil {
		t.Fatal(err)
	}
	finish(t, w)
	b := mem.Bytes()[:sw.pos]
	binary.LittleEndian.PutUint64(b[64:], overhead) // the header's OverHead
	return b
}

// TestSmallStream: qemu-img checks FuzzSparse's compact stream clean and
// reads it as its data, as vdisk does.
func TestSmallStream(t *testing.T) {
	b := smallStream(t)
	if len(b) > 64<<10 {
		t.Fatalf("%d bytes", len(b))
	}
	want := make([]byte, 1<<20)
	copy(want[8192:], bytes.Repeat([]byte("vmdk"), 1024))
	path := writeTemp(t, b)
	qemutest.RequireClean(t, "vmdk", path)
	got, err := os.ReadFile(qemutest.ToRaw(t, "vmdk", path))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open(context.Background(), fileio.NewMem("s.vmdk", b), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || !bytes.Equal(readAll(t, img), want) {
		t.Fatal("the compact stream does not read as its data")
	}
}

func FuzzDescriptor(f *testing.F) {
	f.Add([]byte(goodDesc))
	f.Add([]byte(descriptorText(f, writeTemp(f, smallStream(f)))))
	f.Add([]byte("# Disk DescriptorFile\nCID=1\ncreateType=custom\nRW 10 ZERO\nRDONLY 5 SPARSE \"a.vmdk\"\nddb.x = \"y\"\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		d, err := parseDescriptor("f.vmdk", text)
		if err != nil {
			return
		}
		again, err := parseDescriptor("f.vmdk", []byte(d.format()))
		if err != nil {
			t.Fatalf("formatted descriptor does not parse: %v\n%s", err, d.format())
		}
		if diff := cmp.Diff(d.Extents, again.Extents); diff != "" || d.CID != again.CID ||
			d.ParentCID != again.ParentCID || d.CreateType != again.CreateType {
			t.Fatalf("round trip: %s", diff)
		}
	})
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []sparseHeader{
		{Magic: sparseMagic, Version: 1, Flags: 3, Capacity: 1 << 40, GrainSize: 128, DescriptorOffset: 1,
			DescriptorSize: 20, NumGTEsPerGT: 512, RGDOffset: 21, GDOffset: 300, OverHead: 640, NewlineCheck: newlineCheck},
		{Magic: sparseMagic, Version: 3, Flags: 0x30001, GDOffset: gdAtEnd, CompressAlgo: 1, UncleanShutdown: 1},
	} {
		if diff := cmp.Diff(h, decodeHeader(h.encode())); diff != "" {
			t.Error(diff)
		}
	}
	m := marker{Value: 4, Type: markerGT}
	if diff := cmp.Diff(m, decodeMarker(encodeMetaMarker(4, markerGT))); diff != "" {
		t.Error(diff)
	}
}

func TestDescriptorRoundTrip(t *testing.T) {
	d := &descriptor{Version: 1, CID: 0xdeadbeef, ParentCID: 0x12345678, CreateType: "twoGbMaxExtentSparse",
		ParentFileNameHint: "base.vmdk",
		Extents: []extentLine{{Access: "RW", Sectors: 4192256, Type: "SPARSE", File: "x-s001.vmdk"},
			{Access: "RW", Sectors: 100, Type: "FLAT", File: "x-f001.vmdk", Offset: 7}, {Access: "RW", Sectors: 8, Type: "ZERO"}},
		DDB: []ddbEntry{{"ddb.adapterType", "lsilogic"}, {"ddb.uuid", "00 11-22"}}}
	got, err := parseDescriptor("x", []byte(d.format()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Fatal(diff)
	}
	// VMware's unquoted variant and trailing spaces are accepted.
	v, err := parseDescriptor("x", []byte("# Disk DescriptorFile\nversion=1 \nCID=a454774a \ncreateType=streamOptimized\nRDONLY 128 SPARSE \"s.vmdk\"\n"))
	if err != nil || v.CreateType != "streamOptimized" || v.CID != 0xa454774a {
		t.Fatalf("%+v %v", v, err)
	}
}
