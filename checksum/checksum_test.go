package checksum

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// piece is one run of a test image in blkhash's test notation: a byte
// stored as data, or '-' for a range the image records as unallocated.
type piece struct {
	byte   byte // '-' for unallocated
	length int64
}

// pieceImage is an image in memory built from pieces; it counts the bytes
// read so tests can prove unallocated ranges are never read.
type pieceImage struct {
	pieces []piece
	size   int64
	read   atomic.Int64
}

func newPieceImage(ps ...piece) *pieceImage {
	img := &pieceImage{pieces: ps}
	for _, p := range ps {
		img.size += p.length
	}
	return img
}

func (m *pieceImage) Size() int64    { return m.size }
func (m *pieceImage) Format() string { return "pieces" }
func (m *pieceImage) Close() error   { return nil }

func (m *pieceImage) ReadAt(p []byte, off int64) (int, error) {
	m.read.Add(int64(len(p)))
	n, eof := imageio.ClipRead(p, off, m.size)
	pos := int64(0)
	for _, pc := range m.pieces {
		lo, hi := max(off, pos), min(off+int64(n), pos+pc.length)
		for i := lo; i < hi; i++ {
			if pc.byte == '-' {
				p[i-off] = 0
			} else {
				p[i-off] = pc.byte
			}
		}
		pos += pc.length
	}
	return n, eof
}

func (m *pieceImage) Extents(off, length int64) ([]formats.Extent, error) {
	var out []formats.Extent
	pos := int64(0)
	for _, pc := range m.pieces {
		lo, hi := max(off, pos), min(off+length, pos+pc.length)
		if lo < hi {
			kind := formats.Data
			if pc.byte == '-' {
				kind = formats.Unallocated
			}
			out = imageio.AppendExtent(out, formats.Extent{Offset: lo, Length: hi - lo, Kind: kind, HostOffset: -1})
		}
		pos += pc.length
	}
	return out, nil
}

const kib = 1024

// blkhashVectors are the sha256 test vectors of blkhash's own test suite
// (test/blkhash-test.c in gitlab.com/nirs/blkhash, block size 64 KiB): the
// digests blksum prints for these contents.
var blkhashVectors = []struct {
	name   string
	pieces []piece
	want   string
}{
	{"block_data", []piece{{'A', 64 * kib}}, "2e3a5f57d5e726ee5de62db1a85ff816f4fa6ea4627807d9a51bdc4c883e165e"},
	{"block_data_zero", []piece{{0, 64 * kib}}, "8ab067ab7939a3d4f40cbb118956c07c06aeae2d075d6e0a2ebbb94bd42832af"},
	{"block_zero", []piece{{'-', 64 * kib}}, "8ab067ab7939a3d4f40cbb118956c07c06aeae2d075d6e0a2ebbb94bd42832af"},
	{"partial_block_data", []piece{{'A', 32 * kib}}, "9467334d6d7668a2f06898185b5cddc78cdfbd962f50c6bf250101f03a0e54dc"},
	{"partial_block_data_zero", []piece{{0, 32 * kib}}, "842d185f0ff348b0d689e184bddc47f69a19032a6934c89b879479f1e86f9d56"},
	{"partial_block_zero", []piece{{'-', 32 * kib}}, "842d185f0ff348b0d689e184bddc47f69a19032a6934c89b879479f1e86f9d56"},
	{"sparse", []piece{{'-', 8 * 64 * kib}}, "722ac11a3a81034edf196aa3ee68d1a2e345cd0838b0c78c2ce2fb015d4d817d"},
	{"sparse_large", []piece{{'-', 1 << 30}}, "c6d6562c3074a2caa0ceea3e1f460f3af678c792ed05e64157eb51e68ae5260d"},
	{"sparse_unaligned", []piece{{'-', 8 * 64 * kib}, {'-', 32 * kib}}, "e623a5702b1feb08fbb3d18e35bbb7ec10146b8cd1bcff811200a3948c78c55c"},
	{"zero", []piece{{0, 8 * 64 * kib}}, "722ac11a3a81034edf196aa3ee68d1a2e345cd0838b0c78c2ce2fb015d4d817d"},
	{"zero_unaligned", []piece{{0, 8 * 64 * kib}, {0, 32 * kib}}, "e623a5702b1feb08fbb3d18e35bbb7ec10146b8cd1bcff811200a3948c78c55c"},
	{"full", []piece{{'A', 32 * kib}, {'B', 32 * kib}, {'C', 32 * kib}, {'D', 32 * kib}, {'E', 32 * kib}, {'F', 32 * kib}},
		"4ab1586084326f5beb911621282e9557cd26856105eff7f78cace5986af4738b"},
	{"full_unaligned", []piece{{'A', 32 * kib}, {'B', 32 * kib}, {'C', 32 * kib}, {'D', 32 * kib}, {'E', 32 * kib}},
		"2cad558b3a2a8d87435e80fe7bae69fa664d92eaa1b9411f573b9fbb412a4d43"},
	{"mix", []piece{{'A', 32 * kib}, {'-', 32 * kib}, {'-', 32 * kib}, {0, 32 * kib}, {'E', 32 * kib}, {'-', 32 * kib}, {'-', 32 * kib}, {0, 32 * kib}},
		"4b2b5acd96f8105f4fb26abaf35c7c5756338ef9ccce19ffe7714c9ad94b4398"},
	{"mix_unaligned", []piece{{'A', 32 * kib}, {'-', 32 * kib}, {'-', 32 * kib}, {0, 32 * kib}, {'E', 32 * kib}, {'-', 32 * kib}, {'-', 32 * kib}},
		"2510ac29c7103f2e68c672d728cbd43db4ed3dc809a24cde96e62dc5862a0f57"},
}

// TestBlockMatchesBlkhashVectors: Block gives blkhash's published digests
// for every read size and worker count, and reads no unallocated byte.
func TestBlockMatchesBlkhashVectors(t *testing.T) {
	for _, v := range blkhashVectors {
		for _, opts := range []Options{{}, {Workers: 1, ReadBytes: 64 * kib}, {Workers: 7, ReadBytes: 128 * kib}} {
			img := newPieceImage(v.pieces...)
			d, err := Block(context.Background(), img, opts)
			if err != nil {
				t.Fatalf("%s: %v", v.name, err)
			}
			if d.Hex() != v.want {
				t.Errorf("%s (workers %d, read %d): %s, blkhash gives %s", v.name, opts.Workers, opts.ReadBytes, d.Hex(), v.want)
			}
			var data int64
			for _, p := range v.pieces {
				if p.byte != '-' {
					data += p.length
				}
			}
			if data == 0 && img.read.Load() != 0 {
				t.Errorf("%s: read %d bytes of an image with no data", v.name, img.read.Load())
			}
		}
	}
}

func TestLinearEqualsStdlib(t *testing.T) {
	img := newPieceImage(piece{'A', 5*kib + 3}, piece{'-', 9 << 20}, piece{0, 100}, piece{'z', 3 << 20})
	want := make([]byte, img.Size())
	if _, err := img.ReadAt(want, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	img.read.Store(0)
	sum := sha256.Sum256(want)
	ds, err := Linear(context.Background(), img, []string{"sha256", "md5", "sha1", "sha512"}, Options{ReadBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Hex() != hex.EncodeToString(sum[:]) {
		t.Errorf("linear sha256 %s, want %x", ds[0].Hex(), sum)
	}
	if len(ds) != 4 || ds[1].Algorithm != "md5" || len(ds[1].Sum) != 16 || len(ds[3].Sum) != 64 {
		t.Errorf("digests %+v", ds)
	}
	if r := img.read.Load(); r > img.Size()-8<<20 {
		t.Errorf("read %d of %d bytes: the unallocated 9 MiB was read", r, img.Size())
	}
}

func TestParseAlgorithms(t *testing.T) {
	if got, err := ParseAlgorithms("md5, SHA256"); err != nil || strings.Join(got, ",") != "md5,sha256" {
		t.Errorf("got %v %v", got, err)
	}
	for _, bad := range []string{"", "md5,md5", "crc32", "sha256,nope"} {
		if _, err := ParseAlgorithms(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHashesParallelEqualsSerial(t *testing.T) {
	data := bytes.Repeat([]byte("vdisk"), 200000)
	h, _ := NewHashes([]string{"sha256", "sha1", "md5"})
	h.Write(data)
	h.WriteZeros(3<<20 + 7)
	want := sha256.New()
	want.Write(data)
	want.Write(make([]byte, 3<<20+7))
	if got := h.Sums()[0].Hex(); got != hex.EncodeToString(want.Sum(nil)) || h.Bytes() != int64(len(data))+3<<20+7 {
		t.Errorf("sha256 %s, bytes %d", got, h.Bytes())
	}
}
