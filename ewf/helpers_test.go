package ewf

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/raw"
)

// source returns a disk of size bytes (a multiple of 512) mixing random,
// zero and repetitive (compressible) runs, deterministic for a seed.
func source(size int64, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	r := rand.New(rand.NewChaCha8(key))
	bytesSrc := rand.NewChaCha8(key)
	b := make([]byte, size)
	for off := int64(0); off < size; {
		n := min(size-off, int64(r.IntN(96)+1)<<10)
		switch r.IntN(3) {
		case 0:
			bytesSrc.Read(b[off : off+n])
		case 1: // zeros
		case 2:
			word := fmt.Sprintf("sector text %d ", r.IntN(1000))
			for i := off; i < off+n; i += int64(copy(b[i:off+n], word)) {
			}
		}
		off += n
	}
	return b
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tool runs an ewf-tools program and fails unless it exits 0.
func tool(t testing.TB, name string, args ...string) string {
	t.Helper()
	r := qemutest.Exec(t, name, args...)
	if r.Code != 0 {
		t.Fatalf("%s %s: exit %d\n%s%s", name, strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// acquire makes an image with ewfacquire (unattended) from the raw file src
// and returns the path of its first segment.
func acquire(t testing.TB, src, target string, args ...string) string {
	t.Helper()
	tool(t, "ewfacquire", append(append([]string{"-u", "-q", "-t", target}, args...), src)...)
	matches, _ := filepath.Glob(target + ".[EeSs]01")
	if len(matches) != 1 {
		t.Fatalf("ewfacquire made no first segment for %s", target)
	}
	return matches[0]
}

// export returns the disk of an EWF image as ewfexport -f raw writes it.
func export(t testing.TB, first string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export")
	tool(t, "ewfexport", "-u", "-q", "-f", "raw", "-t", out, first)
	data, err := os.ReadFile(out + ".raw")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readAll opens an image with vdisk and reads its whole disk.
func readAll(t testing.TB, path string, opts formats.OpenOptions) []byte {
	t.Helper()
	img, err := formats.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer img.Close()
	if img.Format() != Name {
		t.Fatalf("%s opened as %s", path, img.Format())
	}
	return readImage(t, img)
}

func readImage(t testing.TB, img formats.Image) []byte {
	t.Helper()
	data := make([]byte, img.Size())
	// Odd-sized reads cross chunk boundaries on purpose.
	for off := int64(0); off < img.Size(); {
		n := min(img.Size()-off, 100_000)
		if _, err := img.ReadAt(data[off:off+n], off); err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
		off += n
	}
	return data
}

// vdiskConvert writes src (a raw file) as EWF at dst with -o opts.
func vdiskConvert(t testing.TB, src, dst, opts string) {
	t.Helper()
	err := convert.Run(context.Background(), convert.Job{Source: src, Target: dst, Format: Name, CreateOptions: opts,
		SourceOpen: formats.OpenOptions{Format: "raw"}})
	if err != nil {
		t.Fatalf("convert -O ewf -o %s: %v", opts, err)
	}
}

// segmentFiles lists the files of dir, sorted.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func md5hex(b []byte) string  { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
func sha1hex(b []byte) string { s := sha1.Sum(b); return hex.EncodeToString(s[:]) }

// ewfinfoField returns the value of a "Name:\tvalue" line of ewfinfo.
func ewfinfoField(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memImage writes data as a single-segment EWF image in memory and returns
// the segment file's bytes.
func memImage(t testing.TB, data []byte, opts string) []byte {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	mem := fileio.NewMem("mem.E01", nil)
	w, err := Create(context.Background(), formats.CreateRequest{File: mem, Name: "mem.E01", Size: int64(len(data)), Options: o,
		Siblings: func(name string) (formats.File, error) { return nil, fmt.Errorf("no sibling %s in memory", name) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return mem.Bytes()
}

// openMem opens EWF bytes held in memory as a single segment.
func openMem(b []byte) (*Image, error) {
	return open(fileio.NewMem("mem.E01", b), formats.OpenOptions{})
}

func equalBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: differ at byte %d (lengths %d and %d)", what, i, len(got), len(want))
	}
}
