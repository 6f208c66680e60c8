package qcow2

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{Version: 2, ClusterBits: 16, Size: 1 << 30, L1Size: 2, L1TableOffset: 0x30000,
			RefcountTableOffset: 0x10000, RefcountTableClusters: 1, RefcountOrder: 4, HeaderLength: v2HeaderLength},
		{Version: 3, BackingFileOffset: 0x1a0, BackingFileSize: 9, ClusterBits: 21, Size: 12345 << 9,
			L1Size: 1, L1TableOffset: 3 << 21, RefcountTableOffset: 1 << 21, RefcountTableClusters: 1,
			NbSnapshots: 2, SnapshotsOffset: 4 << 21, IncompatibleFeatures: incompatCompression | incompatExtL2,
			CompatibleFeatures: compatLazyRefcounts, AutoclearFeatures: autoclearBitmaps, RefcountOrder: 6,
			HeaderLength: v3HeaderLength, CompressionType: compressionZstd},
		{Version: 3, ClusterBits: 9, RefcountOrder: 0, HeaderLength: 120, Extra: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	} {
		got, err := parseHeader(h.encode())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func TestExtensionsRoundTrip(t *testing.T) {
	e := extensions{BackingFormat: "qcow2", DataFile: "d.raw", Features: featureNames,
		Bitmaps: &bitmapsExt{NbBitmaps: 1, DirectorySize: 40, DirectoryOff: 0x50000},
		Unknown: []rawExt{{Type: 0x12345678, Data: []byte("abc")}}}
	area := e.encode(true)
	buf := append(make([]byte, v3HeaderLength), area...)
	got, err := parseExtensions("x", buf, v3HeaderLength, true)
	if err != nil {
		t.Fatal(err)
	}
	e.End = len(buf)
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestRefcountWidths(t *testing.T) {
	for _, bits := range []uint{1, 2, 4, 8, 16, 32, 64} {
		block := make([]byte, 512)
		n := int64(512 * 8 / int(bits))
		maxV := ^uint64(0)
		if bits < 64 {
			maxV = 1<<bits - 1
		}
		for i := range n {
			setRefcount(block, i, bits, uint64(i)%(maxV)+1&maxV)
		}
		for i := range n {
			if got, want := getRefcount(block, i, bits), uint64(i)%(maxV)+1&maxV; got != want {
				t.Fatalf("bits %d entry %d: got %d want %d", bits, i, got, want)
			}
		}
	}
	// Sub-byte entries pack from the least significant bit.
	block := make([]byte, 1)
	setRefcount(block, 0, 2, 1)
	setRefcount(block, 3, 2, 2)
	if block[0] != 0x81 {
		t.Fatalf("2-bit packing: %#x", block[0])
	}
}

func TestSnapshotTableParse(t *testing.T) {
	var tbl []byte
	add := func(id, name string, extra []byte) {
		e := make([]byte, snapshotFixedBytes)
		binary.BigEndian.PutUint64(e[0:], 0x70000)
		binary.BigEndian.PutUint32(e[8:], 4)
		binary.BigEndian.PutUint16(e[12:], uint16(len(id)))
		binary.BigEndian.PutUint16(e[14:], uint16(len(name)))
		binary.BigEndian.PutUint32(e[16:], 1700000000)
		binary.BigEndian.PutUint32(e[36:], uint32(len(extra)))
		e = append(append(append(e, extra...), id...), name...)
		for len(e)%8 != 0 {
			e = append(e, 0)
		}
		tbl = append(tbl, e...)
	}
	extra := make([]byte, 24)
	binary.BigEndian.PutUint64(extra[8:], 1<<20)
	binary.BigEndian.PutUint64(extra[16:], ^uint64(0))
	add("1", "first", extra)
	add("2", "second", nil)
	snaps, err := parseSnapshots("x", tbl, 0x80000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if snaps[0].DiskSize != 1<<20 || snaps[0].Name != "first" || snaps[1].ID != "2" || snaps[1].entryOffset != 0x80000+64+8 {
		t.Fatalf("%+v", snaps)
	}
	if got := snaps[0].info(); got.ICount != 0 || got.DateSec != 1700000000 {
		t.Fatalf("info %+v", got)
	}
	for spec, want := range map[string]int{"snapshot.id=2": 1, "snapshot.name=first": 0, "second": 1, "1": 0,
		"snapshot.id=1,snapshot.name=first": 0} {
		if i, ok := findSnapshot(snaps, spec); !ok || i != want {
			t.Errorf("%s: %d %v", spec, i, ok)
		}
	}
	if _, ok := findSnapshot(snaps, "snapshot.id=1,snapshot.name=second"); ok {
		t.Error("id and name of different snapshots matched")
	}
}

func TestCompressedDescriptor(t *testing.T) {
	for _, cb := range []uint{9, 12, 16, 21} {
		img := &Image{clusterBits: cb}
		img.geometry()
		off, n := int64(3*512+100), min(int64(1000), int64(1)<<cb-112)
		extra := uint64((off+n-1)>>9 - off>>9)
		e := uint64(off) | extra<<img.sectorsShift | oflagCompressed
		gotOff, gotN := img.compressedRange(e)
		if gotOff != off || gotN < n || gotN > n+511 {
			t.Errorf("cluster_bits %d: %d+%d", cb, gotOff, gotN)
		}
	}
}

func TestDeflateWindow(t *testing.T) {
	// Data whose best matches lie 8 KiB back: with a 4 KiB window the
	// encoder must not use them (qemu inflates with windowBits -12).
	block := make([]byte, 8192)
	for i := range block {
		block[i] = byte(i*7 + i/13)
	}
	cluster := append(bytes.Clone(block), block...)
	c := &codec{}
	out, _, err := c.compress(nil, cluster)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDistance(t, out); d > deflateWindow {
		t.Fatalf("back-reference distance %d exceeds %d", d, deflateWindow)
	}
	dst := make([]byte, len(cluster))
	if err := c.decompress(dst, out); err != nil || !bytes.Equal(dst, cluster) {
		t.Fatalf("round trip: %v", err)
	}
}

func TestDirtyImageWritable(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "d.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", path, "4M")
	qemutest.IO(t, "qcow2", path, "write -P 7 0 512k")
	l := readLayout(t, path)
	// Dirty bit set and a refcount lost: vdisk recomputes refcounts.
	setIncompat(t, path, incompatDirty)
	patch(t, path, l.blockOff+2*(l.dataOff/l.cs), be16(0))
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.(formats.Writable).WriteAt(bytes.Repeat([]byte{8}, 100000), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireClean(t, "qcow2", path)
	want := make([]byte, 4<<20)
	copy(want, bytes.Repeat([]byte{7}, 512<<10))
	copy(want[1<<20:], bytes.Repeat([]byte{8}, 100000))
	raw := filepath.Join(dir, "want.raw")
	os.WriteFile(raw, want, 0o644)
	qemutest.RequireSame(t, "qcow2", path, "raw", raw)
}

func TestRefStore(t *testing.T) {
	var r refStore
	for i, v := range []uint64{0, 1, 0xfffe, 0xffff, 1 << 40} {
		r.set(int64(i), v)
	}
	for i, want := range []uint64{0, 1, 0xfffe, 0xffff, 1 << 40, 0} {
		if got := r.get(int64(i)); got != want {
			t.Fatalf("entry %d: %d, want %d", i, got, want)
		}
	}
	r.set(3, 2)
	r.set(100, 1<<63)
	if r.get(3) != 2 || r.get(100) != 1<<63 || r.get(99) != 0 || len(r.big) != 2 {
		t.Fatalf("after set: %d %d %v", r.get(3), r.get(100), r.big)
	}
}
