package iso

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
)

// smallISO builds an image of a small tree with vdisk's writer and returns
// its bytes.
func smallISO(t testing.TB, opts CreateOptions, extra func(dir string)) []byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "t")
	os.MkdirAll(filepath.Join(dir, "bb"), 0o755)
	os.WriteFile(filepath.Join(dir, "bb", "f.txt"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o644)
	if extra != nil {
		extra(dir)
	}
	var buf bytes.Buffer
	if err := Create(context.Background(), &buf, os.DirFS(dir), opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openBytes(data []byte) (*FS, error) {
	return Open(bytes.NewReader(data), int64(len(data)), "hostile.iso")
}

func walkAll(f *FS) error {
	return f.Walk("/", func(e Entry) error {
		if e.Mode.IsRegular() {
			r, err := f.Reader(e)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, r)
			return err
		}
		return nil
	})
}

// rootRecordOff is the offset of the primary root directory record.
const rootRecordOff = firstVDOffset + 156

func TestHostileVolumeDescriptors(t *testing.T) {
	base := smallISO(t, CreateOptions{Joliet: true, RockRidge: true}, nil)
	le := binary.LittleEndian
	cases := []struct {
		name  string
		patch func(b []byte) []byte
		want  error
	}{
		{"too short", func(b []byte) []byte { return b[:firstVDOffset+100] }, formats.ErrCorrupt},
		{"primary type 2 only", func(b []byte) []byte { b[firstVDOffset] = vdSupplementary; return b }, formats.ErrCorrupt},
		{"bad identifier", func(b []byte) []byte { copy(b[firstVDOffset+1:], "CD002"); return b }, formats.ErrCorrupt},
		{"logical block 0", func(b []byte) []byte { le.PutUint16(b[firstVDOffset+128:], 0); return b }, formats.ErrCorrupt},
		{"logical block 65535", func(b []byte) []byte { le.PutUint16(b[firstVDOffset+128:], 65535); return b }, formats.ErrCorrupt},
		{"logical block 4096", func(b []byte) []byte { le.PutUint16(b[firstVDOffset+128:], 4096); return b }, formats.ErrUnsupported},
		{"volume size 0xffffffff", func(b []byte) []byte { le.PutUint32(b[firstVDOffset+80:], 0xffffffff); return b }, formats.ErrCorrupt},
		{"volume size 0", func(b []byte) []byte { le.PutUint32(b[firstVDOffset+80:], 0); return b }, formats.ErrCorrupt},
		{"no terminator", func(b []byte) []byte {
			out := append([]byte(nil), b[:firstVDOffset]...)
			for range maxDescriptors + 1 {
				out = append(out, b[firstVDOffset:firstVDOffset+blockBytes]...)
			}
			return out
		}, formats.ErrCorrupt},
		{"terminator missing at EOF", func(b []byte) []byte {
			b = b[:firstVDOffset+blockBytes]
			return b
		}, formats.ErrCorrupt},
		{"root record length 0", func(b []byte) []byte { b[rootRecordOff] = 0; return b }, formats.ErrCorrupt},
		{"root record identifier overflow", func(b []byte) []byte { b[rootRecordOff+drNameLen] = 200; return b }, formats.ErrCorrupt},
		{"root extent past EOF", func(b []byte) []byte { le.PutUint32(b[rootRecordOff+drExtent:], 0x7fffffff); return b }, formats.ErrCorrupt},
		{"root length huge", func(b []byte) []byte { le.PutUint32(b[rootRecordOff+drDataLength:], 0xffffffff); return b }, formats.ErrCorrupt},
	}
	treeOnly := map[string]bool{"root record length 0": true, "root record identifier overflow": true,
		"root extent past EOF": true, "root length huge": true}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.patch(append([]byte(nil), base...))
			_, err := openBytes(b)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: got %v, want %v", err, c.want)
			}
			// As a disk, damaged descriptors are refused with the same kind
			// of error; a damaged tree still opens, without an FS.
			img, err := OpenImage(context.Background(), fileio.NewMem("h.iso", b), formats.OpenOptions{})
			switch {
			case treeOnly[c.name] && err != nil:
				t.Fatalf("OpenImage refused a damaged tree: %v", err)
			case treeOnly[c.name] && img.(*Image).FS() != nil:
				t.Fatal("OpenImage made an FS of a tree Open refuses")
			case !treeOnly[c.name] && !errors.Is(err, c.want):
				t.Fatalf("OpenImage: got %v, want %v", err, c.want)
			}
		})
	}
}

// findRecord returns the offset of the directory record whose identifier
// is id in the primary tree.
func findRecord(t testing.TB, img []byte, id string) int {
	t.Helper()
	pat := append([]byte{byte(len(id))}, id...)
	i := bytes.Index(img, pat)
	if i < drNameLen {
		t.Fatalf("record %q not found", id)
	}
	return i - drNameLen
}

func TestDirectoryLoop(t *testing.T) {
	img := smallISO(t, CreateOptions{}, nil)
	// Point directory BB at the root's extent: BB contains BB contains ...
	rootLBA := binary.LittleEndian.Uint32(img[rootRecordOff+drExtent:])
	rec := findRecord(t, img, "BB")
	both32(img[rec+drExtent:], rootLBA)
	both32(img[rec+drDataLength:], blockBytes)
	f, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := walkAll(f); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("walk: %v", err)
	}
	if err := f.Extract(context.Background(), "/", t.TempDir()); err == nil {
		t.Fatal("extract of a looping tree succeeded")
	}
	// Stat through the loop terminates (the path is finite).
	if _, err := f.Lookup("/BB/BB/BB/HELLO.TXT"); err != nil {
		t.Fatal(err)
	}
}

func TestHugeExtent(t *testing.T) {
	img := smallISO(t, CreateOptions{}, nil)
	rec := findRecord(t, img, "HELLO.TXT;1")
	both32(img[rec+drDataLength:], 0xffffffff)
	f, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Entries("/"); !errors.Is(err, formats.ErrCorrupt) {
		t.Fatalf("huge extent: %v", err)
	}
}

func TestContinuationLoop(t *testing.T) {
	img := smallISO(t, CreateOptions{RockRidge: true}, func(dir string) {
		long := bytes.Repeat([]byte("n"), 200)
		os.WriteFile(filepath.Join(dir, string(long)), nil, 0o644)
	})
	// The long name's NM lives in a continuation area; make that area's
	// first entry a CE pointing at itself.
	i := bytes.Index(img, []byte("NM\xcd\x01\x00nnn"))
	if i < 0 {
		t.Fatal("NM entry not found")
	}
	ce := suspCE(int64(i), 28)
	copy(img[i:], ce)
	f, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Entries("/"); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("CE loop: %v", err)
	}
}

func TestUnsafeNames(t *testing.T) {
	for _, name := range []string{"..", ".", "a/"} {
		img := smallISO(t, CreateOptions{RockRidge: true}, nil)
		i := bytes.Index(img, []byte("NM\x07\x01\x00bb"))
		if i < 0 {
			t.Fatal("NM entry not found")
		}
		copy(img[i+5:], name)
		if len(name) == 1 {
			img[i+2] = 6
		}
		f, err := openBytes(img)
		if err != nil {
			t.Fatal(err)
		}
		dest := t.TempDir()
		if err := f.Extract(context.Background(), "/", filepath.Join(dest, "out")); !errors.Is(err, formats.ErrCorrupt) {
			t.Fatalf("%q: extract: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dest, "f.txt")); err == nil {
			t.Fatalf("%q: a file was written outside the destination", name)
		}
	}
}

// TestSymlinkEscape: a symlink pointing outside the destination and a
// directory of the same name (crafted duplicate) must not let a file be
// written through the link.
func TestSymlinkEscape(t *testing.T) {
	outside := t.TempDir()
	img := smallISO(t, CreateOptions{RockRidge: true}, func(dir string) {
		os.Symlink(outside, filepath.Join(dir, "aa"))
	})
	i := bytes.Index(img, []byte("NM\x07\x01\x00bb"))
	copy(img[i+5:], "aa")
	f, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Extract(context.Background(), "/", filepath.Join(t.TempDir(), "dest")); err == nil {
		t.Fatal("extract through a symlink succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the destination: %v", ents)
	}
}

func TestUDF(t *testing.T) {
	img := smallISO(t, CreateOptions{}, nil)
	// A UDF-only image: BEA01/NSR02 instead of CD001 at block 16.
	udf := append([]byte(nil), img...)
	copy(udf[firstVDOffset+1:], "BEA01")
	copy(udf[firstVDOffset+blockBytes+1:], "NSR02")
	if got := probe(formats.ProbeInput{Header: udf[:min(len(udf), formats.ProbeHeaderBytes)]}); got != formats.ProbeNone {
		t.Fatalf("UDF-only image probed %d", got)
	}
	// A UDF bridge: ISO 9660 descriptors, then the UDF recognition sequence.
	term := bytes.Index(img[firstVDOffset:], []byte{vdTerminator, 'C', 'D', '0', '0', '1'}) + firstVDOffset
	bridge := append([]byte(nil), img...)
	copy(bridge[term+blockBytes+1:], "BEA01")
	copy(bridge[term+2*blockBytes+1:], "NSR03")
	d, err := Describe(bytes.NewReader(bridge), int64(len(bridge)), "bridge.iso")
	if err != nil || !d.UDF {
		t.Fatalf("bridge: %v %+v", err, d)
	}
}

func TestFormatConfusion(t *testing.T) {
	img := smallISO(t, CreateOptions{}, nil)
	// A qcow2-like or VDI signature hidden in the system area makes probes
	// disagree: the registry refuses such a file (tested where both drivers
	// are registered). Here: the ISO probe still sees an ISO behind a GPT.
	copy(img[512:], "EFI PART")
	if got := probe(formats.ProbeInput{Header: img[:min(len(img), formats.ProbeHeaderBytes)]}); got != formats.ProbeCertain {
		t.Fatalf("ISO behind a GPT probed %d", got)
	}
	d, err := Describe(bytes.NewReader(img), int64(len(img)), "gpt.iso")
	if err != nil || !d.HybridGPT {
		t.Fatalf("%v %+v", err, d)
	}
}

func FuzzOpen(f *testing.F) {
	// Inputs are patches over small valid images (fuzzpatch): a whole image
	// as the input is minimised for a minute each time the fuzzer finds
	// new coverage.
	bases := [][]byte{smallISO(f, CreateOptions{}, nil),
		smallISO(f, CreateOptions{Joliet: true, RockRidge: true}, func(dir string) {
			os.Symlink("../x/y", filepath.Join(dir, "ln"))
		})}
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		data := fuzzpatch.Apply(bases, input)
		if d, err := Describe(bytes.NewReader(data), int64(len(data)), "fuzz.iso"); err == nil {
			d.Details()
		}
		fsys, err := openBytes(data)
		if err != nil {
			return
		}
		walkAll(fsys)
	})
}

// FuzzRecords fuzzes one directory extent: the bytes of the root directory.
func FuzzRecords(f *testing.F) {
	base := smallISO(f, CreateOptions{RockRidge: true, Joliet: true}, nil)
	rootOff := int(binary.LittleEndian.Uint32(base[rootRecordOff+drExtent:])) * blockBytes
	// Inputs are patches over the root directory's block (fuzzpatch), so
	// that they stay a few bytes long.
	root := [][]byte{base[rootOff : rootOff+blockBytes]}
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, input []byte) {
		dir := fuzzpatch.Apply(root, input)
		if len(dir) > blockBytes {
			dir = dir[:blockBytes]
		}
		img := append([]byte(nil), base...)
		copy(img[rootOff:rootOff+blockBytes], make([]byte, blockBytes))
		copy(img[rootOff:], dir)
		fsys, err := openBytes(img)
		if err != nil {
			return
		}
		walkAll(fsys)
	})
}
