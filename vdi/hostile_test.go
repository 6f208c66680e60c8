package vdi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
)

// seedImage is a small valid dynamic image with two allocated blocks.
func seedImage(t testing.TB) []byte {
	t.Helper()
	img, m := createMem(t, 3*mib+512, "")
	p := make([]byte, 4096)
	pattern(p, 0)
	img.WriteAt(p, 0)
	img.WriteAt(p, 2*mib+100)
	if err := img.WriteZeroes(mib, mib); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	return m.Bytes()
}

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }

// TestHostileHeaders covers security.md §7's VDI list: each crafted image
// fails to open with the right sentinel.
func TestHostileHeaders(t *testing.T) {
	cases := []struct {
		name  string
		patch func(b []byte) []byte
		want  error
	}{
		{"empty", func(b []byte) []byte { return nil }, formats.ErrCorrupt},
		{"truncated header", func(b []byte) []byte { return b[:300] }, formats.ErrCorrupt},
		{"bad signature", func(b []byte) []byte { put32(b, 64, 0xBEDA107E); return b }, formats.ErrCorrupt},
		{"version 1.2", func(b []byte) []byte { put32(b, 68, 0x00010002); return b }, formats.ErrUnsupported},
		{"version 2.0", func(b []byte) []byte { put32(b, 68, 0x00020000); return b }, formats.ErrUnsupported},
		{"header size 383", func(b []byte) []byte { put32(b, 72, 383); return b }, formats.ErrCorrupt},
		{"header size huge", func(b []byte) []byte { put32(b, 72, 0xffffffff); return b }, formats.ErrCorrupt},
		{"type 0", func(b []byte) []byte { put32(b, 76, 0); return b }, formats.ErrCorrupt},
		{"type 5", func(b []byte) []byte { put32(b, 76, 5); return b }, formats.ErrCorrupt},
		{"unknown flag", func(b []byte) []byte { put32(b, 80, 1); return b }, formats.ErrUnsupported},
		{"map offset unaligned", func(b []byte) []byte { put32(b, 340, mib+1); return b }, formats.ErrCorrupt},
		{"data offset unaligned", func(b []byte) []byte { put32(b, 344, 2*mib+256); return b }, formats.ErrCorrupt},
		{"map inside header", func(b []byte) []byte { put32(b, 340, 0); return b }, formats.ErrCorrupt},
		{"data overlaps map", func(b []byte) []byte { put32(b, 344, mib); return b }, formats.ErrCorrupt},
		{"map past EOF", func(b []byte) []byte { put32(b, 340, 0x7ffffe00); put32(b, 344, 0x7ffffe00+512*4096); return b }, formats.ErrCorrupt},
		{"sector size 4096", func(b []byte) []byte { put32(b, 360, 4096); return b }, formats.ErrCorrupt},
		{"block size 0", func(b []byte) []byte { put32(b, 376, 0); return b }, formats.ErrCorrupt},
		{"block size 3 MiB", func(b []byte) []byte { put32(b, 376, 3*mib); return b }, formats.ErrCorrupt},
		{"block size 1 GiB", func(b []byte) []byte { put32(b, 376, 1<<30); return b }, formats.ErrCorrupt},
		{"block extra not pow2", func(b []byte) []byte { put32(b, 380, 3); return b }, formats.ErrCorrupt},
		{"blocks 536870785", func(b []byte) []byte { put32(b, 384, 536870785); return b }, formats.ErrLimit},
		{"blocks 0xffffffff", func(b []byte) []byte { put32(b, 384, 0xffffffff); return b }, formats.ErrLimit},
		{"blocks over table limit", func(b []byte) []byte {
			put32(b, 384, 100<<20)
			put32(b, 344, 0xfff00000)
			binary.LittleEndian.PutUint64(b[368:], 100<<40)
			return b
		}, formats.ErrLimit},
		{"disk size beyond blocks", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[368:], 4*mib+1); return b }, formats.ErrCorrupt},
		{"disk size 2^63", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[368:], 1<<63); return b }, formats.ErrLimit},
		{"disk size 2^64-1", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[368:], ^uint64(0)); return b }, formats.ErrLimit},
		{"allocated beyond blocks", func(b []byte) []byte { put32(b, 388, 5); return b }, formats.ErrCorrupt},
		{"parent UUID without parent", func(b []byte) []byte { b[424] = 1; return b }, formats.ErrUnsupported},
		{"differencing type without parent", func(b []byte) []byte { put32(b, 76, typeDiff); b[430] = 7; return b }, formats.ErrUnsupported},
	}
	seed := seedImage(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.patch(append([]byte(nil), seed...))
			_, err := Open(context.Background(), fileio.NewMem("hostile.vdi", b), formats.OpenOptions{})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// The limit itself passes the block-count check (it then fails the
	// table-size limit, which the caller may raise).
	b := append([]byte(nil), seed...)
	put32(b, 384, maxBlocks)
	binary.LittleEndian.PutUint64(b[368:], 4*mib)
	put32(b, 344, 0xfff00000)
	h := decodeHeader(b)
	if err := h.validate("x", formats.Limits{MaxTableBytes: 4 << 30}); err != nil {
		t.Fatalf("blocks at the limit: %v", err)
	}
}

// TestHostileMap: entries beyond the block count or past the end of the
// file give clean errors on read; duplicates are reported by Check.
func TestHostileMap(t *testing.T) {
	seed := seedImage(t)
	h := decodeHeader(seed)
	mapOff := int(h.BlocksOff)

	beyond := append([]byte(nil), seed...)
	put32(beyond, mapOff+4*2, 3) // index 3 of 4 blocks: valid index, but past EOF
	img, err := Open(context.Background(), fileio.NewMem("eof.vdi", beyond), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.ReadAt(make([]byte, 512), 2*mib); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("block past EOF: %v", err)
	}

	big := append([]byte(nil), seed...)
	put32(big, mapOff, 0x7fffffff)
	img, err = Open(context.Background(), fileio.NewMem("big.vdi", big), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.ReadAt(make([]byte, 512), 0); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("index beyond the map: %v", err)
	}
	if _, err := img.Extents(0, img.Size()); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("extents of an index beyond the map: %v", err)
	}

	dup := append([]byte(nil), seed...)
	put32(dup, mapOff+4*2, 0)
	img, err = Open(context.Background(), fileio.NewMem("dup.vdi", dup), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := img.(*Image).check(); r.Corruptions != 1 {
		t.Fatalf("duplicate: %+v", r)
	}
}

// TestSparseBomb: a huge virtual size with a tiny file opens only within
// the limits and never allocates by the virtual size.
func TestSparseBomb(t *testing.T) {
	b := append([]byte(nil), seedImage(t)...)
	put32(b, 384, 16<<20) // 16 Mi blocks = 16 TiB, a 64 MiB map
	binary.LittleEndian.PutUint64(b[368:], 16<<40)
	put32(b, 344, 0xfff00000)
	_, err := Open(context.Background(), fileio.NewMem("bomb.vdi", b), formats.OpenOptions{Limits: formats.Limits{MaxVirtualSize: 1 << 40}})
	if !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("virtual size limit: %v", err)
	}
	_, err = Open(context.Background(), fileio.NewMem("bomb.vdi", b), formats.OpenOptions{})
	if !errors.Is(err, formats.ErrCorrupt) { // the map does not fit in the file
		t.Fatalf("map past EOF: %v", err)
	}
}

func TestCorpusSeedsOpen(t *testing.T) {
	// Seeds kept in testdata open (they also seed the fuzzer).
	paths, _ := filepath.Glob("testdata/*.vdi")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Open(context.Background(), fileio.NewMem(p, data), formats.OpenOptions{})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		readAll(t, img)
	}
}

func FuzzOpen(f *testing.F) {
	// Inputs are patches over small valid images (fuzzpatch): a whole image
	// as the input is minimised for a minute each time the fuzzer finds
	// new coverage.
	bases := [][]byte{
		buildV0([]uint32{1, blockFree, 0}, map[uint32][]byte{0: {1}, 1: {2}}, 3*512, 512),
		mapImage([]byte{0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff}, 2)}
	paths, _ := filepath.Glob("testdata/*.vdi")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil && len(data) <= 64<<10 {
			bases = append(bases, data)
		}
	}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		data := fuzzpatch.Apply(bases, input)
		lim := formats.Limits{MaxVirtualSize: 8 << 20, MaxTableBytes: 1 << 20}
		img, err := Open(context.Background(), fileio.NewMem("fuzz.vdi", data), formats.OpenOptions{Limits: lim, Parents: []string{"/nonexistent"}})
		if err != nil {
			return
		}
		defer img.Close()
		// The first 512 KiB and the last 64 KiB (reading all 8 MiB the
		// limit allows took milliseconds an input); Extents walks the
		// whole map.
		buf := make([]byte, 64<<10)
		for off := int64(0); off < min(img.Size(), 512<<10); off += int64(len(buf)) {
			if _, err := img.ReadAt(buf, off); err != nil && err != io.EOF {
				break
			}
		}
		img.ReadAt(buf, max(0, img.Size()-int64(len(buf))))
		img.Extents(0, img.Size())
		v := img.(*Image)
		v.check()
		v.Info()
	})
}

// mapImage is a small version 1.1 image in qemu's layout (map at 512,
// data at 1024) with 16 blocks of 2 KiB whose map entries come from m: 33
// KiB, a fuzz base.
func mapImage(m []byte, allocated uint32) []byte {
	const bs, blocks = 2048, 16
	h := header{Signature: signature, Version: version11, HeaderBytes: header1Bytes, Type: typeNormal,
		Legacy: geometry{SectorBytes: sectorBytes}, DiskBytes: blocks*bs - 100, BlockBytes: bs,
		Blocks: blocks, BlocksAllocated: allocated, BlocksOff: 512, DataOff: 1024}
	h.UUIDCreate[0] = 1
	file := make([]byte, 1024+blocks*bs)
	copy(file, h.encode())
	copy(file[512:512+4*blocks], m)
	for i := 1024; i < len(file); i++ {
		file[i] = byte(i / bs)
	}
	return file
}

// FuzzBlockMap fuzzes the block map (and the allocated count) of a small
// image: reads, extents and check never fail badly, and when the image is
// writable, writes read back.
func FuzzBlockMap(f *testing.F) {
	ident := make([]byte, 64)
	for i := range 16 {
		put32(ident, 4*i, uint32(i))
	}
	f.Add(ident, uint32(16))
	free := bytes.Repeat([]byte{0xff}, 64)
	f.Add(free, uint32(0))
	mixed := append([]byte(nil), free...)
	put32(mixed, 4, 0)
	put32(mixed, 8, blockZero)
	put32(mixed, 12, 1)
	f.Add(mixed, uint32(2))
	f.Fuzz(func(t *testing.T, m []byte, allocated uint32) {
		file := mapImage(m, allocated)
		mem := fileio.NewMem("map.vdi", file)
		img, err := Open(context.Background(), mem, formats.OpenOptions{})
		if err != nil {
			return
		}
		buf := make([]byte, img.Size())
		img.ReadAt(buf, 0)
		img.Extents(0, img.Size())
		img.(*Image).check()
		w, err := Open(context.Background(), mem, formats.OpenOptions{Writable: true})
		if err != nil {
			return
		}
		data := bytes.Repeat([]byte{0x5a}, 6000)
		if _, err := w.(formats.Writable).WriteAt(data, 5000); errors.Is(err, formats.ErrCorrupt) {
			w.Close() // leaked blocks filled the data area: refused, as it must be
			return
		} else if err != nil {
			t.Fatalf("write to a writable image: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		back, err := Open(context.Background(), fileio.NewMem("back.vdi", mem.Bytes()), formats.OpenOptions{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got := make([]byte, len(data))
		if _, err := back.ReadAt(got, 5000); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %v", err)
		}
		if r := back.(*Image).check(); r.Corruptions != 0 {
			t.Fatalf("check after write: %v", r.Messages)
		}
	})
}
