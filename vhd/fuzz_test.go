package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
)

// fuzzParent is the parent every differencing seed resolves to.
func fuzzParent(tb testing.TB) []byte {
	return memImage(tb, 8<<10, "subformat=fixed,force_size=on", write{0, []byte("parent")})
}

// fuzzDynamic is a small dynamic disk (4 KiB blocks, two allocated): a
// seed of a few KiB, so the fuzzer mutates rather than minimises.
func fuzzDynamic(tb testing.TB) []byte {
	return memImage(tb, 16<<10, "force_size=on,block_size=4K", write{0, []byte("first block")}, write{12 << 10, []byte("another block")})
}

// diffSeed is a differencing disk over fuzzParent, built in memory.
func diffSeed(tb testing.TB, parent []byte) []byte {
	p, err := Open(context.Background(), fileio.NewMem("parent.vhd", parent), formats.OpenOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	m := fileio.NewMem("child.vhd", nil)
	img, err := newDifferencing(formats.CreateRequest{File: m, Name: "child.vhd"}, CreateOptions{BlockSize: 4 << 10}, p.(*Image), "parent.vhd")
	if err != nil {
		tb.Fatal(err)
	}
	apply(tb, img, []write{{100, []byte("child")}, {6 << 10, []byte("more")}})
	finish(tb, img)
	return m.Bytes()
}

// exercise runs every read-side operation on an open image.
func exercise(img formats.Image) {
	size := img.Size()
	buf := make([]byte, 64<<10)
	for _, off := range []int64{0, size / 2, size - 1, size - int64(len(buf))} {
		if off >= 0 {
			img.ReadAt(buf, off)
		}
	}
	img.Extents(0, min(size, 1<<40))
	formats.ChainExtents(img, 0, min(size, 1<<30))
	if c, ok := img.(formats.Checker); ok {
		c.Check(context.Background(), formats.CheckOptions{})
	}
	if i, ok := img.(formats.Informer); ok {
		i.Info()
	}
}

func FuzzOpen(f *testing.F) {
	// Inputs are patches over small valid disks (fuzzpatch): a whole image
	// as the input is minimised for a minute each time the fuzzer finds
	// new coverage.
	parent := fuzzParent(f)
	bases := [][]byte{fuzzDynamic(f), parent, diffSeed(f, parent),
		memImage(f, 8<<10, "force_size=on,block_size=512", write{5000, []byte("x")}),
		memImage(f, 4<<10, "subformat=fixed,force_size=on")}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	res := memResolver{parent}
	f.Fuzz(func(t *testing.T, input []byte) {
		data := fuzzpatch.Apply(bases, input)
		m := fileio.NewMem("fuzz.vhd", data)
		m.ReadOnly = true
		img, err := Open(context.Background(), m, formats.OpenOptions{Resolver: res, Limits: formats.Limits{MaxTableBytes: 1 << 20}})
		if err != nil {
			return
		}
		exercise(img)
		img.Close()
	})
}

func FuzzFooter(f *testing.F) {
	f.Add(smallDynamic(f)[:footerSize])
	fixed := memImage(f, 4<<10, "subformat=fixed,force_size=on")
	f.Add(fixed[len(fixed)-footerSize:])
	legacy := memImage(f, 4<<10, "subformat=fixed,force_size=on")
	f.Add(legacy[len(legacy)-footerSize : len(legacy)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		probe(formats.ProbeInput{Header: b, Tail: b, Size: int64(len(b))})
		if len(b) < legacyFooterSize {
			return
		}
		ft := decodeFooter(b)
		if size := ft.virtualSize(); size < 0 || size%sectorSize != 0 {
			t.Fatalf("virtual size %d", size)
		}
		enc := ft.encode()
		if checksum(enc, footerSumOff) != binary.BigEndian.Uint32(enc[footerSumOff:]) {
			t.Fatal("re-encoded footer checksum wrong")
		}
		if diff := cmp.Diff(ft, decodeFooter(enc)); diff != "" {
			t.Fatalf("round trip:\n%s", diff)
		}
	})
}

func FuzzHeader(f *testing.F) {
	// Inputs are patches over two real headers (fuzzpatch): 1 KiB inputs
	// are minimised at length each time the fuzzer finds new coverage.
	bases := [][]byte{fuzzDynamic(f)[footerSize : footerSize+headerSize], diffSeed(f, fuzzParent(f))[footerSize : footerSize+headerSize]}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		b := fuzzpatch.Apply(bases, input)
		if len(b) < headerSize {
			return
		}
		h := decodeHeader(b)
		h.parentName()
		enc := h.encode()
		if diff := cmp.Diff(h, decodeHeader(enc)); diff != "" {
			t.Fatalf("round trip:\n%s", diff)
		}
		if !bytes.Equal(enc[:headerSumOff], b[:headerSumOff]) {
			t.Fatal("fields before the checksum changed")
		}
	})
}

// FuzzBAT puts arbitrary BAT contents (and block size) into an otherwise
// valid dynamic disk, then reads it.
func FuzzBAT(f *testing.F) {
	f.Add(smallDynamic(f)[1536:1536+64], uint8(16))
	f.Add(bytes.Repeat([]byte{0, 0, 0, 4}, 4), uint8(9))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5}, uint8(12))
	f.Fuzz(func(t *testing.T, bat []byte, blockShift uint8) {
		entries := len(bat) / 4
		if entries == 0 || entries > 4096 || blockShift < 9 || blockShift > 20 {
			return
		}
		bs := int64(1) << blockShift
		img := buildWithBAT(t, bat[:4*entries], bs)
		im, err := Open(context.Background(), fileio.NewMem("bat.vhd", img), formats.OpenOptions{})
		if err != nil {
			return
		}
		exercise(im)
		// What opened must read without error.
		buf := make([]byte, min(im.Size(), 1<<20))
		if _, err := im.ReadAt(buf, 0); err != nil && err != io.EOF {
			t.Fatalf("read: %v", err)
		}
	})
}

// buildWithBAT assembles a dynamic disk of len(bat)/4 blocks of bs bytes
// with the given BAT and 64 KiB of data area.
func buildWithBAT(t testing.TB, bat []byte, bs int64) []byte {
	entries := len(bat) / 4
	p := plan{size: int64(entries) * bs, geo: maxGeometry, creator: creatorQemu2, blockSize: bs}
	ft := newFooter(p, typeDynamic, timeOf(0))
	h := dynHeader{DataOffset: noDataOffset, TableOffset: 1536, HeaderVersion: headerVersion,
		MaxTableEntries: uint32(entries), BlockSize: uint32(bs)}
	copy(h.Cookie[:], headerCookie)
	batEnd := roundUp(1536+int64(len(bat)), sectorSize)
	out := make([]byte, batEnd+64<<10+footerSize)
	copy(out, ft.encode())
	copy(out[footerSize:], h.encode())
	copy(out[1536:], bat)
	copy(out[len(out)-footerSize:], ft.encode())
	binary.BigEndian.PutUint32(out[batEnd:], 0xdeadbeef)
	return out
}

// TestRandomMutations opens seeds with random bytes changed in the
// structures (the first 2 KiB and the last sector) and runs every read-side
// operation on what opens: nothing may panic.
func TestRandomMutations(t *testing.T) {
	parent := fuzzParent(t)
	seeds := [][]byte{smallDynamic(t), parent, diffSeed(t, parent),
		memImage(t, 64<<10, "force_size=on,block_size=4K", write{5000, []byte("x")})}
	res := memResolver{parent}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		s := append([]byte(nil), seeds[i%len(seeds)]...)
		for range 1 + r.Intn(4) {
			p := r.Intn(min(len(s), 2048))
			if r.Intn(2) == 0 {
				p = len(s) - 1 - r.Intn(sectorSize)
			}
			s[p] = byte(r.Intn(256))
		}
		img, err := Open(context.Background(), fileio.NewMem("m.vhd", s), formats.OpenOptions{Resolver: res})
		if err == nil {
			exercise(img)
			img.Close()
		}
	}
}

// memResolver answers every reference the policy "any" allows with a
// memory copy of one image.
type memResolver struct{ data []byte }

func (r memResolver) Resolve(from, ref string) (string, error) {
	return formats.CheckName(formats.PolicyAny, from, ref)
}

func (r memResolver) Open(from, ref string, _ bool) (formats.File, error) {
	name, err := r.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	return fileio.NewMem(name, r.data), nil
}
