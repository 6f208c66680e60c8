package vhd

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// memImage builds an image with vdisk's writer in memory and returns its
// bytes.
func memImage(t testing.TB, size int64, opts string, ws ...write) []byte {
	t.Helper()
	m := fileio.NewMem("mem.vhd", nil)
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Create(context.Background(), formats.CreateRequest{File: m, Name: "mem.vhd", Size: size, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, img, ws)
	finish(t, img)
	return m.Bytes()
}

func openMem(data []byte) (*Image, error) {
	img, err := Open(context.Background(), fileio.NewMem("t.vhd", data), formats.OpenOptions{})
	if err != nil {
		return nil, err
	}
	return img.(*Image), nil
}

// setFooter edits the footer at off (both copies when off < 0) and fixes
// its checksum.
func setFooter(b []byte, off int, fn func(*footer)) {
	offs := []int{off}
	if off < 0 {
		offs = []int{0, len(b) - footerSize}
	}
	for _, o := range offs {
		ft := decodeFooter(b[o : o+footerSize])
		fn(&ft)
		copy(b[o:], ft.encode())
	}
}

func setHeader(b []byte, fn func(*dynHeader)) {
	h := decodeHeader(b[footerSize : footerSize+headerSize])
	fn(&h)
	copy(b[footerSize:], h.encode())
}

// smallDynamic is a 1 MiB dynamic disk with 64 KiB blocks, two allocated.
func smallDynamic(t testing.TB) []byte {
	return memImage(t, 1<<20, "force_size=on,block_size=64K",
		write{0, []byte("first block")}, write{512 << 10, []byte("another block")})
}

func TestHostile(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		want error
	}{
		{"empty", func([]byte) []byte { return nil }, formats.ErrCorrupt},
		{"1 byte", func([]byte) []byte { return []byte{'c'} }, formats.ErrCorrupt},
		{"511 zeros", func([]byte) []byte { return make([]byte, 511) }, formats.ErrCorrupt},
		{"513 zeros", func([]byte) []byte { return make([]byte, 513) }, formats.ErrCorrupt},
		{"footer only", func(b []byte) []byte { return b[:footerSize] }, formats.ErrCorrupt},
		{"bad cookie both", func(b []byte) []byte {
			b[0], b[len(b)-footerSize] = 'x', 'x'
			return b
		}, formats.ErrCorrupt},
		{"bad checksum both", func(b []byte) []byte {
			b[70]++
			b[len(b)-footerSize+70]++
			return b
		}, formats.ErrCorrupt},
		{"unknown disk type", func(b []byte) []byte {
			setFooter(b, -1, func(ft *footer) { ft.DiskType = 5 })
			return b
		}, formats.ErrUnsupported},
		{"sparse bomb", func(b []byte) []byte {
			setFooter(b, -1, func(ft *footer) { ft.CurrentSize = 1<<63 - 1 })
			return b
		}, formats.ErrLimit},
		{"size 2^64-1", func(b []byte) []byte {
			setFooter(b, -1, func(ft *footer) { ft.CurrentSize = ^uint64(0) })
			return b
		}, formats.ErrLimit},
		{"header offset past EOF", func(b []byte) []byte {
			setFooter(b, -1, func(ft *footer) { ft.DataOffset = uint64(len(b)) })
			return b
		}, formats.ErrCorrupt},
		{"header offset 2^64-1", func(b []byte) []byte {
			setFooter(b, -1, func(ft *footer) { ft.DataOffset = ^uint64(0) - 5 })
			return b
		}, formats.ErrCorrupt},
		{"bad cxsparse", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.Cookie[0] = 'X' })
			return b
		}, formats.ErrCorrupt},
		{"block size 0", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.BlockSize = 0 })
			return b
		}, formats.ErrCorrupt},
		{"block size 511", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.BlockSize = 511 })
			return b
		}, formats.ErrCorrupt},
		{"block size 3 MiB", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.BlockSize = 3 << 20 })
			return b
		}, formats.ErrCorrupt},
		{"block size 2^31", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.BlockSize = 1 << 31 })
			return b
		}, formats.ErrLimit},
		{"max table entries 0xffffffff", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.MaxTableEntries = 0xffffffff })
			return b
		}, formats.ErrLimit},
		{"max table entries at the limit, past EOF", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.MaxTableEntries = formats.DefaultMaxTableBytes / 4 })
			return b
		}, formats.ErrCorrupt},
		{"max table entries over the limit", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.MaxTableEntries = formats.DefaultMaxTableBytes/4 + 1 })
			return b
		}, formats.ErrLimit},
		{"BAT too small", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.MaxTableEntries = 15 })
			return b
		}, formats.ErrCorrupt},
		{"BAT past EOF", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.TableOffset = uint64(len(b)) - 8 })
			return b
		}, formats.ErrCorrupt},
		{"BAT offset 2^64-1", func(b []byte) []byte {
			setHeader(b, func(h *dynHeader) { h.TableOffset = ^uint64(0) })
			return b
		}, formats.ErrCorrupt},
		{"BAT entry past EOF", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[1536+4*3:], uint32(len(b)/512))
			return b
		}, formats.ErrCorrupt},
		{"BAT entry 0xfffffffe", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[1536+4*3:], 0xfffffffe)
			return b
		}, formats.ErrCorrupt},
		{"BAT entry into the header", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[1536+4*3:], 1)
			return b
		}, formats.ErrCorrupt},
		{"BAT entry into the BAT", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[1536+4*3:], 3)
			return b
		}, formats.ErrCorrupt},
		{"BAT entries overlap", func(b []byte) []byte {
			first := binary.BigEndian.Uint32(b[1536:])
			binary.BigEndian.PutUint32(b[1536+4*3:], first+1)
			return b
		}, formats.ErrCorrupt},
		{"BAT entries equal", func(b []byte) []byte {
			copy(b[1536+4*3:], b[1536:1540])
			return b
		}, formats.ErrCorrupt},
		{"truncated last block", func(b []byte) []byte { return b[:len(b)-footerSize-4096] }, formats.ErrCorrupt},
		{"fixed bigger than the file", func([]byte) []byte {
			b := memImage(t, 64<<10, "subformat=fixed,force_size=on")
			setFooter(b, len(b)-footerSize, func(ft *footer) { ft.CurrentSize = 128 << 10 })
			return b
		}, formats.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(smallDynamic(t))
			_, err := openMem(b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBoundaries(t *testing.T) {
	// Values at the limit pass.
	b := smallDynamic(t)
	setHeader(b, func(h *dynHeader) { h.MaxTableEntries = 16 }) // exactly enough
	if _, err := openMem(b); err != nil {
		t.Errorf("16 entries: %v", err)
	}
	b = memImage(t, 1<<20, "force_size=on,block_size=512", write{0, []byte("x")})
	img, err := openMem(b)
	if err != nil || img.blockSize != 512 {
		t.Fatalf("512-byte blocks: %v", err)
	}
	b = smallDynamic(t)
	setFooter(b, -1, func(ft *footer) { ft.CurrentSize = 1 << 20 })
	if _, err := Open(context.Background(), fileio.NewMem("t.vhd", b), formats.OpenOptions{Limits: formats.Limits{MaxVirtualSize: 1 << 20}}); err != nil {
		t.Errorf("size at the limit: %v", err)
	}
	if _, err := Open(context.Background(), fileio.NewMem("t.vhd", b), formats.OpenOptions{Limits: formats.Limits{MaxVirtualSize: 1<<20 - 1}}); !errors.Is(err, formats.ErrLimit) {
		t.Errorf("size over the limit: %v", err)
	}
}

func TestTolerated(t *testing.T) {
	// The copy at 0 damaged: the trailing footer is used; the check says so.
	b := smallDynamic(t)
	b[70]++
	img, err := openMem(b)
	if err != nil {
		t.Fatal(err)
	}
	requireCheck(t, img, 1, "offset 0 has a bad checksum")

	// The trailing footer damaged (the copy at 0 is what qemu reads).
	b = smallDynamic(t)
	b[len(b)-10]++
	img, err = openMem(b)
	if err != nil {
		t.Fatal(err)
	}
	requireCheck(t, img, 1, "bad checksum")

	// The two copies disagree.
	b = smallDynamic(t)
	setFooter(b, len(b)-footerSize, func(ft *footer) { ft.Timestamp++ })
	img, _ = openMem(b)
	requireCheck(t, img, 1, "differs from the copy")

	// Trailing footer missing.
	b = smallDynamic(t)
	img, err = openMem(b[:len(b)-footerSize])
	if err != nil {
		t.Fatal(err)
	}
	requireCheck(t, img, 2, "no footer at the end")

	// Header checksum and data offset.
	b = smallDynamic(t)
	b[footerSize+9] = 0
	img, _ = openMem(b)
	requireCheck(t, img, 2, "header at offset 512 has a bad checksum")

	// A BAT longer than the disk needs: a warning, not a corruption.
	b = smallDynamic(t)
	setHeader(b, func(h *dynHeader) { h.MaxTableEntries = 17 })
	img, _ = openMem(b)
	requireCheck(t, img, 0, "Azure refuses")

	// A clean image.
	img, _ = openMem(smallDynamic(t))
	requireCheck(t, img, 0, "")
	img, _ = openMem(memImage(t, 1<<20, "subformat=fixed"))
	requireCheck(t, img, 0, "")
}

func requireCheck(t *testing.T, img *Image, corruptions int64, msg string) {
	t.Helper()
	rep, err := img.Check(context.Background(), formats.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Messages, "\n")
	if rep.Corruptions != corruptions || !strings.Contains(all, msg) {
		t.Errorf("corruptions %d (want %d), messages:\n%s", rep.Corruptions, corruptions, all)
	}
}

func TestCheckRepair(t *testing.T) {
	b := smallDynamic(t)
	b[len(b)-10]++               // trailing footer checksum
	b[footerSize+headerSumOff]++ // header checksum
	m := fileio.NewMem("t.vhd", b)
	im, err := Open(context.Background(), m, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	img := im.(*Image)
	rep, err := img.Check(context.Background(), formats.CheckOptions{RepairAll: true})
	if err != nil || rep.CorruptionsFixed != 2 || rep.Corruptions != 0 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	img2, err := openMem(m.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	requireCheck(t, img2, 0, "")
	// Read-only images are not repaired.
	ro, _ := openMem(b)
	if _, err := ro.Check(context.Background(), formats.CheckOptions{RepairAll: true}); !errors.Is(err, formats.ErrReadOnly) {
		t.Errorf("read-only repair: %v", err)
	}
}

func TestLocatorLimits(t *testing.T) {
	dir, _ := diffSetup(t, "force_size=on")
	child := dir + "/child.vhd"
	editHeader(t, child, func(h *dynHeader) { h.Locators[0].DataLength = maxLocatorBytes + 1 })
	if _, err := formats.Open(context.Background(), child, formats.OpenOptions{}); !errors.Is(err, formats.ErrLimit) {
		t.Errorf("huge locator: %v", err)
	}
	editHeader(t, child, func(h *dynHeader) { h.Locators[0].DataLength = 20; h.Locators[0].DataOffset = 1 << 40 })
	if _, err := formats.Open(context.Background(), child, formats.OpenOptions{}); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("locator past EOF: %v", err)
	}
	editHeader(t, child, func(h *dynHeader) {
		h.Locators = [numLocators]locator{}
		h.setParentName("")
	})
	if _, err := formats.Open(context.Background(), child, formats.OpenOptions{}); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("no locator: %v", err)
	}
	editHeader(t, child, func(h *dynHeader) { h.Locators[0] = locator{PlatformCode: platMac, DataLength: 4, DataOffset: 0} })
	if _, err := formats.Open(context.Background(), child, formats.OpenOptions{}); !errors.Is(err, formats.ErrUnsupported) {
		t.Errorf("Mac alias locator: %v", err)
	}
	// A disk that is its own parent.
	self := openPath(t, child, formats.OpenOptions{NoBacking: true}).ft.UniqueID
	editHeader(t, child, func(h *dynHeader) { h.ParentUniqueID = self; h.setParentName("child.vhd") })
	if _, err := formats.Open(context.Background(), child, formats.OpenOptions{}); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("self parent: %v", err)
	}
	// A protocol name is never opened.
	editHeader(t, child, func(h *dynHeader) { h.setParentName("nbd:localhost:10809"); h.ParentUniqueID = [16]byte{} })
	if _, err := formats.Open(context.Background(), child, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicyAny}}); !errors.Is(err, formats.ErrReferenceDenied) {
		t.Errorf("protocol parent: %v", err)
	}
}
