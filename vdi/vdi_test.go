package vdi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

const mib = 1 << 20

func driver(t testing.TB) *formats.Driver {
	t.Helper()
	d, err := formats.Lookup(Name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func parseOpts(t testing.TB, text string) formats.Options {
	t.Helper()
	o, err := formats.ParseOptions(driver(t).CreateOptions, text)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// createFile makes a VDI image at path with vdisk's writer.
func createFile(t testing.TB, path string, size int64, opts string) *Image {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: parseOpts(t, opts)})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// createMem makes a VDI image in memory.
func createMem(t testing.TB, size int64, opts string) (*Image, *fileio.Mem) {
	t.Helper()
	m := fileio.NewMem("mem.vdi", nil)
	img, err := Create(context.Background(), formats.CreateRequest{File: m, Name: "mem.vdi", Size: size, Options: parseOpts(t, opts)})
	if err != nil {
		t.Fatal(err)
	}
	return img, m
}

func openPath(t testing.TB, path string, opts formats.OpenOptions) *Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := img.(*Image)
	if !ok {
		t.Fatalf("%s opened as %s", path, img.Format())
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func readAll(t testing.TB, img formats.Image) []byte {
	t.Helper()
	buf := make([]byte, img.Size())
	// Odd chunk sizes exercise run splitting.
	for off := int64(0); off < img.Size(); {
		n := min(int64(3*mib+4097), img.Size()-off)
		if _, err := img.ReadAt(buf[off:off+n], off); err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
		off += n
	}
	return buf
}

func TestReadQemuImages(t *testing.T) {
	cases := []struct {
		name   string
		size   string
		static bool
		writes []string
	}{
		{"dynamic-64M", "64M", false, []string{"write -P 0xab 0 64k", "write -P 0x12 1048576 2M", "write -P 0x34 40M 4097", "write -P 0x56 67104768 4096"}},
		{"static-5M", "5M", true, []string{"write -P 0xcd 4096 8192", "write -P 0x77 3M 1M"}},
		{"dynamic-odd", "3000001", false, []string{"write -P 0x99 2998784 1024", "write -P 0x11 0 512"}},
		{"static-odd", "2500000", true, []string{"write -P 0x42 1500000 1000000"}},
		{"dynamic-empty", "10M", false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.name+".vdi")
			qemutest.Img(t, "create", "-q", "-f", "vdi", "-o", fmt.Sprintf("static=%v", onOff(c.static)), path, c.size)
			if len(c.writes) > 0 {
				qemutest.IO(t, "vdi", path, c.writes...)
			}
			raw := qemutest.ToRaw(t, "vdi", path)
			want, err := os.ReadFile(raw)
			if err != nil {
				t.Fatal(err)
			}
			img := openPath(t, path, formats.OpenOptions{})
			if img.Size() != int64(len(want)) {
				t.Fatalf("size %d, qemu %d", img.Size(), len(want))
			}
			if !bytes.Equal(readAll(t, img), want) {
				t.Fatal("content differs from qemu-img convert -O raw")
			}
			if got, want := qemutest.BlockSHA(t, img), qemutest.FileBlockSHA(t, raw); got != want {
				t.Fatalf("BlockSHA through extents %s, raw %s", got, want)
			}
			if r := img.check(); r.Corruptions != 0 {
				t.Fatalf("check: %v", r.Messages)
			}
			info := img.Info()
			if info.ClusterSize != mib {
				t.Errorf("cluster size %d", info.ClusterSize)
			}
			wantType := map[bool]string{false: "dynamic", true: "static"}[c.static]
			if got := info.Details.(*Details).ImageType; got != wantType {
				t.Errorf("image-type %v, want %s", got, wantType)
			}
		})
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// pattern fills p with bytes derived from the virtual offset.
func pattern(p []byte, off int64) {
	for i := range p {
		x := off + int64(i)
		p[i] = byte(x*7 + x>>12 + 1)
	}
}

// writeMix writes the same mix of data and zeros to a VDI image and a raw
// file: partial blocks, runs of whole blocks, concurrent writers inside one
// block, and zeroed whole blocks.
func writeMix(t *testing.T, img *Image, raw *os.File) {
	t.Helper()
	size := img.Size()
	write := func(off, n int64) {
		p := make([]byte, n)
		pattern(p, off)
		if _, err := img.WriteAt(p, off); err != nil {
			t.Errorf("WriteAt(%d, %d): %v", off, n, err)
		}
		if _, err := raw.WriteAt(p, off); err != nil {
			t.Error(err)
		}
	}
	write(100, 5000)
	write(2*mib, 3*mib) // three whole blocks in one write
	write(6*mib-10, 20) // straddles two blocks
	var wg sync.WaitGroup
	for i := range int64(16) { // 16 writers inside blocks 8 and 9
		wg.Add(1)
		go func() {
			defer wg.Done()
			write(8*mib+i*(mib/8), mib/8)
		}()
	}
	wg.Wait()
	write(size-777, 777) // the tail
	// Zeros: whole free blocks become zero blocks, allocated ones are
	// overwritten.
	if err := img.WriteZeroes(11*mib, 2*mib); err != nil {
		t.Fatal(err)
	}
	if err := img.WriteZeroes(2*mib, mib); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, mib)
	raw.WriteAt(zero, 2*mib)
}

func TestWriteInterop(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
		opts string
	}{
		{"dynamic", 20 * mib, ""},
		{"static", 20 * mib, "static=on"},
		{"dynamic-odd", 20*mib + 3*512, "static=off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.vdi")
			rawPath := filepath.Join(dir, "want.raw")
			raw, err := os.Create(rawPath)
			if err != nil {
				t.Fatal(err)
			}
			raw.Truncate(c.size)
			img := createFile(t, path, c.size, c.opts)
			writeMix(t, img, raw)
			if err := img.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := img.Close(); err != nil {
				t.Fatal(err)
			}
			raw.Close()
			qemutest.RequireClean(t, "vdi", path)
			qemutest.RequireSame(t, "vdi", path, "raw", rawPath)
			back := openPath(t, path, formats.OpenOptions{})
			want, _ := os.ReadFile(rawPath)
			if !bytes.Equal(readAll(t, back), want) {
				t.Fatal("vdisk reads back different content")
			}
			requireQemuMap(t, back, path, c.opts == "static=on")
			if c.opts == "" {
				exts, err := back.Extents(11*mib, 2*mib)
				if err != nil {
					t.Fatal(err)
				}
				wantExt := []formats.Extent{{Offset: 11 * mib, Length: 2 * mib, Kind: formats.Zero, HostOffset: -1}}
				if diff := cmp.Diff(wantExt, exts); diff != "" {
					t.Errorf("zeroed blocks (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// requireQemuMap checks that qemu-img map sees data exactly where vdisk's
// Extents reports it, and, for a static image, everywhere.
func requireQemuMap(t *testing.T, img *Image, path string, static bool) {
	t.Helper()
	var qmap []struct {
		Start, Length int64
		Data          bool
	}
	if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "--output=json", "-f", "vdi", path)), &qmap); err != nil {
		t.Fatal(err)
	}
	var covered int64
	for _, q := range qmap {
		if static && !q.Data {
			t.Errorf("static image: qemu-img map reports %d+%d without data", q.Start, q.Length)
		}
		exts, err := img.Extents(q.Start, q.Length)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range exts {
			if (e.Kind == formats.Data) != q.Data {
				t.Errorf("%d+%d: vdisk %v, qemu-img data=%v", e.Offset, e.Length, e.Kind, q.Data)
			}
		}
		covered += q.Length
	}
	if covered != img.Size() {
		t.Errorf("qemu-img map covers %d of %d bytes", covered, img.Size())
	}
}

// TestHeaderVirtualBox checks the header fields VirtualBox's
// vdiValidateHeader looks at, on an image vdisk creates.
func TestHeaderVirtualBox(t *testing.T) {
	for _, static := range []bool{false, true} {
		img, m := createMem(t, 100*mib+512, "static="+onOff(static))
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		data := m.Bytes()
		h := decodeHeader(data)
		le := binary.LittleEndian
		check := func(what string, ok bool) {
			if !ok {
				t.Errorf("static=%v: %s (header %+v)", static, what, h)
			}
		}
		check("banner", strings.HasPrefix(string(data), "<<< Oracle VM VirtualBox Disk Image >>>\n"))
		check("signature", le.Uint32(data[64:]) == 0xBEDA107F)
		check("version 1.1", le.Uint32(data[68:]) == 0x00010001)
		check("header size 0x190", le.Uint32(data[72:]) == 0x190)
		check("type", h.Type == map[bool]uint32{false: 1, true: 2}[static])
		check("flags 0", h.Flags == 0)
		check("block map offset aligned to 1 MiB", h.BlocksOff >= 72+400 && h.BlocksOff%mib == 0)
		check("data offset aligned to 1 MiB after the map", uint64(h.DataOff) >= uint64(h.BlocksOff)+4*uint64(h.Blocks) && h.DataOff%mib == 0)
		check("legacy sector size", h.Legacy.SectorBytes == 512)
		check("LCHS sector size", h.LCHS.SectorBytes == 512)
		check("disk size", h.DiskBytes == 100*mib+512)
		check("block size 1 MiB", h.BlockBytes == mib && h.BlockExtraBytes == 0)
		check("block count", h.Blocks == 101 && uint64(h.Blocks)*uint64(h.BlockBytes) >= h.DiskBytes)
		check("allocated count", h.BlocksAllocated <= h.Blocks && (h.BlocksAllocated == h.Blocks) == static)
		check("creation UUID non-null", !h.UUIDCreate.isNull())
		check("modification UUID non-null", !h.UUIDModify.isNull() && h.UUIDModify != h.UUIDCreate)
		check("UUID version 4", h.UUIDCreate.rfc()[6]>>4 == 4)
		check("no parent", h.UUIDLinkage.isNull() && h.UUIDParentModify.isNull())
		want := int64(h.DataOff)
		if static {
			want += 101 * mib
		}
		check("file size", int64(len(data)) == want)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h, err := newHeader(12345*mib, false)
	if err != nil {
		t.Fatal(err)
	}
	h.Comment[0] = 'x'
	h.BlocksAllocated = 7
	h.UUIDLinkage[3] = 9
	got := decodeHeader(h.encode())
	if diff := cmp.Diff(h, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	// The 384-byte header has no LCHS geometry.
	h.HeaderBytes = header1Bytes
	got = decodeHeader(h.encode())
	h.LCHS = geometry{}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Fatalf("v1.1/384 round trip (-want +got):\n%s", diff)
	}
}

func TestUUIDString(t *testing.T) {
	u := uuid{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	if got, want := u.String(), "00112233-4455-6677-8899-aabbccddeeff"; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

// buildV0 makes a version 0 image: VDIHEADER0 after the pre-header, the
// map right after it, data right after the map.
func buildV0(blocks []uint32, data map[uint32][]byte, diskBytes uint64, blockBytes uint32) []byte {
	le := binary.LittleEndian
	mapOff := preHeaderBytes + header0Bytes
	dataOff := mapOff + 4*len(blocks)
	out := make([]byte, dataOff+int(blockBytes)*len(data))
	copy(out, "<<< InnoTek VirtualBox Disk Image >>>\n")
	le.PutUint32(out[64:], signature)
	le.PutUint32(out[68:], 0x00000001) // version 0.1
	p := out[preHeaderBytes:]
	le.PutUint32(p[0:], typeNormal)
	le.PutUint32(p[264+12:], sectorBytes)
	le.PutUint64(p[280:], diskBytes)
	le.PutUint32(p[288:], blockBytes)
	le.PutUint32(p[292:], uint32(len(blocks)))
	le.PutUint32(p[296:], uint32(len(data)))
	p[300] = 1 // uuidCreate
	for i, e := range blocks {
		le.PutUint32(out[mapOff+4*i:], e)
	}
	for idx, d := range data {
		copy(out[dataOff+int(idx)*int(blockBytes):], d)
	}
	return out
}

func TestReadVersion0(t *testing.T) {
	const bs = 4096
	a := bytes.Repeat([]byte{0xaa}, bs)
	b := bytes.Repeat([]byte{0xbb}, bs)
	file := buildV0([]uint32{1, blockFree, 0, blockZero}, map[uint32][]byte{0: b, 1: a}, 4*bs-100, bs)
	img, err := Open(context.Background(), fileio.NewMem("v0.vdi", file), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(append(append([]byte{}, a...), make([]byte, bs)...), b...), make([]byte, bs-100)...)
	if got := readAll(t, img); !bytes.Equal(got, want) {
		t.Fatal("version 0 content differs")
	}
	if got := img.(*Image).Info().Details.(*Details).Version; got != "0.1" {
		t.Errorf("version %v", got)
	}
}

// makeDiff writes base and child images: the child is a differencing
// image of the base with blocks 1 and 3 changed.
func makeDiff(t *testing.T, dir string) (basePath, childPath string, want []byte) {
	t.Helper()
	const size = 4 * mib
	basePath = filepath.Join(dir, "base.vdi")
	base := createFile(t, basePath, size, "")
	want = make([]byte, size)
	pattern(want, 0)
	if _, err := base.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	baseHdr := base.hdr
	if err := base.Close(); err != nil {
		t.Fatal(err)
	}
	childPath = filepath.Join(dir, "child.vdi")
	child := createFile(t, childPath, size, "")
	for _, b := range []int64{1, 3} {
		p := bytes.Repeat([]byte{byte(0x10 + b)}, mib/2)
		if _, err := child.WriteAt(p, b*mib+mib/4); err != nil {
			t.Fatal(err)
		}
		copy(want[b*mib:(b+1)*mib], make([]byte, mib))
		copy(want[b*mib+mib/4:], p)
	}
	child.hdr.Type = typeDiff
	child.hdr.UUIDLinkage = baseHdr.UUIDCreate
	child.hdr.UUIDParentModify = baseHdr.UUIDModify
	child.hdrDirty = true
	if err := child.Close(); err != nil {
		t.Fatal(err)
	}
	return basePath, childPath, want
}

func TestDifferencing(t *testing.T) {
	dir := t.TempDir()
	basePath, childPath, want := makeDiff(t, dir)

	_, err := formats.Open(context.Background(), childPath, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrUnsupported) || !strings.Contains(err.Error(), "--parent") {
		t.Fatalf("open without parent: %v", err)
	}
	decoy := filepath.Join(dir, "decoy.vdi")
	createFile(t, decoy, 4*mib, "").Close()
	img := openPath(t, childPath, formats.OpenOptions{Parents: []string{decoy, childPath, basePath}})
	if img.BackingPath() != basePath || img.BackingFormat() != "vdi" || img.Backing() == nil {
		t.Fatalf("backing %q %q", img.BackingPath(), img.BackingFormat())
	}
	if !bytes.Equal(readAll(t, img), want) {
		t.Fatal("differencing content differs")
	}
	exts, err := formats.ChainExtents(img, 0, 4*mib)
	if err != nil {
		t.Fatal(err)
	}
	depths := []int{}
	for _, e := range exts {
		depths = append(depths, e.Depth)
	}
	if diff := cmp.Diff([]int{1, 0, 1, 0}, depths); diff != "" {
		t.Errorf("chain depths (-want +got):\n%s", diff)
	}
	_, err = formats.Open(context.Background(), childPath, formats.OpenOptions{Parents: []string{decoy}})
	if !errors.Is(err, formats.ErrUnsupported) || !strings.Contains(err.Error(), "not among") {
		t.Fatalf("open with the wrong parent: %v", err)
	}
	// Written in part, a block the parent showed keeps the parent's bytes
	// around the write; zeros over part of such a block are written.
	w, err := formats.Open(context.Background(), childPath, formats.OpenOptions{Parents: []string{basePath}, Writable: true})
	if err != nil {
		t.Fatalf("writable differencing: %v", err)
	}
	for i, off := range []int64{0, 2*mib + 4096} {
		if _, err := w.(formats.Writable).WriteAt(bytes.Repeat([]byte{0xe0 + byte(i)}, 512), off+512); err != nil {
			t.Fatal(err)
		}
		copy(want[off+512:off+1024], bytes.Repeat([]byte{0xe0 + byte(i)}, 512))
	}
	if err := w.(formats.ZeroWriter).WriteZeroes(4096, 4096); err != nil {
		t.Fatal(err)
	}
	clear(want[4096:8192])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, openPath(t, childPath, formats.OpenOptions{Parents: []string{basePath}})); !bytes.Equal(got, want) {
		t.Fatal("differencing content after partial writes differs")
	}
	// An image that names itself as its parent does not recurse forever.
	self := filepath.Join(dir, "self.vdi")
	s := createFile(t, self, mib, "")
	s.hdr.Type, s.hdr.UUIDLinkage, s.hdrDirty = typeDiff, s.hdr.UUIDCreate, true
	s.Close()
	if _, err := formats.Open(context.Background(), self, formats.OpenOptions{Parents: []string{self, self}}); !errors.Is(err, formats.ErrUnsupported) {
		t.Fatalf("self parent: %v", err)
	}
}

func TestConcurrentAllocation(t *testing.T) {
	const size = 16 * mib
	img, m := createMem(t, size, "")
	want := make([]byte, size)
	rng := rand.New(rand.NewSource(1))
	// Random disjoint pieces: cut [0,size) at random points.
	cuts := []int64{0, size}
	for range 200 {
		cuts = append(cuts, rng.Int63n(size))
	}
	slices.Sort(cuts)
	var wg sync.WaitGroup
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i], cuts[i+1]
		if lo == hi || i%3 == 0 {
			continue
		}
		pattern(want[lo:hi], lo)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := img.WriteAt(want[lo:hi], lo); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := Open(context.Background(), fileio.NewMem("x.vdi", m.Bytes()), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, back), want) {
		t.Fatal("content differs after concurrent writes")
	}
	if r := back.(*Image).check(); r.Corruptions != 0 {
		t.Fatal(r.Messages)
	}
}

func TestReopenWritable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.vdi")
	img := createFile(t, path, 8*mib, "")
	p := bytes.Repeat([]byte{1}, 1000)
	img.WriteAt(p, 5*mib)
	img.Close()
	w := openPath(t, path, formats.OpenOptions{Writable: true})
	if _, err := w.WriteAt(p, 7*mib+5); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireClean(t, "vdi", path)
	r := openPath(t, path, formats.OpenOptions{})
	got := make([]byte, 1000)
	r.ReadAt(got, 7*mib+5)
	if !bytes.Equal(got, p) {
		t.Fatal("second write lost")
	}
}

func TestCheckCorruptMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.vdi")
	img := createFile(t, path, 4*mib, "")
	img.WriteAt(bytes.Repeat([]byte{1}, 2*mib), 0)
	mapOff := int64(img.hdr.BlocksOff)
	img.Close()
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	var e [4]byte
	binary.LittleEndian.PutUint32(e[:], 0) // block 2 -> data block 0, already used by block 0
	f.WriteAt(e[:], mapOff+8)
	binary.LittleEndian.PutUint32(e[:], 1000) // block 3 -> beyond the blocks
	f.WriteAt(e[:], mapOff+12)
	f.Close()
	v := openPath(t, path, formats.OpenOptions{})
	r, err := v.Check(context.Background(), formats.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	qr := qemutest.Check(t, "vdi", path)
	if qr.Code != 2 {
		t.Fatalf("qemu-img check exit %d: %s", qr.Code, qr.Stderr)
	}
	// qemu counts the same three problems (duplicate, too large, count).
	if r.Corruptions != 3 || !strings.Contains(qr.Stdout, `"corruptions": 3`) {
		t.Fatalf("vdisk %d corruptions %v; qemu %s", r.Corruptions, r.Messages, qr.Stdout)
	}
	if _, err := v.ReadAt(make([]byte, 10), 3*mib); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("read of a block beyond the map: %v", err)
	}
	if _, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: true}); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("writable open of a corrupt image: %v", err)
	}
}

func TestZeroSizeAndVersion10(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zero.vdi")
	createFile(t, path, 0, "").Close()
	qemutest.RequireClean(t, "vdi", path)
	if img := openPath(t, path, formats.OpenOptions{}); img.Size() != 0 {
		t.Fatalf("size %d", img.Size())
	}
	// Version 1.0 headers have the same layout as 1.1.
	data := seedImage(t)
	put32(data, 68, 0x00010000)
	img, err := Open(context.Background(), fileio.NewMem("v10.vdi", data), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := img.(*Image).Info().Details.(*Details).Version; v != "1.0" {
		t.Fatalf("version %v", v)
	}
	want := make([]byte, 4096)
	pattern(want, 0)
	got := make([]byte, 4096)
	img.ReadAt(got, 0)
	if !bytes.Equal(got, want) {
		t.Fatal("content")
	}
}

// TestBlockExtra reads a hand-made version 1.1 image with 4 KiB blocks and
// a 512-byte prefix before each block (cbBlockExtra), which VirtualBox
// allows and qemu refuses.
func TestBlockExtra(t *testing.T) {
	const bs, extra = 4096, 512
	h := header{Signature: signature, Version: version11, HeaderBytes: header1Bytes, Type: typeNormal,
		Legacy: geometry{SectorBytes: sectorBytes}, DiskBytes: 3*bs - 1000, BlockBytes: bs,
		BlockExtraBytes: extra, Blocks: 3, BlocksAllocated: 2, BlocksOff: 512, DataOff: 1024}
	h.UUIDCreate[0] = 1
	file := make([]byte, 1024+2*(bs+extra))
	copy(file, h.encode())
	put32(file, 512, 1)
	put32(file, 516, blockZero)
	put32(file, 520, 0)
	for i := range 2 {
		blk := file[1024+i*(bs+extra):]
		copy(blk[:extra], bytes.Repeat([]byte{0xee}, extra)) // the prefix is not data
		copy(blk[extra:extra+bs], bytes.Repeat([]byte{byte(0xa0 + i)}, bs))
	}
	img, err := Open(context.Background(), fileio.NewMem("extra.vdi", file), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Repeat([]byte{0xa1}, bs), make([]byte, bs)...), bytes.Repeat([]byte{0xa0}, bs-1000)...)
	if got := readAll(t, img); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	exts, _ := img.Extents(0, img.Size())
	kinds := []formats.ExtentKind{}
	for _, e := range exts {
		kinds = append(kinds, e.Kind)
	}
	if diff := cmp.Diff([]formats.ExtentKind{formats.Data, formats.Zero, formats.Data}, kinds); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
	if exts[0].HostOffset != 1024+bs+2*extra {
		t.Errorf("host offset %d", exts[0].HostOffset)
	}
}
