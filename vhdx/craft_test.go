package vhdx

import (
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// memImage builds a VHDX in memory with the writer and returns its bytes.
func memImage(t testing.TB, size int64, opts string, writes map[int64][]byte) []byte {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	f := fileio.NewMem("mem.vhdx", nil)
	w, err := Create(context.Background(), formats.CreateRequest{File: f, Name: "mem.vhdx", Size: size, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range slices.Sorted(maps.Keys(writes)) { // allocation order = offset order
		if _, err := w.WriteAt(writes[off], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Bytes()
}

func openBytes(b []byte, opts formats.OpenOptions) (*Image, error) {
	return Open(context.Background(), fileio.NewMem("crafted.vhdx", b), opts)
}

// patchHeaders rewrites both headers through fn (with valid checksums).
func patchHeaders(b []byte, fn func(h *header)) {
	for _, at := range []int{header1Offset, header2Offset} {
		h, ok := decodeHeader(b[at:])
		if !ok {
			continue
		}
		fn(&h)
		copy(b[at:], h.encode())
	}
}

// patchRegions rewrites both region tables through fn.
func patchRegions(b []byte, fn func(rs []region) []region) {
	rs, err := decodeRegionTable(b[region1Offset:])
	if err != nil {
		panic(err)
	}
	rt := encodeRegionTable(fn(rs))
	copy(b[region1Offset:], rt)
	copy(b[region2Offset:], rt)
}

// regionOf returns the offset of a region.
func regionOf(b []byte, g guid) int64 {
	rs, _ := decodeRegionTable(b[region1Offset:])
	for _, r := range rs {
		if r.GUID == g {
			return int64(r.Offset)
		}
	}
	panic("no region")
}

// patchMeta rewrites the metadata table entries through fn.
func patchMeta(b []byte, fn func(es []metaEntry) []metaEntry) {
	off := regionOf(b, regionMetadata)
	es, err := decodeMetaTable(b[off:])
	if err != nil {
		panic(err)
	}
	copy(b[off:], encodeMetaTable(fn(es)))
}

// metaItem returns the bytes of a metadata item (to patch in place).
func metaItem(b []byte, g guid) []byte {
	off := regionOf(b, regionMetadata)
	es, _ := decodeMetaTable(b[off:])
	for _, e := range es {
		if e.GUID == g {
			return b[off+int64(e.Offset) : off+int64(e.Offset)+int64(e.Length)]
		}
	}
	panic("no item")
}

// setBAT sets BAT entry i.
func setBAT(b []byte, i int64, e uint64) {
	binary.LittleEndian.PutUint64(b[regionOf(b, regionBAT)+i*batEntrySize:], e)
}

func getBAT(b []byte, i int64) uint64 {
	return binary.LittleEndian.Uint64(b[regionOf(b, regionBAT)+i*batEntrySize:])
}

// logDesc is a change to put in a crafted log entry.
type logDesc struct {
	fileOff int64
	zeroLen int64  // zero descriptor when data is nil
	data    []byte // 4 KiB
}

// encodeLogEntry builds a valid log entry.
func encodeLogEntry(seq uint64, tail uint32, logGUID guid, flushed, last uint64, descs []logDesc) []byte {
	le := binary.LittleEndian
	descSectors := (len(descs) + 2 + 127) / 128
	nData := 0
	for _, d := range descs {
		if d.data != nil {
			nData++
		}
	}
	b := make([]byte, (descSectors+nData)*logSectorSize)
	copy(b, sigLogEntry[:])
	le.PutUint32(b[8:], uint32(len(b)))
	le.PutUint32(b[12:], tail)
	le.PutUint64(b[16:], seq)
	le.PutUint32(b[24:], uint32(len(descs)))
	copy(b[32:], logGUID[:])
	le.PutUint64(b[48:], flushed)
	le.PutUint64(b[56:], last)
	dataAt := descSectors * logSectorSize
	for i, d := range descs {
		e := b[(i+2)*logDescSize:]
		le.PutUint64(e[16:], uint64(d.fileOff))
		le.PutUint64(e[24:], seq)
		if d.data == nil {
			copy(e, sigDescZero[:])
			le.PutUint64(e[8:], uint64(d.zeroLen))
			continue
		}
		copy(e, sigDescData[:])
		copy(e[4:8], d.data[4092:])
		copy(e[8:16], d.data[0:8])
		s := b[dataAt : dataAt+logSectorSize]
		copy(s, sigDataSect[:])
		le.PutUint32(s[4:], uint32(seq>>32))
		copy(s[8:4092], d.data[8:4092])
		le.PutUint32(s[4092:], uint32(seq))
		dataAt += logSectorSize
	}
	setChecksum(b, 4)
	return b
}

// testLogGUID is the LogGuid of crafted logs.
var testLogGUID = mustGUID("11111111-2222-3333-4444-555555555555")

// addLog writes entries into the image's log (at log offset pos, wrapping)
// and sets the headers' LogGuid.
func addLog(b []byte, pos int64, entries ...[]byte) {
	h, _ := decodeHeader(b[header2Offset:])
	patchHeaders(b, func(h *header) { h.LogGUID = testLogGUID })
	for _, e := range entries {
		for i := 0; i < len(e); i += logSectorSize {
			at := (pos + int64(i)) % int64(h.LogLength)
			copy(b[int64(h.LogOffset)+at:], e[i:i+logSectorSize])
		}
		pos += int64(len(e))
	}
}
