package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zlib"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// sampleSparse returns a small monolithicSparse image written by vdisk.
func sampleSparse(t testing.TB, opts string) []byte {
	t.Helper()
	mem := fileio.NewMem("s.vmdk", nil)
	w := createWith(t, mem, 4<<20, opts, 3)
	if _, err := w.WriteAt(bytes.Repeat([]byte("vmdk"), 40000), 1000); err != nil {
		t.Fatal(err)
	}
	finish(t, w)
	return mem.Bytes()
}

func sampleStream(t testing.TB) []byte { return sampleSparse(t, "subformat=streamOptimized") }

// openBytes opens data as a VMDK and reads it all (errors from reads count).
func openBytes(data []byte) error {
	img, err := Open(context.Background(), fileio.NewMem("h.vmdk", data), formats.OpenOptions{})
	if err != nil {
		return err
	}
	defer img.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < img.Size(); off += int64(len(buf)) {
		if _, err := img.ReadAt(buf, off); err != nil && err.Error() != "EOF" {
			return err
		}
	}
	return nil
}

func put32(b []byte, off int, v uint32) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func put64(b []byte, off int, v uint64) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint64(b[off:], v)
	return b
}

func TestHostileHeaders(t *testing.T) {
	sp := sampleSparse(t, "")
	st := sampleStream(t)
	h := decodeHeader(sp)
	sh := decodeHeader(st)
	footer := len(st) - 2*sectorSize
	gdOff := int(h.GDOffset) * sectorSize
	gt0 := int(binary.LittleEndian.Uint32(sp[gdOff:])) * sectorSize
	grain0 := int(binary.LittleEndian.Uint32(st[int(decodeHeader(st[footer:]).GDOffset)*sectorSize:])) // GT of the stream
	streamGTE := int(binary.LittleEndian.Uint32(st[grain0*sectorSize:])) * sectorSize

	evil := zlibBomb(t, 1<<20)
	bomb := bytes.Clone(st)
	binary.LittleEndian.PutUint32(bomb[streamGTE+8:], uint32(len(evil)))
	copy(bomb[streamGTE+12:], evil)

	notZlib := bytes.Clone(st)
	copy(notZlib[streamGTE+12:], "garbage garbage garbage")

	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, formats.ErrCorrupt},
		{"1 byte", []byte{'K'}, formats.ErrCorrupt},
		{"511 bytes", sp[:511], formats.ErrCorrupt},
		{"512 bytes", sp[:512], formats.ErrCorrupt},
		{"513 bytes", sp[:513], formats.ErrCorrupt},
		{"version 0", put32(sp, 4, 0), formats.ErrUnsupported},
		{"version 4", put32(sp, 4, 4), formats.ErrUnsupported},
		{"gtes 0", put32(sp, 44, 0), formats.ErrLimit},
		{"gtes 513", put32(sp, 44, 513), formats.ErrLimit},
		{"gtes 1024", put32(sp, 44, 1024), formats.ErrLimit},
		{"grain 0", put64(sp, 20, 0), formats.ErrLimit},
		{"grain 0x200001", put64(sp, 20, 0x200001), formats.ErrLimit},
		{"capacity 2^64-1", put64(sp, 12, 1<<64-1), formats.ErrLimit},
		{"capacity over 32Mi GD entries", put64(sp, 12, 1<<50), formats.ErrLimit},
		{"overhead past EOF", put64(sp, 64, 1<<40), formats.ErrCorrupt},
		{"GD past EOF", put64(sp, 56, uint64(len(sp))/sectorSize), formats.ErrCorrupt},
		{"GD entry past EOF", put32(sp, gdOff, 0xfffffff0), formats.ErrCorrupt},
		{"GT entry past EOF", put32(sp, gt0, 0xfffffff0), formats.ErrCorrupt},
		{"descriptor at sector 2", put64(sp, 28, 2), formats.ErrCorrupt},
		{"descriptor 1 MiB", put64(sp, 36, 1<<11), formats.ErrLimit},
		{"descriptor huge", put64(sp, 36, 1<<60), formats.ErrLimit},
		{"compression 2", put32(sp, 77, 2), formats.ErrUnsupported},
		{"footer version differs", put32(st, footer+4, 2), formats.ErrCorrupt},
		{"footer announces footer", put64(st, footer+56, gdAtEnd), formats.ErrCorrupt},
		{"footer marker type", put32(st, footer-sectorSize+12, 1), formats.ErrCorrupt},
		{"EOS not zero", put32(st, len(st)-sectorSize+100, 1), formats.ErrCorrupt},
		{"grain marker too large", put32(st, streamGTE+8, uint32(sh.GrainSize*sectorSize*2)), formats.ErrCorrupt},
		{"grain marker wrong LBA", put64(st, streamGTE, 999), formats.ErrCorrupt},
		{"deflate bomb", bomb, formats.ErrCorrupt},
		{"corrupt deflate", notZlib, formats.ErrCorrupt},
		{"COWD", put32(sp, 0, cowdMagic), formats.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openBytes(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// zlibBomb returns a small zlib stream of n zero bytes.
func zlibBomb(t testing.TB, n int) []byte {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	zw.Write(make([]byte, n))
	zw.Close()
	return b.Bytes()
}

const goodDesc = `# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 2048 FLAT "d-flat.vmdk" 0

# The Disk Data Base
#DDB
ddb.adapterType = "ide"
`

// openDesc writes a descriptor (and a 1 MiB flat extent) into a fresh
// directory and opens it with the default policy.
func openDesc(t *testing.T, desc string) error {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "d-flat.vmdk"), bytes.Repeat([]byte{7}, 1<<20), 0o644)
	os.Symlink("/dev/null", filepath.Join(dir, "dev.vmdk"))
	path := filepath.Join(dir, "d.vmdk")
	os.WriteFile(path, []byte(desc), 0o644)
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Format: Name})
	if err == nil {
		img.Close()
	}
	return err
}

func TestHostileDescriptors(t *testing.T) {
	if err := openDesc(t, goodDesc); err != nil {
		t.Fatalf("good descriptor: %v", err)
	}
	ext := func(line string) string {
		return strings.Replace(goodDesc, `RW 2048 FLAT "d-flat.vmdk" 0`, line, 1)
	}
	for _, tc := range []struct {
		name, desc string
		want       error
		flag       bool // the message must name --references=any
	}{
		{"absolute path", ext(`RW 2048 FLAT "/etc/passwd" 0`), formats.ErrReferenceDenied, true},
		{"dot dot", ext(`RW 2048 FLAT "../../x" 0`), formats.ErrReferenceDenied, true},
		{"json", ext(`RW 2048 FLAT "json:{\"file\":{\"driver\":\"nbd\"}}" 0`), formats.ErrCorrupt, false},
		{"json unquoted", ext(`RW 2048 FLAT "json:{}" 0`), formats.ErrReferenceDenied, false},
		{"nbd", ext(`RW 2048 FLAT "nbd://host/x" 0`), formats.ErrReferenceDenied, false},
		{"device", ext(`RW 2048 FLAT "/dev/sda" 0`), formats.ErrReferenceDenied, true},
		{"symlink to device", ext(`RW 2048 FLAT "dev.vmdk" 0`), formats.ErrReferenceDenied, true},
		{"several extents, one bad", ext("RW 2048 FLAT \"d-flat.vmdk\" 0\nRW 2048 SPARSE \"/tmp/x.vmdk\""), formats.ErrReferenceDenied, true},
		{"parent absolute", strings.Replace(goodDesc, "parentCID=ffffffff", "parentCID=1\nparentFileNameHint=\"/etc/base.vmdk\"", 1), formats.ErrReferenceDenied, true},
		{"no createType", strings.Replace(goodDesc, `createType="monolithicFlat"`, "", 1), formats.ErrCorrupt, false},
		{"long createType", strings.Replace(goodDesc, "monolithicFlat", strings.Repeat("x", 64), 1), formats.ErrCorrupt, false},
		{"seSparse", strings.Replace(goodDesc, "monolithicFlat", "seSparse", 1), formats.ErrUnsupported, false},
		{"vmfsRawDeviceMap", strings.Replace(goodDesc, "monolithicFlat", "vmfsRawDeviceMap", 1), formats.ErrUnsupported, false},
		{"RDM extent", ext(`RW 2048 VMFSRDM "d-flat.vmdk"`), formats.ErrUnsupported, false},
		{"SESPARSE extent", ext(`RW 2048 SESPARSE "d-flat.vmdk"`), formats.ErrUnsupported, false},
		{"no extents", ext(""), formats.ErrCorrupt, false},
		{"unknown line", goodDesc + "this is not vmdk\n", formats.ErrCorrupt, false},
		{"binary", goodDesc + "ddb.x = \"\x01\x02\"\n", formats.ErrCorrupt, false},
		{"no CID", strings.Replace(goodDesc, "CID=12345678\n", "", 1), formats.ErrCorrupt, false},
		{"bad sectors", ext(`RW -5 FLAT "d-flat.vmdk" 0`), formats.ErrCorrupt, false},
		{"huge sectors", ext(`RW 99999999999999999999 FLAT "d-flat.vmdk" 0`), formats.ErrCorrupt, false},
		{"too large disk", ext(strings.Repeat("RW 2199023255552 ZERO\n", 2)), formats.ErrLimit, false},
		{"too many extents", ext(strings.Repeat("RW 1 ZERO\n", maxExtentLines+1)), formats.ErrLimit, false},
		{"one file many times", ext(strings.Repeat("RW 1 FLAT \"d-flat.vmdk\" 0\n", 5000)), nil, false},
		{"descriptor over 1 MiB", goodDesc + strings.Repeat("# padding padding padding\n", 50000), formats.ErrLimit, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openDesc(t, tc.desc)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.flag && !strings.Contains(err.Error(), "--references=any") {
				t.Fatalf("message does not name the flag: %v", err)
			}
		})
	}
}

func TestHostileSelfParent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loop.vmdk")
	desc := strings.Replace(goodDesc, "parentCID=ffffffff", "parentCID=12345678\nparentFileNameHint=\"loop.vmdk\"", 1)
	os.WriteFile(filepath.Join(dir, "d-flat.vmdk"), make([]byte, 1<<20), 0o644)
	os.WriteFile(path, []byte(desc), 0o644)
	_, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if !errors.Is(err, formats.ErrBackingLoop) || !strings.Contains(err.Error(), "loop.vmdk -> "+path) {
		t.Fatalf("self-referencing parent: %v", err)
	}
}

func TestStrictPolicyRefusesExtents(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "d-flat.vmdk"), make([]byte, 1<<20), 0o644)
	path := filepath.Join(dir, "d.vmdk")
	os.WriteFile(path, []byte(goodDesc), 0o644)
	_, err := formats.Open(context.Background(), path, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicyStrict}})
	if !errors.Is(err, formats.ErrReferenceDenied) {
		t.Fatalf("strict policy: %v", err)
	}
}

func TestCheck(t *testing.T) {
	sp := sampleSparse(t, "")
	h := decodeHeader(sp)
	check := func(data []byte) *formats.CheckReport {
		img, err := Open(context.Background(), fileio.NewMem("c.vmdk", data), formats.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		r, err := img.(formats.Checker).Check(context.Background(), formats.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := check(sp); r.Corruptions != 0 || r.CheckErrors != 0 {
		t.Fatalf("clean image: %+v", r)
	}
	// The redundant GT disagrees with the primary one.
	rgt := int(binary.LittleEndian.Uint32(sp[h.RGDOffset*sectorSize:])) * sectorSize
	if r := check(put32(sp, rgt, 12345)); r.Corruptions != 1 {
		t.Fatalf("redundant GT mismatch: %+v", r)
	}
	// A grain past the end of the file.
	gt := int(binary.LittleEndian.Uint32(sp[h.GDOffset*sectorSize:])) * sectorSize
	bad := put32(put32(sp, gt+40, uint32(len(sp)/sectorSize)), rgt+40, uint32(len(sp)/sectorSize))
	if r := check(bad); r.Corruptions != 1 || !strings.Contains(r.Messages[0], "cluster 10 offset") ||
		!strings.Contains(r.Messages[0], "points after end of file") {
		t.Fatalf("grain past EOF: %+v", r)
	}
	// qemu-img check refuses the same grain (10, sector 1280); qemu 7.2
	// stops with a check error rather than counting a corruption.
	if qr := qemutest.Check(t, "vmdk", writeTemp(t, bad)); qr.Code == 0 ||
		!strings.Contains(qr.Stdout+qr.Stderr, "sector 1280 points after EOF") {
		t.Fatalf("qemu-img check of a grain past EOF: exit %d: %s%s", qr.Code, qr.Stdout, qr.Stderr)
	}
}

// TestTruncations opens vdisk-made images cut at every sector boundary: each
// must fail cleanly or read (a cut in the grain area reads as zeros).
func TestTruncations(t *testing.T) {
	for _, data := range [][]byte{sampleSparse(t, ""), sampleStream(t), tinySparse()} {
		for n := 0; n < len(data); n += sectorSize {
			for _, cut := range []int{n, n + 1, n + 511} {
				if cut > len(data) {
					continue
				}
				if err := openBytes(data[:cut]); err != nil && !errors.Is(err, formats.ErrCorrupt) &&
					!errors.Is(err, formats.ErrLimit) && !errors.Is(err, formats.ErrUnsupported) {
					t.Fatalf("cut at %d: unexpected error kind: %v", cut, err)
				}
			}
		}
	}
}
