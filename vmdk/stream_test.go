package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/internal/zero"
)

// createWith makes a vdisk image in f with a fixed random seed.
func createWith(t testing.TB, f formats.File, size int64, opts string, seed int64) formats.Writable {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	w, err := create(context.Background(), formats.CreateRequest{File: f, Name: "out.vmdk", Size: size, Options: o}, rand.New(rand.NewSource(seed)))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// writeStreamCompressed feeds w as the engine does: Compress for each grain
// (here in order), WriteCompressed in order, zero grains skipped.
func writeStreamCompressed(t testing.TB, w formats.Writable, src []byte) {
	t.Helper()
	cw := w.(formats.CompressedWriter)
	cs := cw.ClusterSize()
	for off := int64(0); off < int64(len(src)); off += cs {
		grain := src[off:min(off+cs, int64(len(src)))]
		if zero.Is(grain) {
			continue
		}
		z, ok, err := cw.Compress(nil, grain)
		if err != nil || !ok {
			t.Fatalf("compress: %v %v", ok, err)
		}
		if err := cw.WriteCompressed(off, z); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStreamToPipeEqualsFile(t *testing.T) {
	const size = 33<<20 + 512
	src := pattern(size)
	var pipe bytes.Buffer
	stream := fileio.NewStream(&pipe, "-")
	w := createWith(t, stream, size, "subformat=streamOptimized", 42)
	if !w.(formats.SequentialWriter).Sequential() {
		t.Fatal("stream writer is not sequential")
	}
	writeStreamCompressed(t, w, src)
	finish(t, w)

	mem := fileio.NewMem("out.vmdk", nil)
	w = createWith(t, mem, size, "subformat=streamOptimized", 42)
	for off := int64(0); off < size; off += 1 << 20 {
		if _, err := w.WriteAt(src[off:min(off+1<<20, size)], off); err != nil {
			t.Fatal(err)
		}
	}
	finish(t, w)
	if !bytes.Equal(pipe.Bytes(), mem.Bytes()) {
		a, b := pipe.Bytes(), mem.Bytes()
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		t.Fatalf("stream (%d bytes) and file (%d bytes) outputs differ at %d", len(a), len(b), i)
	}
	path := filepath.Join(t.TempDir(), "s.vmdk")
	os.WriteFile(path, pipe.Bytes(), 0o644)
	rawPath := filepath.Join(t.TempDir(), "s.raw")
	os.WriteFile(rawPath, src, 0o644)
	qemutest.RequireSame(t, "vmdk", path, "raw", rawPath)
	qemutest.RequireClean(t, "vmdk", path)
	vmdkinfo(t, path)
}

func TestStreamStructure(t *testing.T) {
	const size = 70 << 20
	src := pattern(size)
	mem := fileio.NewMem("s.vmdk", nil)
	w := createWith(t, mem, size, "subformat=streamOptimized,adapter_type=lsilogic", 7)
	writeStreamCompressed(t, w, src)
	finish(t, w)
	data := mem.Bytes()
	if len(data)%sectorSize != 0 {
		t.Fatalf("length %d not sector aligned", len(data))
	}
	h := decodeHeader(data)
	if h.Magic != sparseMagic || h.Version != 3 || h.GDOffset != gdAtEnd ||
		h.Flags != flagNewlineTest|flagCompressed|flagMarkers || h.CompressAlgo != compressDeflate {
		t.Fatalf("header %+v", h)
	}
	eos := data[len(data)-sectorSize:]
	if !zero.Is(eos) {
		t.Fatal("end-of-stream marker is not a zero sector")
	}
	fm := decodeMarker(data[len(data)-3*sectorSize:])
	if fm != (marker{Value: 1, Type: markerFooter}) {
		t.Fatalf("footer marker %+v", fm)
	}
	footer := decodeHeader(data[len(data)-2*sectorSize:])
	if footer.GDOffset == gdAtEnd || footer.Version != 3 || footer.Capacity != h.Capacity {
		t.Fatalf("footer %+v", footer)
	}
	gdm := decodeMarker(data[(footer.GDOffset-1)*sectorSize:])
	if gdm.Type != markerGD || gdm.Size != 0 {
		t.Fatalf("GD marker %+v", gdm)
	}
	// Every GD entry points behind a GT marker; every GTE at a grain marker
	// whose LBA matches.
	for i := uint64(0); i < ceilDiv(ceilDiv(h.Capacity, 128), 512); i++ {
		gde := binary.LittleEndian.Uint32(data[footer.GDOffset*sectorSize+i*4:])
		if gde == 0 {
			continue
		}
		if m := decodeMarker(data[(gde-1)*sectorSize:]); m.Type != markerGT || m.Value != 4 {
			t.Fatalf("GT marker %+v", m)
		}
		for j := uint64(0); j < 512; j++ {
			gte := binary.LittleEndian.Uint32(data[uint64(gde)*sectorSize+j*4:])
			if gte == 0 {
				continue
			}
			if lba := binary.LittleEndian.Uint64(data[uint64(gte)*sectorSize:]); lba != (i*512+j)*128 {
				t.Fatalf("grain marker LBA %d for grain %d", lba, i*512+j)
			}
		}
	}
	text := descriptorText(t, writeTemp(t, data))
	for _, k := range []string{`createType="streamOptimized"`, `ddb.adapterType = "lsilogic"`,
		`ddb.geometry.heads = "255"`, `ddb.virtualHWVersion = "4"`, `ddb.toolsVersion = "2147483647"`,
		`ddb.longContentID = "`, `ddb.uuid = "`, `RW 143360 SPARSE "out.vmdk"`} {
		if !strings.Contains(text, k) {
			t.Errorf("descriptor lacks %s:\n%s", k, text)
		}
	}
	img, err := Open(context.Background(), fileio.NewMem("s.vmdk", data), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, img), src) {
		t.Fatal("read back differs")
	}
}

func writeTemp(t testing.TB, data []byte) string {
	path := filepath.Join(t.TempDir(), "x.vmdk")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStreamRefusesBackwardWrites(t *testing.T) {
	var pipe bytes.Buffer
	w := createWith(t, fileio.NewStream(&pipe, "-"), 1<<20, "subformat=streamOptimized", 1)
	if _, err := w.WriteAt([]byte{1}, 70000); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte{1}, 100); err == nil {
		t.Fatal("backward write accepted")
	}
}
