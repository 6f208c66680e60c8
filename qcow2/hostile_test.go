package qcow2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// memImage builds a small image in memory with vdisk's writer: 1 MiB, data
// in the first clusters, one compressed cluster and a zero cluster.
func memImage(t testing.TB, opt string) []byte {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, opt)
	if err != nil {
		t.Fatal(err)
	}
	f := fileio.NewMem("base.qcow2", nil)
	img, err := Create(context.Background(), formats.CreateRequest{File: f, Name: "base.qcow2", Size: 1 << 20, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	cs := img.ClusterSize()
	if _, err := img.WriteAt(bytes.Repeat([]byte{0xaa}, int(2*cs)), 0); err != nil {
		t.Fatal(err)
	}
	c, ok, err := img.Compress(nil, bytes.Repeat([]byte("qcow2"), int(cs)/5+1)[:cs])
	if err != nil || !ok {
		t.Fatalf("compress: %v %v", ok, err)
	}
	if err := img.WriteCompressed(2*cs, c); err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt(bytes.Repeat([]byte{0xbb}, int(cs)), 3*cs); err != nil {
		t.Fatal(err)
	}
	if err := img.WriteZeroes(3*cs, cs); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Bytes()
}

func put32(b []byte, off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.BigEndian.PutUint64(b[off:], v) }

// l2Of returns the offset of the first L2 table of an image.
func l2Of(b []byte) int {
	l1 := binary.BigEndian.Uint64(b[40:])
	return int(binary.BigEndian.Uint64(b[l1:]) & offsetMask)
}

// openMem opens image bytes from memory and reads them all.
func openMem(b []byte, opts formats.OpenOptions) error {
	img, err := Open(context.Background(), fileio.NewMem("hostile.qcow2", b), opts)
	if err != nil {
		return err
	}
	defer img.Close()
	buf := make([]byte, min(img.Size(), 4<<20))
	if _, err := img.ReadAt(buf, 0); err != nil && err != io.EOF {
		return err
	}
	_, err = img.Extents(0, img.Size())
	return err
}

func TestHostileHeaders(t *testing.T) {
	base := memImage(t, "cluster_size=4k")
	if err := openMem(base, formats.OpenOptions{}); err != nil {
		t.Fatalf("base image: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(b []byte)
		want   error
	}{
		{"version 1", func(b []byte) { put32(b, 4, 1) }, formats.ErrUnsupported},
		{"version 4", func(b []byte) { put32(b, 4, 4) }, formats.ErrUnsupported},
		{"version max", func(b []byte) { put32(b, 4, 0xffffffff) }, formats.ErrUnsupported},
		{"cluster_bits 8", func(b []byte) { put32(b, 20, 8) }, formats.ErrCorrupt},
		{"cluster_bits 22", func(b []byte) { put32(b, 20, 22) }, formats.ErrCorrupt},
		{"cluster_bits 0", func(b []byte) { put32(b, 20, 0) }, formats.ErrCorrupt},
		{"cluster_bits 255", func(b []byte) { put32(b, 20, 255) }, formats.ErrCorrupt},
		{"header_length max", func(b []byte) { put32(b, 100, 0xffffffff) }, formats.ErrCorrupt},
		{"header_length 0x7fffffff", func(b []byte) { put32(b, 100, 0x7fffffff) }, formats.ErrCorrupt},
		{"header_length 103", func(b []byte) { put32(b, 100, 103) }, formats.ErrCorrupt},
		{"header_length 105", func(b []byte) { put32(b, 100, 105) }, formats.ErrCorrupt},
		{"header_length past cluster", func(b []byte) { put32(b, 100, 4096+8) }, formats.ErrCorrupt},
		{"backing offset past cluster", func(b []byte) { put64(b, 8, 4097); put32(b, 16, 4) }, formats.ErrCorrupt},
		{"backing name 1024", func(b []byte) { put64(b, 8, 1024); put32(b, 16, 1024) }, formats.ErrCorrupt},
		{"backing name max", func(b []byte) { put64(b, 8, 1024); put32(b, 16, 0xffffffff) }, formats.ErrCorrupt},
		{"unknown incompatible bit 5", func(b []byte) { put64(b, 72, 1<<5) }, formats.ErrUnsupported},
		{"unknown incompatible bit 63", func(b []byte) { put64(b, 72, 1<<63) }, formats.ErrUnsupported},
		{"extended L2 with 4k clusters", func(b []byte) { put64(b, 72, incompatExtL2) }, formats.ErrCorrupt},
		{"compression bit with zlib", func(b []byte) { put64(b, 72, incompatCompression) }, formats.ErrCorrupt},
		{"compression type 2", func(b []byte) { put64(b, 72, incompatCompression); b[104] = 2 }, formats.ErrUnsupported},
		{"zstd type without bit", func(b []byte) { b[104] = 1 }, formats.ErrCorrupt},
		{"AES without a key", func(b []byte) { put32(b, 32, 1) }, formats.ErrKeyRequired},
		{"LUKS without its header extension", func(b []byte) { put32(b, 32, 2) }, formats.ErrCorrupt},
		{"crypt method 3", func(b []byte) { put32(b, 32, 3) }, formats.ErrUnsupported},
		{"refcount_order 7", func(b []byte) { put32(b, 96, 7) }, formats.ErrCorrupt},
		{"l1_size max", func(b []byte) { put32(b, 36, 0xffffffff) }, formats.ErrLimit},
		{"l1_size 0x7fffffff", func(b []byte) { put32(b, 36, 0x7fffffff) }, formats.ErrLimit},
		{"l1_size 4194305", func(b []byte) { put32(b, 36, 4194305) }, formats.ErrLimit},
		{"l1_size too small", func(b []byte) { put32(b, 36, 0) }, formats.ErrCorrupt},
		{"l1 offset unaligned", func(b []byte) { put64(b, 40, 4096*3+8) }, formats.ErrCorrupt},
		{"l1 offset huge", func(b []byte) { put64(b, 40, 0x7fffffffffff0000) }, formats.ErrCorrupt},
		{"l1 past EOF", func(b []byte) { put64(b, 40, 1<<40) }, formats.ErrCorrupt},
		{"refcount_table_clusters max", func(b []byte) { put32(b, 56, 0xffffffff) }, formats.ErrLimit},
		{"refcount_table_clusters 0x20001", func(b []byte) { put32(b, 56, 0x20001) }, formats.ErrLimit},
		{"refcount table unaligned", func(b []byte) { put64(b, 48, 4097) }, formats.ErrCorrupt},
		{"refcount table huge", func(b []byte) { put64(b, 48, 0xffffffffffff0000) }, formats.ErrCorrupt},
		{"nb_snapshots max", func(b []byte) { put32(b, 60, 0xffffffff) }, formats.ErrLimit},
		{"nb_snapshots 65537", func(b []byte) { put32(b, 60, 65537) }, formats.ErrLimit},
		{"snapshots unaligned", func(b []byte) { put32(b, 60, 1); put64(b, 64, 4097) }, formats.ErrCorrupt},
		{"snapshots past EOF", func(b []byte) { put32(b, 60, 1); put64(b, 64, 1<<40) }, formats.ErrCorrupt},
		{"virtual size 2^63-1", func(b []byte) { put64(b, 24, 1<<63-1) }, formats.ErrLimit},
		{"virtual size 2^64-1", func(b []byte) { put64(b, 24, 1<<64-1) }, formats.ErrLimit},
		{"virtual size limit+1", func(b []byte) { put64(b, 24, formats.DefaultMaxVirtualSize+1) }, formats.ErrLimit},
		{"extension too long", func(b []byte) { put32(b, 112+4, 0x7fffffff) }, formats.ErrCorrupt},
		{"extension crossing the cluster", func(b []byte) { put32(b, 112+4, 4096-112-8+1) }, formats.ErrCorrupt},
		{"no terminator", func(b []byte) {
			for i := 112; i+8 <= 4096; i += 8 {
				put32(b, i, 0x1234)
				put32(b, i+4, 0)
			}
		}, formats.ErrCorrupt},
		{"duplicate extension", func(b []byte) {
			copy(b[112:], []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		}, formats.ErrCorrupt},
		{"bitmaps 65536", func(b []byte) {
			copy(b[112:], append(be32s(extBitmaps, 24, 65536, 0), make([]byte, 24)...))
		}, formats.ErrLimit},
		{"bitmap directory too large", func(b []byte) {
			e := be32s(extBitmaps, 24, 1, 0)
			e = binary.BigEndian.AppendUint64(e, maxBitmapDir+1)
			copy(b[112:], append(e, make([]byte, 16)...))
		}, formats.ErrLimit},
		{"data file bit without name", func(b []byte) { put64(b, 72, incompatDataFile) }, formats.ErrUnsupported},
		{"L2 table unaligned", func(b []byte) {
			l1 := binary.BigEndian.Uint64(b[40:])
			put64(b, int(l1), uint64(l2Of(b)+8)|oflagCopied)
		}, formats.ErrCorrupt},
		{"L2 table past EOF", func(b []byte) {
			l1 := binary.BigEndian.Uint64(b[40:])
			put64(b, int(l1), 1<<40|oflagCopied)
		}, formats.ErrCorrupt},
		{"huge physical offset", func(b []byte) { put64(b, l2Of(b), 0x800000ffffff0000) }, formats.ErrCorrupt},
		{"compressed offset past EOF", func(b []byte) { put64(b, l2Of(b), 0xbfffffffffff0000) }, formats.ErrCorrupt},
		{"reserved bits in L2", func(b []byte) { put64(b, l2Of(b), binary.BigEndian.Uint64(b[l2Of(b):])|1<<57) }, formats.ErrCorrupt},
		{"reserved bits in L1", func(b []byte) {
			l1 := int(binary.BigEndian.Uint64(b[40:]))
			put64(b, l1, binary.BigEndian.Uint64(b[l1:])|1<<60)
		}, formats.ErrCorrupt},
		{"data cluster unaligned", func(b []byte) { put64(b, l2Of(b), binary.BigEndian.Uint64(b[l2Of(b):])+512) }, formats.ErrCorrupt},
		{"compressed garbage", func(b []byte) {
			e := binary.BigEndian.Uint64(b[l2Of(b)+16:])
			coff := int(e & (1<<(62-4) - 1))
			for i := range 64 {
				b[coff+i] = 0xff
			}
		}, formats.ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			c.mutate(b)
			err := openMem(b, formats.OpenOptions{})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func be32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func TestHostileLimitsAtBoundary(t *testing.T) {
	base := memImage(t, "cluster_size=4k")
	// A backing name of 1023 bytes is accepted as a name (the reference then
	// fails to resolve), 1024 is refused as corrupt.
	b := bytes.Clone(base)
	put64(b, 8, 2048)
	put32(b, 16, 1023)
	copy(b[2048:], strings.Repeat("a", 1023))
	if err := openMem(b, formats.OpenOptions{NoBacking: true}); err != nil {
		t.Fatalf("1023-byte backing name: %v", err)
	}
	// Virtual size exactly at the limit passes the header check.
	lim := formats.Limits{MaxVirtualSize: 1 << 20}
	if err := openMem(base, formats.OpenOptions{Limits: lim}); err != nil {
		t.Fatalf("size at limit: %v", err)
	}
	lim.MaxVirtualSize--
	if err := openMem(base, formats.OpenOptions{Limits: lim}); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("size over limit: %v", err)
	}
	// The table limit applies to the L1 table.
	if err := openMem(base, formats.OpenOptions{Limits: formats.Limits{MaxTableBytes: 7}}); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("L1 over the table limit: %v", err)
	}
}

func TestHostileSnapshots(t *testing.T) {
	b := memImage(t, "cluster_size=4k")
	// Append a snapshot table cluster with one entry.
	snapOff := len(b)
	entry := make([]byte, 4096)
	l1 := binary.BigEndian.Uint64(b[40:])
	put64(entry, 0, l1)
	put32(entry, 8, 1)
	binary.BigEndian.PutUint16(entry[12:], 1)
	binary.BigEndian.PutUint16(entry[14:], 1)
	put32(entry, 36, 16)
	entry[56], entry[57] = '1', 's'
	b = append(b, entry...)
	put32(b, 60, 1)
	put64(b, 64, uint64(snapOff))
	if err := openMem(b, formats.OpenOptions{Snapshot: "s"}); err != nil {
		t.Fatalf("valid snapshot: %v", err)
	}
	extra := bytes.Clone(b)
	put32(extra, snapOff+36, 1025)
	if err := openMem(extra, formats.OpenOptions{}); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("extra data 1025: %v", err)
	}
	big := bytes.Clone(b)
	put32(big, snapOff+8, 0x10000000)
	if err := openMem(big, formats.OpenOptions{Snapshot: "1"}); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("snapshot l1_size 0x10000000: %v", err)
	}
	short := bytes.Clone(b[:snapOff+64])
	put32(short, 60, 2)
	if err := openMem(short, formats.OpenOptions{}); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("second entry past the table: %v", err)
	}
}

// TestBackingReferencePolicy: backing and data file names that leave the
// image's directory are refused under the default policy.
func TestBackingReferencePolicy(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.raw"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	base := memImage(t, "cluster_size=4k")
	write := func(name string, mutate func(b []byte)) string {
		b := bytes.Clone(base)
		mutate(b)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	withBacking := func(ref string) func(b []byte) {
		return func(b []byte) {
			put64(b, 8, 2048)
			put32(b, 16, uint32(len(ref)))
			copy(b[2048:], ref)
		}
	}
	for _, ref := range []string{"/etc/passwd", "../x", "sub/../../x", `json:{"file":{"driver":"nbd","host":"x"}}`, "nbd://host/x", "http://x/y"} {
		path := write("b.qcow2", withBacking(ref))
		_, err := formats.Open(context.Background(), path, formats.OpenOptions{})
		if !errors.Is(err, formats.ErrReferenceDenied) {
			t.Fatalf("backing %q: %v", ref, err)
		}
		if (strings.HasPrefix(ref, "/") || strings.Contains(ref, "..")) && !strings.Contains(err.Error(), "--references=any") {
			t.Errorf("backing %q: error does not name the flag: %v", ref, err)
		}
	}
	path := write("good.qcow2", withBacking("ok.raw"))
	img := openPath(t, path, formats.OpenOptions{})
	if img.(formats.Backer).BackingFormat() != "raw" {
		t.Fatalf("probed backing format %q", img.(formats.Backer).BackingFormat())
	}
	strict := &formats.DirResolver{Policy: formats.PolicyStrict}
	if _, err := formats.Open(context.Background(), path, formats.OpenOptions{Resolver: strict}); !errors.Is(err, formats.ErrReferenceDenied) {
		t.Fatalf("strict policy: %v", err)
	}
	for _, ref := range []string{"/etc/passwd", `json:{"driver":"file"}`} {
		path := write("d.qcow2", func(b []byte) {
			put64(b, 72, incompatDataFile)
			e := append(be32s(extDataFile, uint32(len(ref))), ref...)
			for len(e)%8 != 0 {
				e = append(e, 0)
			}
			rest := bytes.Clone(b[112:2048])
			copy(b[112:], e)
			copy(b[112+len(e):], rest)
		})
		if _, err := formats.Open(context.Background(), path, formats.OpenOptions{}); !errors.Is(err, formats.ErrReferenceDenied) {
			t.Fatalf("data file %q: %v", ref, err)
		}
	}
}

func TestHostileCompressedBomb(t *testing.T) {
	// A compressed cluster whose deflate stream would inflate far beyond the
	// cluster: reading stops at the cluster size.
	b := memImage(t, "cluster_size=4k")
	e := binary.BigEndian.Uint64(b[l2Of(b)+16:])
	img := &Image{clusterBits: 12}
	img.geometry()
	coff, _ := img.compressedRange(e)
	c := &codec{}
	big, _, _ := c.compress(nil, make([]byte, 1<<20))
	b = append(b[:coff], big...)
	extraSectors := uint64((coff+int64(len(big))-1)>>9 - coff>>9)
	if extraSectors >= 1<<(62-img.sectorsShift) {
		extraSectors = 1<<(62-img.sectorsShift) - 1
	}
	put64(b, l2Of(b)+16, uint64(coff)|extraSectors<<img.sectorsShift|oflagCompressed)
	if err := openMem(b, formats.OpenOptions{}); err != nil {
		t.Fatalf("bomb: %v", err)
	}
}

func TestHostileLimitsAtQemuValues(t *testing.T) {
	base := memImage(t, "cluster_size=4k")
	// L1 of exactly 4,194,304 entries (32 MiB) passes; one more is a limit.
	b := bytes.Clone(base)
	l1Off := (len(b) + 4095) &^ 4095
	b = append(b, make([]byte, l1Off-len(b)+32<<20)...)
	copy(b[l1Off:], base[binary.BigEndian.Uint64(base[40:]):][:8])
	put64(b, 40, uint64(l1Off))
	put32(b, 36, 4194304)
	lim := formats.Limits{MaxTableBytes: 32 << 20}
	if err := openMem(b, formats.OpenOptions{Limits: lim}); err != nil {
		t.Fatalf("L1 at qemu's limit: %v", err)
	}
	put32(b, 36, 4194305)
	if err := openMem(b, formats.OpenOptions{Limits: lim}); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("L1 over qemu's limit: %v", err)
	}
	// Refcount table of 8 MiB (2048 clusters of 4 KiB) passes, 2049 do not.
	b = bytes.Clone(base)
	put32(b, 56, 2048)
	if err := openMem(b, formats.OpenOptions{}); err != nil {
		t.Fatalf("refcount table at the limit: %v", err)
	}
	put32(b, 56, 2049)
	if err := openMem(b, formats.OpenOptions{}); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("refcount table over the limit: %v", err)
	}
	// 65,536 snapshots pass the count check (the table is then too short).
	b = bytes.Clone(base)
	zeros := (len(b) + 4095) &^ 4095
	b = append(b, make([]byte, zeros-len(b)+4096)...)
	put32(b, 60, 65536)
	put64(b, 64, uint64(zeros))
	if err := openMem(b, formats.OpenOptions{}); errors.Is(err, formats.ErrLimit) || err == nil {
		t.Fatalf("65536 snapshots: %v", err)
	}
	// cluster_bits 9 and 21 are accepted (see the interop tests); extended
	// L2 needs 14: 16 KiB clusters work.
	if err := openMem(memImage(t, "cluster_size=16k,extended_l2=on"), formats.OpenOptions{}); err != nil {
		t.Fatalf("extended L2 at 16k: %v", err)
	}
}
