package convert

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// memImage is a source or target in memory with given extents.
type memImage struct {
	mu   sync.Mutex
	data []byte
	exts []formats.Extent // nil: all data
}

func (m *memImage) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m *memImage) Size() int64    { return int64(len(m.data)) }
func (m *memImage) Format() string { return "mem" }
func (m *memImage) Close() error   { return nil }
func (m *memImage) Extents(off, length int64) ([]formats.Extent, error) {
	if m.exts == nil {
		return imageio.AllData(off, length), nil
	}
	var out []formats.Extent
	for _, e := range m.exts {
		lo, hi := max(off, e.Offset), min(off+length, e.End())
		if lo < hi {
			e.Offset, e.Length = lo, hi-lo
			out = append(out, e)
		}
	}
	return out, nil
}
func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.data[off:], p), nil
}
func (m *memImage) Flush() error { return nil }

// seqTarget fails any write that does not come after the previous one.
type seqTarget struct {
	memImage
	next   int64
	writes int
	err    error
}

func (s *seqTarget) Sequential() bool { return true }
func (s *seqTarget) WriteAt(p []byte, off int64) (int, error) {
	if off < s.next && s.err == nil {
		s.err = fmt.Errorf("write at %d after %d", off, s.next)
	}
	s.next = off + int64(len(p))
	s.writes++
	return s.memImage.WriteAt(p, off)
}

// deflateTarget stores clusters deflated and records the placement order.
type deflateTarget struct {
	memImage
	cluster     int64
	mu2         sync.Mutex
	compressed  map[int64][]byte
	order       []int64
	outOfOrder  bool
	compressCnt int
}

func (d *deflateTarget) ClusterSize() int64 { return d.cluster }
func (d *deflateTarget) Compress(dst, cluster []byte) ([]byte, bool, error) {
	d.mu2.Lock()
	d.compressCnt++
	d.mu2.Unlock()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(cluster)
	w.Close()
	if b.Len() >= len(cluster) {
		return dst, false, nil
	}
	return append(dst, b.Bytes()...), true, nil
}
func (d *deflateTarget) WriteCompressed(off int64, c []byte) error {
	if n := len(d.order); n > 0 && off <= d.order[n-1] {
		d.outOfOrder = true
	}
	d.order = append(d.order, off)
	d.compressed[off] = append([]byte(nil), c...)
	return nil
}

// content returns the target's logical content: plain writes plus inflated
// compressed clusters.
func (d *deflateTarget) content(t *testing.T) []byte {
	out := append([]byte(nil), d.data...)
	for off, c := range d.compressed {
		plain, err := io.ReadAll(flate.NewReader(bytes.NewReader(c)))
		if err != nil {
			t.Fatal(err)
		}
		copy(out[off:], plain)
	}
	return out
}

// mixedSource is 8 MiB + 1000 bytes: random clusters (incompressible), text
// clusters (compressible) and zero clusters, with an unallocated hole.
func mixedSource() *memImage {
	const size = 8<<20 + 1000
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 4))
	for off := 0; off < size; off += 64 << 10 {
		switch (off / (64 << 10)) % 4 {
		case 0:
			for i := off; i < min(size, off+64<<10); i++ {
				data[i] = byte(rng.Uint32())
			}
		case 1:
			copy(data[off:min(size, off+64<<10)], bytes.Repeat([]byte("vdisk compresses text "), 3000))
		}
	}
	clear(data[2<<20 : 3<<20])
	return &memImage{data: data, exts: []formats.Extent{
		{Offset: 0, Length: 2 << 20, Kind: formats.Data, HostOffset: -1},
		{Offset: 2 << 20, Length: 1 << 20, Kind: formats.Unallocated, HostOffset: -1},
		{Offset: 3 << 20, Length: size - 3<<20, Kind: formats.Data, HostOffset: -1},
	}}
}

func TestCopySequentialTarget(t *testing.T) {
	src := mixedSource()
	for _, workers := range []int{1, 3, 8} {
		dst := &seqTarget{memImage: memImage{data: make([]byte, src.Size())}}
		err := Copy(context.Background(), dst, src, Options{Workers: workers, TargetIsZero: true, OutOfOrder: true, ChunkBytes: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if dst.err != nil {
			t.Fatalf("workers=%d: %v", workers, dst.err)
		}
		if !bytes.Equal(dst.data, src.data) {
			t.Fatalf("workers=%d: content differs", workers)
		}
	}
}

func TestCopyCompressed(t *testing.T) {
	src := mixedSource()
	dst := &deflateTarget{memImage: memImage{data: make([]byte, src.Size())}, cluster: 64 << 10, compressed: map[int64][]byte{}}
	if err := Copy(context.Background(), dst, src, Options{Compress: true, TargetIsZero: true, Workers: 4}); err != nil {
		t.Fatal(err)
	}
	if got := dst.content(t); !bytes.Equal(got, src.data) {
		t.Fatal("content differs")
	}
	if dst.outOfOrder {
		t.Error("compressed clusters were placed out of order")
	}
	clusters := (src.Size() + dst.cluster - 1) / dst.cluster
	// A quarter of the clusters are text (compressed), a quarter random
	// (stored plain), half zero (skipped), and the unallocated MiB is never read.
	if len(dst.compressed) == 0 || int64(dst.compressCnt) >= clusters {
		t.Errorf("%d compress calls, %d compressed clusters of %d", dst.compressCnt, len(dst.compressed), clusters)
	}
	for off := range dst.compressed {
		if off%dst.cluster != 0 {
			t.Errorf("compressed cluster at unaligned offset %d", off)
		}
		if (off/(64<<10))%4 == 0 {
			t.Errorf("random cluster at %d was stored compressed", off)
		}
	}
}

func TestCopyTopLayerOnly(t *testing.T) {
	// The source's top layer has data, a zero range (which must hide the
	// backing file) and an unallocated range (left to the backing file).
	src := &memImage{data: bytes.Repeat([]byte{7}, 3<<20), exts: []formats.Extent{
		{Offset: 0, Length: 1 << 20, Kind: formats.Data, HostOffset: -1},
		{Offset: 1 << 20, Length: 1 << 20, Kind: formats.Zero, HostOffset: -1},
		{Offset: 2 << 20, Length: 1 << 20, Kind: formats.Unallocated, HostOffset: -1},
	}}
	clear(src.data[1<<20 : 2<<20])
	dst := &memImage{data: bytes.Repeat([]byte{0xbb}, 3<<20)} // 0xbb: what the backing would show
	if err := Copy(context.Background(), dst, src, Options{TopLayerOnly: true, TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Repeat([]byte{7}, 1<<20), make([]byte, 1<<20)...), bytes.Repeat([]byte{0xbb}, 1<<20)...)
	if !bytes.Equal(dst.data, want) {
		t.Fatal("top-layer copy wrote the wrong ranges")
	}
}

func TestCopyReadErrorNamesOffset(t *testing.T) {
	src := &failingSource{memImage: memImage{data: make([]byte, 4<<20)}, failAt: 3 << 20}
	src.data[0] = 1
	dst := &memImage{data: make([]byte, 4<<20)}
	err := Copy(context.Background(), dst, src, Options{})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("offset 2097152")) {
		t.Fatalf("err = %v, want a read error at offset 2097152", err)
	}
}

type failingSource struct {
	memImage
	failAt int64
}

func (f *failingSource) ReadAt(p []byte, off int64) (int, error) {
	if off <= f.failAt && f.failAt < off+int64(len(p)) {
		return 0, io.ErrUnexpectedEOF
	}
	return f.memImage.ReadAt(p, off)
}

// TestCopySalvage: with Salvage, only the sector that cannot be read is
// zeroed and reported; the rest of the failing chunk is copied.
func TestCopySalvage(t *testing.T) {
	data := bytes.Repeat([]byte{0x5c}, 4<<20)
	badSector := int64(3<<20 + 512)
	src := &failingSource{memImage: memImage{data: data}, failAt: badSector + 100}
	dst := &memImage{data: make([]byte, len(data))}
	var mu sync.Mutex
	var reported [][2]int64
	err := Copy(context.Background(), dst, src, Options{Salvage: true, TargetIsZero: true,
		OnReadError: func(off, length int64, err error) {
			mu.Lock()
			reported = append(reported, [2]int64{off, length})
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), data...)
	clear(want[badSector : badSector+512])
	if !bytes.Equal(dst.data, want) {
		t.Fatal("salvaged output differs from the input with the bad sector zeroed")
	}
	if len(reported) != 1 || reported[0] != [2]int64{badSector, 512} {
		t.Fatalf("reported %v, want one 512-byte range at %d", reported, badSector)
	}
	// Without Salvage the same input fails, naming where.
	if err := Copy(context.Background(), &memImage{data: make([]byte, len(data))}, src, Options{}); err == nil {
		t.Fatal("copy without salvage succeeded over a read error")
	}
}
