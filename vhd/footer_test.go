package vhd

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleFooter() footer {
	ft := footer{
		Features: featureBits, FileVersion: fileVersion, DataOffset: 512, Timestamp: 0x1e598ef7,
		CreatorVersion: 0x60003, OriginalSize: 1 << 30, CurrentSize: 1 << 30,
		Cylinders: 2080, Heads: 16, SectorsPerTrack: 63, DiskType: typeDynamic,
		UniqueID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SavedState: 0,
	}
	copy(ft.Cookie[:], footerCookie)
	copy(ft.CreatorApp[:], "win ")
	copy(ft.CreatorOS[:], creatorOSWin)
	return ft
}

func TestFooterRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*footer)
	}{
		{"dynamic", func(*footer) {}},
		{"fixed", func(ft *footer) { ft.DiskType, ft.DataOffset = typeFixed, noDataOffset }},
		{"saved-state", func(ft *footer) { ft.SavedState = 1; ft.Features = 3 }},
		{"tap", func(ft *footer) { copy(ft.CreatorApp[:], "tap\x00") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := sampleFooter()
			tc.mod(&ft)
			b := ft.encode()
			if len(b) != footerSize || !footerValid(b) {
				t.Fatalf("encoded footer invalid (len %d)", len(b))
			}
			got := decodeFooter(b)
			if diff := cmp.Diff(ft, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			// The legacy 511-byte form carries the same fields and checksum.
			if !footerValid(b[:legacyFooterSize]) {
				t.Errorf("511-byte prefix not valid")
			}
			b[100] ^= 1
			if footerValid(b) {
				t.Errorf("corrupted footer still valid")
			}
		})
	}
}

func TestChecksumKnown(t *testing.T) {
	// The Hyper-V sample's footer checksum: 0xffffe9db.
	b := make([]byte, footerSize)
	copy(b, []byte("conectix\x00\x00\x00\x02\x00\x01\x00\x00"))
	binary.BigEndian.PutUint64(b[16:], 512)
	copy(b[24:], []byte{0x1e, 0x59, 0x8e, 0xf7})
	copy(b[28:], "win \x00\x06\x00\x03Wi2k")
	binary.BigEndian.PutUint64(b[40:], 0x1fc0000000)
	binary.BigEndian.PutUint64(b[48:], 0x1fc0000000)
	copy(b[56:], []byte{0xfe, 0xfe, 0x10, 0xff, 0, 0, 0, 3})
	copy(b[68:], []byte{0x6d, 0x2d, 0x5f, 0xc8, 0xee, 0xba, 0xde, 0x4c, 0x8c, 0xee, 0xde, 0x3a, 0x12, 0xdb, 0x7c, 0x98})
	if got := checksum(b, footerSumOff); got != 0xffffe9db {
		t.Errorf("checksum = %#x, want 0xffffe9db", got)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := dynHeader{DataOffset: noDataOffset, TableOffset: 1536, HeaderVersion: headerVersion,
		MaxTableEntries: 6, BlockSize: defaultBlockSize, ParentUniqueID: [16]byte{9: 9}, ParentTimestamp: 77}
	copy(h.Cookie[:], headerCookie)
	h.setParentName("päränt.vhd")
	h.Locators[0] = locator{PlatformCode: platW2ru, DataSpace: 512, DataLength: 24, DataOffset: 2048}
	h.Locators[1] = locator{PlatformCode: platW2ku, DataSpace: 512, DataLength: 40, DataOffset: 2560}
	b := h.encode()
	if len(b) != headerSize || checksum(b, headerSumOff) != binary.BigEndian.Uint32(b[headerSumOff:]) {
		t.Fatal("bad header encoding")
	}
	got := decodeHeader(b)
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got.parentName() != "päränt.vhd" {
		t.Errorf("parent name %q", got.parentName())
	}
}

func TestGeometry(t *testing.T) {
	// Sizes qemu-img 7.2 gives `create -f vpc` (force_size off).
	for _, tc := range []struct {
		request, want int64
		geo           geometry
	}{
		{1 << 20, 1079296, geometry{31, 4, 17}},
		{10 << 20, 10514432, geometry{302, 4, 17}},
		{64 << 20, 67125248, geometry{964, 8, 17}},
		{1 << 30, 1073995776, geometry{2081, 16, 63}},
		{127 << 30, 136365219840, geometry{0, 0, 0}},
		{128 << 30, 128 << 30, maxGeometry},
		{2040 << 30, 2040 << 30, maxGeometry},
	} {
		g, sectors := roundUpToGeometry(tc.request / sectorSize)
		if sectors*sectorSize != tc.want {
			t.Errorf("%d: size %d, want %d", tc.request, sectors*sectorSize, tc.want)
		}
		if tc.geo != (geometry{}) && g != tc.geo {
			t.Errorf("%d: geometry %v, want %v", tc.request, g, tc.geo)
		}
	}
	if g := geometryFor(1 << 40); g != maxGeometry {
		t.Errorf("1 TiB geometry %v", g)
	}
}

func TestVirtualSizeRule(t *testing.T) {
	base := sampleFooter()
	base.CurrentSize = 10<<20 + 300 // current_size is read in whole sectors
	base.Cylinders, base.Heads, base.SectorsPerTrack = 302, 4, 17
	chs := int64(302 * 4 * 17 * 512)
	for _, tc := range []struct {
		app  string
		geo  geometry
		want int64
	}{
		{"win ", geometry{302, 4, 17}, 10 << 20},
		{"qem2", geometry{302, 4, 17}, 10 << 20},
		{"d2v ", geometry{302, 4, 17}, 10 << 20},
		{"tap\x00", geometry{302, 4, 17}, 10 << 20},
		{"CTXS", geometry{302, 4, 17}, 10 << 20},
		{"vpc ", geometry{302, 4, 17}, chs},
		{"qemu", geometry{302, 4, 17}, chs},
		{"vbox", geometry{302, 4, 17}, chs},
		{"wa\x00\x00", geometry{302, 4, 17}, chs},
		{"d2v\x00", geometry{302, 4, 17}, chs},
		{"d2v\x00", maxGeometry, 10 << 20},
		{"qemu", maxGeometry, 10 << 20},
	} {
		ft := base
		copy(ft.CreatorApp[:], tc.app)
		ft.Cylinders, ft.Heads, ft.SectorsPerTrack = tc.geo.Cylinders, tc.geo.Heads, tc.geo.SectorsPerTrack
		if got := ft.virtualSize(); got != tc.want {
			t.Errorf("creator %q geometry %v: size %d, want %d", tc.app, tc.geo, got, tc.want)
		}
	}
}

func TestWindowsPaths(t *testing.T) {
	for in, want := range map[string]string{
		`.\parent.vhd`:         "parent.vhd",
		`.\sub\p.vhd`:          "sub/p.vhd",
		`..\up\p.vhd`:          "../up/p.vhd",
		`C:\VMs\base.vhd`:      "/VMs/base.vhd",
		`\home\u\base.vhd`:     "/home/u/base.vhd",
		`p.vhd`:                "p.vhd",
		`\\?\D:\long\p.vhd`:    "/long/p.vhd",
		`\\server\share\p.vhd`: "//server/share/p.vhd",
	} {
		if got := windowsToSlash(in); got != want {
			t.Errorf("windowsToSlash(%q) = %q, want %q", in, got, want)
		}
	}
	if got := fileURLPath("file://localhost/Users/me/p.vhd"); got != "/Users/me/p.vhd" {
		t.Errorf("MacX path %q", got)
	}
}

func TestBitmapBytes(t *testing.T) {
	for bs, want := range map[int64]int64{512: 512, 4096: 512, 2 << 20: 512, 4 << 20: 1024, 256 << 20: 64 << 10} {
		if got := bitmapBytes(bs); got != want {
			t.Errorf("bitmapBytes(%d) = %d, want %d", bs, got, want)
		}
	}
	bm := make([]byte, 2)
	setBit(bm, 0)
	setBit(bm, 9)
	if !bytes.Equal(bm, []byte{0x80, 0x40}) || !bitSet(bm, 9) || bitSet(bm, 1) {
		t.Errorf("bitmap bit order: %x", bm)
	}
}
