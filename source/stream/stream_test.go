package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zlib"

	"github.com/vdiskio/vdisk/formats"
	_ "github.com/vdiskio/vdisk/qcow2" // Probe's Detect
	_ "github.com/vdiskio/vdisk/raw"
)

// pattern is n bytes no 4 KiB of which are zero, each 4 KiB unit
// different from the one before it.
func pattern(n int) []byte {
	b := make([]byte, n)
	unit := make([]byte, 4096)
	for i := range unit {
		unit[i] = byte(i*7 + 1)
	}
	for off := 0; off < n; off += len(unit) {
		copy(b[off:], unit)
		b[off] = byte(off>>12) | 1
	}
	return b
}

// drain reads img as the conversion engine does: chunks in offset order
// handed to workers that read concurrently.
func drain(t *testing.T, img *Image, chunk int64, workers int) ([]byte, error) {
	t.Helper()
	var mu sync.Mutex
	out := map[int64][]byte{}
	var firstErr error
	jobs := make(chan int64)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := range jobs {
				b := make([]byte, min(chunk, img.Size()-off))
				_, err := img.ReadAt(b, off)
				mu.Lock()
				if err != nil && err != io.EOF && firstErr == nil {
					firstErr = err
				}
				out[off] = b
				mu.Unlock()
			}
		}()
	}
	for off := int64(0); off < img.Size(); off += chunk {
		if end, ok := img.End(); ok && off >= end {
			break
		}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		jobs <- off
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	end, err := img.Wait()
	if err != nil {
		return nil, err
	}
	var all []byte
	for off := int64(0); off < end; off += chunk {
		all = append(all, out[off]...)
	}
	return all[:end], nil
}

// TestRawStreamBounded: a 24 MiB raw stream read by four workers in 2 MiB
// chunks comes out whole while the window never holds more than its 16
// pages, and its size is the stream's at the end.
func TestRawStreamBounded(t *testing.T) {
	data := pattern(24<<20 + 1234)
	img, err := Open(bytes.NewReader(data), Raw, Options{LimitBytes: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.SizeKnown() || img.Size() != 1<<40 {
		t.Fatalf("a raw stream's size: %d known %v; want the provisional 1 TiB", img.Size(), img.SizeKnown())
	}
	got, err := drain(t, img, 2<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the stream's %d", len(got), len(data))
	}
	if end, _ := img.End(); end != int64(len(data)) || img.Format() != "raw" {
		t.Errorf("end %d format %s; want %d raw", end, img.Format(), len(data))
	}
	if img.w.peak > DefaultWindowBytes/pageBytes {
		t.Errorf("the window held %d pages, past its bound of %d", img.w.peak, DefaultWindowBytes/pageBytes)
	}
	// A byte passed cannot be read again.
	if _, err := img.ReadAt(make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "already passed") {
		t.Errorf("reading offset 0 again: %v", err)
	}
}

// vhdFooter is a fixed VHD footer for a disk of size bytes, written from
// the VHD specification's field table.
func vhdFooter(size uint64) []byte {
	f := make([]byte, 512)
	copy(f, "conectix")
	be := binary.BigEndian
	be.PutUint32(f[8:], 2)           // features
	be.PutUint32(f[12:], 0x00010000) // version
	be.PutUint64(f[16:], ^uint64(0)) // data offset: none for fixed
	copy(f[28:], "test")
	be.PutUint64(f[40:], size) // original size
	be.PutUint64(f[48:], size) // current size
	be.PutUint32(f[60:], 2)    // fixed
	var sum uint32
	for _, c := range f {
		sum += uint32(c)
	}
	be.PutUint32(f[64:], ^sum)
	return f
}

// TestFixedVHDStream: the footer at the end is taken off when the stream
// is a fixed VHD; with -f raw it is data; with -f vpc a stream without
// one is an error.
func TestFixedVHDStream(t *testing.T) {
	data := pattern(3 << 20)
	vhd := append(append([]byte{}, data...), vhdFooter(uint64(len(data)))...)
	for _, tc := range []struct {
		format, wantFormat string
		in, want           []byte
	}{
		{"", "vpc", vhd, data},
		{"vpc", "vpc", vhd, data},
		{"raw", "raw", vhd, vhd},
		{"", "raw", data, data},
		{"", "raw", vhd[:len(vhd)-1], vhd[:len(vhd)-1]}, // not a footer: data
	} {
		img, err := Open(bytes.NewReader(tc.in), Raw, Options{Format: tc.format, LimitBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		got, err := drain(t, img, 1<<20, 2)
		img.Close()
		if err != nil || !bytes.Equal(got, tc.want) || img.Format() != tc.wantFormat {
			t.Errorf("-f %q, %d bytes in: %d bytes out (want %d), format %s (want %s), %v", tc.format, len(tc.in), len(got), len(tc.want), img.Format(), tc.wantFormat, err)
		}
	}
	img, _ := Open(bytes.NewReader(data), Raw, Options{Format: "vpc", LimitBytes: 1 << 30})
	defer img.Close()
	if _, err := drain(t, img, 1<<20, 2); !errors.Is(err, formats.ErrCorrupt) || !strings.Contains(err.Error(), "footer") {
		t.Errorf("-f vpc of a stream without a footer: %v", err)
	}
}

// TestRawStreamLimit: a raw stream longer than its limit stops with a
// limit error.
func TestRawStreamLimit(t *testing.T) {
	img, _ := Open(bytes.NewReader(pattern(5<<20)), Raw, Options{LimitBytes: 2 << 20})
	defer img.Close()
	if _, err := drain(t, img, 1<<20, 1); !errors.Is(err, formats.ErrLimit) {
		t.Errorf("a 5 MiB stream under a 2 MiB limit: %v", err)
	}
}

// streamVMDK builds a streamOptimized VMDK stream from the VMware
// specification's layout: header (KDMV, version 3, compressed grains and
// markers, deflate), the overhead, one grain marker per grain given (LBA
// in sectors, its data zlib-compressed), the end-of-stream marker.
func streamVMDK(capacitySectors uint64, grains []struct {
	lba  uint64
	data []byte
}) []byte {
	le := binary.LittleEndian
	h := make([]byte, 512)
	le.PutUint32(h[0:], 0x564D444B)
	le.PutUint32(h[4:], 3)
	le.PutUint32(h[8:], 1|1<<16|1<<17)
	le.PutUint64(h[12:], capacitySectors)
	le.PutUint64(h[20:], 128)
	le.PutUint32(h[44:], 512)
	le.PutUint64(h[56:], ^uint64(0))
	le.PutUint64(h[64:], 1)
	copy(h[73:], "\n \r\n")
	le.PutUint16(h[77:], 1)
	out := append([]byte{}, h...)
	for _, g := range grains {
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(g.data)
		zw.Close()
		m := make([]byte, 12)
		le.PutUint64(m, g.lba)
		le.PutUint32(m[8:], uint32(z.Len()))
		rec := append(m, z.Bytes()...)
		for len(rec)%512 != 0 {
			rec = append(rec, 0)
		}
		out = append(out, rec...)
	}
	return append(out, make([]byte, 512)...) // EOS: value 0, size 0, type 0
}

type grain = struct {
	lba  uint64
	data []byte
}

// TestVMDKStream: grains land at their LBAs, the gaps and the tail read
// as zeros, and the capacity is the size from the start.
func TestVMDKStream(t *testing.T) {
	g := pattern(64 << 10)
	s := streamVMDK(8192, []grain{{0, g}, {1024, g}, {8064, g[:4096]}})
	img, err := Open(bytes.NewReader(s), StreamOptimized, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if !img.SizeKnown() || img.Size() != 8192*512 {
		t.Fatalf("size %d known %v", img.Size(), img.SizeKnown())
	}
	got, err := drain(t, img, 1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8192*512)
	copy(want, g)
	copy(want[1024*512:], g)
	copy(want[8064*512:], g[:4096])
	if !bytes.Equal(got, want) {
		t.Error("decoded stream differs from the grains placed at their LBAs")
	}
}

// TestHostileVMDKStreams: every malformed stream is one error line,
// corrupt or unsupported, naming the stream offset.
func TestHostileVMDKStreams(t *testing.T) {
	g := pattern(64 << 10)
	valid := streamVMDK(4096, []grain{{0, g}, {128, g}})
	badZlib := bytes.Clone(valid)
	badZlib[512+20] ^= 0xFF
	header := func(at int, v uint64, width int) []byte {
		b := bytes.Clone(valid)
		if width == 8 {
			binary.LittleEndian.PutUint64(b[at:], v)
		} else {
			binary.LittleEndian.PutUint16(b[at:], uint16(v))
		}
		return b
	}
	unknown := bytes.Clone(valid)
	binary.LittleEndian.PutUint32(unknown[len(unknown)-512+12:], 9)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"out of order", streamVMDK(4096, []grain{{128, g}, {0, g}}), "out of order"},
		{"overlapping", streamVMDK(4096, []grain{{0, g}, {0, g}}), "out of order"},
		{"misaligned", streamVMDK(4096, []grain{{3, g}}), "grain boundary"},
		{"past capacity", streamVMDK(4096, []grain{{4096, g}}), "past the capacity"},
		{"too large", streamVMDK(4096, []grain{{0, append(g, g...)}}), "past its grain"},
		{"bad zlib", badZlib, "grain at sector 0"},
		{"truncated in a grain", valid[:600], "truncated"},
		{"truncated before EOS", valid[:len(valid)-512], "truncated"},
		{"unknown marker", unknown, "unknown marker type 9"},
		{"grain size", header(20, 100, 8), "grain size"},
		{"zero capacity", header(12, 0, 8), "capacity"},
		{"huge capacity", header(12, 1<<62, 8), "capacity"},
		{"huge overhead", header(64, 1<<40, 8), "overhead"},
		{"algorithm", header(77, 2, 2), "compress algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Open(bytes.NewReader(tc.in), StreamOptimized, Options{})
			if err == nil {
				_, err = drain(t, img, 1<<20, 2)
				img.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") ||
				!(errors.Is(err, formats.ErrCorrupt) || errors.Is(err, formats.ErrUnsupported)) {
				t.Errorf("got %v; want one corrupt/unsupported line with %q", err, tc.want)
			}
		})
	}
}

// TestProbe: what streams and what spools.
func TestProbe(t *testing.T) {
	s := streamVMDK(128, nil)
	sparse := bytes.Clone(s)
	binary.LittleEndian.PutUint32(sparse[8:], 1) // no markers: a monolithicSparse extent
	for _, tc := range []struct {
		head   []byte
		format string
		want   Kind
	}{
		{s, "", StreamOptimized},
		{s, "vmdk", StreamOptimized},
		{sparse, "vmdk", Spool},
		{pattern(4096), "", Raw},
		{pattern(4096), "vpc", Raw},
		{pattern(4096), "qcow2", Spool},
		{[]byte("QFI\xfb\x00\x00\x00\x03"), "qcow2", Spool},
	} {
		if got := Probe(tc.head, tc.format); got != tc.want {
			t.Errorf("Probe(%q..., -f %q) = %d, want %d", tc.head[:8], tc.format, got, tc.want)
		}
	}
}

// TestCloseStopsProducer: closing the image while the producer waits on
// a full window ends it.
func TestCloseStopsProducer(t *testing.T) {
	img, _ := Open(bytes.NewReader(pattern(20<<20)), Raw, Options{LimitBytes: 1 << 30})
	img.Close()
	<-img.done
	if _, err := img.ReadAt(make([]byte, 1), 0); err == nil {
		t.Error("a read after Close succeeded")
	}
}

// FuzzVMDKStream: no input panics or hangs the stream decoder.
func FuzzVMDKStream(f *testing.F) {
	g := pattern(4096)
	f.Add(streamVMDK(256, []grain{{0, g}, {128, g}}))
	f.Add(streamVMDK(256, []grain{{128, g}, {0, g}}))
	f.Add(streamVMDK(256, nil)[:700])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 20 {
			binary.LittleEndian.PutUint64(b[12:], min(binary.LittleEndian.Uint64(b[12:]), 1<<14)) // keep decodes small
		}
		img, err := Open(bytes.NewReader(b), StreamOptimized, Options{})
		if err != nil {
			return
		}
		defer img.Close()
		buf := make([]byte, 1<<20)
		for off := int64(0); off < img.Size(); off += int64(len(buf)) {
			if _, err := img.ReadAt(buf, off); err != nil && err != io.EOF {
				return
			}
		}
	})
}
