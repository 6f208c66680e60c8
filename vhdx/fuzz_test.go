package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
)

// The fuzz targets splice the fuzzer's bytes into one structure of a small
// valid image and open it: nothing may panic, and whatever opens must read,
// map and check without error-free nonsense.

var (
	templateOnce sync.Once
	template     []byte
)

func fuzzTemplate(tb testing.TB) []byte {
	templateOnce.Do(func() {
		template = memImage(tb, 8<<20, "block_size=1M", map[int64][]byte{0: filled(4096, 1), 3<<20 + 512: filled(8192, 2)})
	})
	return template
}

// splice returns the template with data written at off (clipped to limit
// bytes), as a read-only file that shares the template's bytes.
func splice(tb testing.TB, off int64, limit int, data []byte) *patchFile {
	return &patchFile{base: fuzzTemplate(tb), patches: []patch{{off, data[:min(len(data), limit)]}}}
}

// patchFile is a read-only file: base with patches laid over it.
type patchFile struct {
	bigFile
	base    []byte
	patches []patch
}

type patch struct {
	off  int64
	data []byte
}

func (f *patchFile) add(off int64, data []byte) { f.patches = append(f.patches, patch{off, data}) }

func (f *patchFile) Size() (int64, error) { return int64(len(f.base)), nil }

func (f *patchFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(f.base)) {
		return 0, io.EOF
	}
	n := copy(p, f.base[off:])
	for _, pt := range f.patches {
		lo, hi := max(off, pt.off), min(off+int64(n), pt.off+int64(len(pt.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], pt.data[lo-pt.off:hi-pt.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// exercise opens f (without its parent, if any) with the BAT whole and
// paged, and uses every read path on what opens.
func exercise(t *testing.T, f formats.File) {
	exerciseWith(t, f, formats.Limits{MaxTableBytes: 4 << 20})
	exerciseWith(t, f, formats.Limits{MaxTableBytes: 8, CacheBytes: 1})
}

func exerciseWith(t *testing.T, f formats.File, lim formats.Limits) {
	img, err := Open(context.Background(), f, formats.OpenOptions{Limits: lim, NoBacking: true})
	if err != nil {
		return
	}
	defer img.Close()
	buf := make([]byte, 128<<10)
	for _, off := range []int64{0, img.Size() / 2, img.Size() - 1000} {
		if off < 0 {
			continue
		}
		if _, err := img.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return
		}
	}
	if _, err := img.Extents(0, img.Size()); err != nil {
		return
	}
	if _, err := img.Check(context.Background(), formats.CheckOptions{}); err != nil {
		return
	}
}

// headerFieldBytes is how much of each 4 KiB header holds fields (the rest
// is reserved zeros): what FuzzHeaders mutates.
const headerFieldBytes = 80

// FuzzHeaders fuzzes the fields of the two headers: the input's first 80
// bytes replace header 1's, the next 80 header 2's. An input of odd length
// gets the checksums recomputed, so the fields behind them are reached; an
// even one keeps them as they fall (the checksum test itself). The inputs
// stay small: the fuzzer mutates instead of minimising 8 KiB.
func FuzzHeaders(f *testing.F) {
	t := fuzzTemplate(f)
	fields := append(append([]byte(nil), t[header1Offset:header1Offset+headerFieldBytes]...), t[header2Offset:header2Offset+headerFieldBytes]...)
	f.Add(fields)
	f.Add(append(bytes.Clone(fields), 1))
	f.Add([]byte("head"))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := fuzzTemplate(t)
		h1 := bytes.Clone(base[header1Offset : header1Offset+headerSize])
		h2 := bytes.Clone(base[header2Offset : header2Offset+headerSize])
		copy(h1[:headerFieldBytes], data)
		if len(data) > headerFieldBytes {
			copy(h2[:headerFieldBytes], data[headerFieldBytes:])
		}
		if len(data)%2 == 1 {
			setChecksum(h1, 4)
			setChecksum(h2, 4)
		}
		if h, ok := decodeHeader(h1); ok {
			if h2, ok := decodeHeader(h.encode()); !ok || h2 != h {
				t.Fatal("header does not round-trip")
			}
		}
		exercise(t, &patchFile{base: base, patches: []patch{{header1Offset, h1}, {header2Offset, h2}}})
	})
}

// FuzzRegions fuzzes region table 1 (table 2 is made invalid).
func FuzzRegions(f *testing.F) {
	t := fuzzTemplate(f)
	f.Add(t[region1Offset : region1Offset+16+2*regionEntrySize])
	f.Add(encodeRegionTable(append([]region{{GUID: regionBAT, Offset: 1 << 20, Length: 1 << 20}}, unknownRegions(5)...))[:512])
	f.Fuzz(func(t *testing.T, data []byte) {
		table := make([]byte, regionTableSize)
		copy(table, fuzzTemplate(t)[region1Offset:])
		copy(table, data)
		setChecksum(table, 4) // let the fuzzer reach the entries
		decodeRegionTable(table)
		f := splice(t, region1Offset, regionTableSize, table)
		f.add(region2Offset, []byte{0})
		exercise(t, f)
	})
}

// FuzzMetadata fuzzes the metadata table and items.
func FuzzMetadata(f *testing.F) {
	t := fuzzTemplate(f)
	meta := regionOf(t, regionMetadata)
	seed := append([]byte(nil), t[meta:meta+metaTableSize+256]...)
	f.Add(seed)
	f.Add(seed[:512])
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 100 {
			decodeParentLocator(data[100:])
		}
		exercise(t, splice(t, regionOf(fuzzTemplate(t), regionMetadata), 1<<20, data))
	})
}

// FuzzLog fuzzes the log region of an image whose header names a log.
func FuzzLog(f *testing.F) {
	b, _ := logImage(f)
	h, _ := decodeHeader(b[header2Offset:])
	log := b[h.LogOffset : h.LogOffset+uint64(h.LogLength)]
	// Inputs are patches (fuzzpatch) over 12 KiB: the log's first 8 KiB and
	// its last 4 KiB (where the seed's active sequence wraps around). An
	// input of odd length gets every entry's checksum recomputed, so that
	// the descriptors behind it are reached.
	const headBytes, tailBytes = 2 * logSectorSize, logSectorSize
	wrap := append(append([]byte(nil), log[:headBytes]...), log[len(log)-tailBytes:]...)
	single := make([]byte, headBytes+tailBytes)
	copy(single, encodeLogEntry(1, 0, testLogGUID, 8<<20, 8<<20, []logDesc{{fileOff: 4 << 20, zeroLen: 4096}}))
	bases := [][]byte{wrap, single}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
		f.Add(append(s, 0))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		parts := fuzzpatch.Apply(bases, input)
		l := make([]byte, h.LogLength)
		copy(l, parts[:min(len(parts), headBytes)])
		if len(parts) > headBytes {
			copy(l[len(l)-tailBytes:], parts[headBytes:min(len(parts), headBytes+tailBytes)])
		}
		if len(input)%2 == 1 {
			fixLogChecksums(l)
		}
		activeSequence(l, testLogGUID)
		pf := &patchFile{base: b}
		pf.add(int64(h.LogOffset), l)
		exercise(t, pf)
	})
}

// fixLogChecksums recomputes the checksum of every entry header in log
// whose length fits.
func fixLogChecksums(log []byte) {
	for pos := int64(0); pos+logSectorSize <= int64(len(log)); pos += logSectorSize {
		s := log[pos : pos+logSectorSize]
		n := int64(binary.LittleEndian.Uint32(s[8:]))
		if [4]byte(s[0:4]) != sigLogEntry || n <= 0 || n%logSectorSize != 0 || n > int64(len(log)) {
			continue
		}
		binary.LittleEndian.PutUint32(s[4:], ring{log: log, start: pos}.checksum(n))
	}
}

// FuzzBAT fuzzes the BAT entries.
func FuzzBAT(f *testing.F) {
	t := fuzzTemplate(f)
	bat := regionOf(t, regionBAT)
	f.Add(append([]byte(nil), t[bat:bat+16*batEntrySize]...))
	f.Add(le64(batEntry(payloadFull, 1<<40)))
	f.Fuzz(func(t *testing.T, data []byte) {
		exercise(t, splice(t, regionOf(fuzzTemplate(t), regionBAT), 1<<20, data))
	})
}

// diffTemplate is a differencing disk with PARTIALLY_PRESENT and
// FULLY_PRESENT blocks and a sector bitmap.
func diffTemplate(f *testing.F) []byte {
	dir := f.TempDir()
	base := create(f, filepath.Join(dir, "base.vhdx"), 8<<20, "block_size=1M")
	if err := base.Close(); err != nil {
		f.Fatal(err)
	}
	childPath := filepath.Join(dir, "child.vhdx")
	o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx,block_size=1M")
	file, _ := os.Create(childPath)
	c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(file), Name: childPath, Options: o})
	if err != nil {
		f.Fatal(err)
	}
	c.WriteAt(filled(1000, 1), 5000)
	c.WriteAt(filled(1<<20, 2), 3<<20)
	c.WriteAt(filled(4096, 3), 6<<20+512)
	if err := c.Close(); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(childPath)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDiffBAT fuzzes the BAT of a differencing disk (payload and sector
// bitmap entries, PARTIALLY_PRESENT blocks), opened without its parent.
func FuzzDiffBAT(f *testing.F) {
	t := diffTemplate(f)
	bat := regionOf(t, regionBAT)
	cr := int64(sectorsPerBitmap * 512 / (1 << 20))
	f.Add(append([]byte(nil), t[bat:bat+16*batEntrySize]...), le64(getBAT(t, cr)))
	f.Fuzz(func(tt *testing.T, payload, bitmap []byte) {
		pf := &patchFile{base: t}
		pf.add(bat, payload[:min(len(payload), 1<<16)])
		pf.add(bat+cr*batEntrySize, bitmap[:min(len(bitmap), batEntrySize)])
		exercise(tt, pf)
	})
}
