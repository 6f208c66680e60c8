package vhdx

import (
	"github.com/vdiskio/vdisk/formats"
	"hash/crc32"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCRC32C(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xE3069283 {
		t.Fatalf("CRC-32C check value %#x", got)
	}
	b := []byte("abcd\xff\xff\xff\xffefgh")
	setChecksum(b, 4)
	if !validChecksum(b, 4) {
		t.Fatal("checksum does not verify")
	}
	b[9] ^= 1
	if validChecksum(b, 4) {
		t.Fatal("corruption not detected")
	}
}

func TestGUIDByteOrder(t *testing.T) {
	// formats.md §2.9.
	cases := map[string]string{
		"2DC27766-F623-4200-9D64-115E9BFD4A08": "6677c22d23f600429d64115e9bfd4a08",
		"8B7CA206-4790-4B9A-B8FE-575F050F886E": "06a27c8b90479a4bb8fe575f050f886e",
		"B04AEFB7-D19E-4A81-B789-25B8E9445913": "b7ef4ab09ed1814ab78925b8e9445913",
	}
	for text, hex := range cases {
		g := mustGUID(text)
		if got := bytesHex(g[:]); got != hex {
			t.Errorf("%s: bytes %s, want %s", text, got, hex)
		}
		if g.String() != text {
			t.Errorf("String %s, want %s", g, text)
		}
		if back, err := parseGUID("{" + text + "}"); err != nil || back != g {
			t.Errorf("braced parse: %v %v", back, err)
		}
	}
	for _, bad := range []string{"", "nonsense", "2DC27766-F623-4200-9D64-115E9BFD4A0G", "2DC27766F62342009D64115E9BFD4A08xxxx"} {
		if _, err := parseGUID(bad); err == nil {
			t.Errorf("parseGUID(%q) accepted", bad)
		}
	}
	g1, _ := newGUID()
	g2, _ := newGUID()
	if g1 == g2 || g1.isZero() || g1.String()[14] != '4' {
		t.Errorf("newGUID: %v %v", g1, g2)
	}
}

func bytesHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{Sequence: 1, Version: 1, LogLength: 1 << 20, LogOffset: 1 << 20},
		{Sequence: 1<<64 - 1, FileWriteGUID: mustGUID("11111111-2222-3333-4444-555555555555"),
			DataWriteGUID: mustGUID("AAAAAAAA-2222-3333-4444-555555555555"), LogGUID: testLogGUID, Version: 1, LogVersion: 0,
			LogLength: 4 << 20, LogOffset: 7 << 20},
	} {
		got, ok := decodeHeader(h.encode())
		if !ok {
			t.Fatal("encoded header does not decode")
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	b := header{Version: 1}.encode()
	b[0] = 'H'
	if _, ok := decodeHeader(b); ok {
		t.Error("bad signature accepted")
	}
}

func TestRegionTableRoundTrip(t *testing.T) {
	rs := []region{
		{GUID: regionBAT, Offset: 3 << 20, Length: 1 << 20, Required: true},
		{GUID: regionMetadata, Offset: 2 << 20, Length: 1 << 20},
	}
	got, err := decodeRegionTable(encodeRegionTable(rs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestMetaTableRoundTrip(t *testing.T) {
	es := []metaEntry{
		{GUID: itemFileParams, Offset: 64 << 10, Length: 8, Flags: metaFlagRequired, Required: true},
		{GUID: itemPage83, Offset: 64<<10 + 8, Length: 16, Flags: metaFlagVirtualDisk | metaFlagUser},
	}
	got, err := decodeMetaTable(encodeMetaTable(es))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(es, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParentLocatorRoundTrip(t *testing.T) {
	pl := parentLocator{Keys: []string{"parent_linkage", "relative_path", "absolute_win32_path"}, Values: map[string]string{
		"parent_linkage":      "{83FA0B0C-1D2E-4F50-8192-A3B4C5D6E7F8}",
		"relative_path":       `..\dir\pärent.vhdx`,
		"absolute_win32_path": `\\?\C:\dir\pärent.vhdx`,
	}}
	got, err := decodeParentLocator(pl.encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pl, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Many entries naming the same long string: decoding must not multiply it.
	shared := make([]byte, 20+1000*12+60000)
	copy(shared, parentLocatorType[:])
	shared[18], shared[19] = byte(1000&0xff), byte(1000>>8)
	for i := 0; i < 1000; i++ {
		e := shared[20+i*12:]
		e[0], e[1] = byte((20+1000*12)&0xff), byte((20+1000*12)>>8)
		e[4], e[5] = e[0], e[1]
		e[8], e[9], e[10], e[11] = 0x60, 0xea, 0x60, 0xea // 60000 bytes each
	}
	if _, err := decodeParentLocator(shared); err == nil {
		t.Error("overlapping strings accepted")
	}
	bad := pl.encode()
	bad[20] = 0xff // key offset out of the item
	bad[21] = 0xff
	if _, err := decodeParentLocator(bad); err == nil {
		t.Error("out-of-range key accepted")
	}
}

func TestBATEntry(t *testing.T) {
	cases := []struct {
		state uint8
		off   uint64
	}{{payloadFull, 5 << 20}, {payloadZero, 0}, {bitmapPresent, 1 << 40}}
	for _, c := range cases {
		e := batEntry(c.state, c.off)
		if batState(e) != c.state || batOffset(e) != int64(c.off) {
			t.Errorf("entry %#x: state %d offset %d", e, batState(e), batOffset(e))
		}
	}
	img := &Image{chunkRatio: 4}
	// payload blocks 0-3 at 0-3, bitmap at 4, blocks 4-7 at 5-8, bitmap at 9.
	for blk, want := range []int64{0, 1, 2, 3, 5, 6, 7, 8, 10} {
		if got := img.batIndex(int64(blk)); got != want {
			t.Errorf("batIndex(%d) = %d, want %d", blk, got, want)
		}
	}
	if img.bitmapIndex(5) != 9 || !img.isBitmapIndex(9) || img.isBitmapIndex(8) {
		t.Error("bitmap index arithmetic")
	}
	img.payloadBlocks = 9
	if img.batEntries() != 11 {
		t.Errorf("batEntries %d, want 11", img.batEntries())
	}
	img.hasParent = true
	if img.batEntries() != 15 {
		t.Errorf("differencing batEntries %d, want 15", img.batEntries())
	}
}

func TestProbeAndInfo(t *testing.T) {
	b := memImage(t, 8<<20, "block_size=2M", nil)
	if got := probe(formats.ProbeInput{Header: b[:4096], Size: int64(len(b))}); got != formats.ProbeCertain {
		t.Errorf("probe %d", got)
	}
	if got := probe(formats.ProbeInput{Header: []byte("conectix"), Size: 512}); got != formats.ProbeNone {
		t.Errorf("probe of a VHD footer %d", got)
	}
	img, err := openBytes(b, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(formats.Info{ClusterSize: 2 << 20}, img.Info()); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
	if img.Backing() != nil || img.BackingName() != "" || img.BackingFormat() != "" || img.Format() != "vhdx" {
		t.Errorf("standalone disk reports a backing file")
	}
}
