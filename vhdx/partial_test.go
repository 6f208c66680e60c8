package vhdx

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// TestPartiallyPresent crafts a differencing disk whose block 2 is
// PARTIALLY_PRESENT: sectors whose bit is set in the chunk's sector bitmap
// come from the child, the others from the parent.
func TestPartiallyPresent(t *testing.T) {
	for _, sector := range []int64{512, 4096} {
		t.Run(fmt.Sprint(sector), func(t *testing.T) { testPartial(t, sector) })
	}
}

func testPartial(t *testing.T, sector int64) {
	dir := t.TempDir()
	const size = 8 << 20
	opts := "block_size=1M,logical_sector_size=" + map[int64]string{512: "512", 4096: "4096"}[sector]
	basePath := filepath.Join(dir, "base.vhdx")
	base := create(t, basePath, size, opts)
	bp := makePattern(size, 11)
	writeConcurrently(t, base, bp)
	if err := base.Close(); err != nil {
		t.Fatal(err)
	}
	childPath := filepath.Join(dir, "child.vhdx")
	o, _ := formats.ParseOptions(createOptions, opts+",backing_file=base.vhdx")
	f, _ := os.Create(childPath)
	c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: childPath, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteAt(filled(1<<20, 0xdd), 5<<20); err != nil { // block 5 fully present
		t.Fatal(err)
	}
	chunkRatio := c.chunkRatio
	spb := c.sectorsPerBlk
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(childPath)
	blockOff := int64(len(b))
	bitmapOff := blockOff + 1<<20
	b = append(b, filled(1<<20, 0xee)...)
	bitmap := make([]byte, 1<<20)
	b = append(b, bitmap...)
	bitmap = b[bitmapOff:]
	want := append([]byte(nil), bp.data...)
	copy(want[5<<20:], filled(1<<20, 0xdd))
	const blk = 2
	runs := [][2]int64{{3, 10}, {12, 13}, {100, spb - 1}}
	if sector == 4096 {
		runs = [][2]int64{{0, 1}, {7, 100}, {200, spb}}
	}
	for _, r := range runs {
		for s := r[0]; s < r[1]; s++ {
			bit := (blk%chunkRatio)*spb + s
			bitmap[bit/8] |= 1 << (bit % 8)
			copy(want[blk<<20+s*sector:blk<<20+(s+1)*sector], filled(int(sector), 0xee))
		}
	}
	setBAT(b, blk, batEntry(payloadPartial, uint64(blockOff)))
	setBAT(b, chunkRatio, batEntry(bitmapPresent, uint64(bitmapOff)))
	if err := os.WriteFile(childPath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	img, err := formats.Open(context.Background(), childPath, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	requireSameAsRaw(t, img, writeRaw(t, want))
	exts, err := img.Extents(blk<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var data int64
	for _, e := range exts {
		if e.Kind == formats.Data {
			data += e.Length
			if e.HostOffset != blockOff+e.Offset-blk<<20 {
				t.Errorf("extent %+v: host offset, want %d", e, blockOff+e.Offset-blk<<20)
			}
		}
	}
	var wantData int64
	for _, r := range runs {
		wantData += (r[1] - r[0]) * sector
	}
	if data != wantData {
		t.Errorf("data extents cover %d bytes, want %d: %+v", data, wantData, exts)
	}
}
