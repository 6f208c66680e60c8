package split

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// dirCreator writes a set's files straight into a directory.
type dirCreator struct {
	mu        sync.Mutex
	discarded []string
}

func (d *dirCreator) Create(path string) (formats.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return formats.NewOSFile(f), nil
}

func (d *dirCreator) Discard(path string) {
	d.mu.Lock()
	d.discarded = append(d.discarded, path)
	d.mu.Unlock()
	os.Remove(path)
}

// writeSet writes content through a Writer of pieceBytes pieces in
// scattered chunks (as a driver writes), with a write past the end that a
// Truncate then drops; it returns the base path.
func writeSet(t *testing.T, dir string, content []byte, pieceBytes int64) (string, *dirCreator) {
	t.Helper()
	base := filepath.Join(dir, "disk.img")
	c := &dirCreator{}
	w, err := NewWriter(base, pieceBytes, c)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	const chunk = 100000
	order := rng.Perm((len(content) + chunk - 1) / chunk)
	for _, i := range order {
		lo, hi := i*chunk, min(len(content), (i+1)*chunk)
		if bytes.Count(content[lo:hi], []byte{0}) == hi-lo {
			continue // holes stay holes
		}
		if _, err := w.WriteAt(content[lo:hi], int64(lo)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.WriteAt([]byte("past"), int64(len(content))+3*pieceBytes); err != nil {
		t.Fatal(err)
	}
	if err := w.Truncate(int64(len(content))); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(content))
	if _, err := w.ReadAt(got, 0); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("reading back the writer: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return base, c
}

func content(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range b {
		if (i/300000)%3 != 1 { // runs of zeros between data
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

// TestWriteRead: the pieces concatenated are the content, each but the
// last of the piece size; Open of the first piece and of the manifest read
// the content back, with the holes as Zero extents.
func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	want := content(5<<20 + 12345)
	base, c := writeSet(t, dir, want, 1<<20)
	var cat []byte
	for i := 0; i < 6; i++ {
		b, err := os.ReadFile(PieceName(base, i))
		if err != nil {
			t.Fatal(err)
		}
		if i < 5 && len(b) != 1<<20 {
			t.Errorf("piece %d is %d bytes", i, len(b))
		}
		cat = append(cat, b...)
	}
	if !bytes.Equal(cat, want) {
		t.Fatal("the pieces concatenated differ from the content")
	}
	if _, err := os.Stat(PieceName(base, 6)); err == nil || len(c.discarded) != 1 {
		t.Errorf("the piece past the end was not discarded (%v)", c.discarded)
	}
	for _, open := range []string{base + ".001", base + ".split"} {
		f, err := OpenPath(open, false)
		if err != nil {
			t.Fatal(err)
		}
		size, _ := f.Size()
		got := make([]byte, size)
		if n, err := f.ReadAt(got, 0); n != len(want) || (err != nil && err.Error() != "EOF") || !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes, %v", open, n, err)
		}
		exts, err := imageio.FileExtents(f, 0, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		var data int64
		for _, e := range exts {
			if e.Kind == formats.Data {
				data += e.Length
			}
		}
		if data == size {
			t.Logf("%s: no holes reported (file system without SEEK_HOLE?)", open)
		}
		if _, err := OpenPath(open, true); !errors.Is(err, formats.ErrReadOnly) {
			t.Errorf("writable open of a set: %v", err)
		}
		f.Close()
	}
	// A plain file is opened as itself.
	plain := filepath.Join(dir, "plain.001")
	os.WriteFile(plain, []byte("x"), 0o644)
	if f, err := OpenPath(plain, false); err != nil || f.Name() != plain {
		t.Errorf("plain file: %v", err)
	} else if _, ok := f.(*Set); ok {
		t.Error("a lone .001 file was opened as a set")
	}
}

// TestBrokenSets: a missing, short, reordered or extra piece is an error
// naming it.
func TestBrokenSets(t *testing.T) {
	want := content(4 << 20)
	for _, tc := range []struct {
		name     string
		break_   func(base string)
		manifest bool
		piece    string // the name the error must contain
	}{
		{"missing middle", func(b string) { os.Remove(b + ".002") }, false, ".002"},
		{"missing middle (manifest)", func(b string) { os.Remove(b + ".003") }, true, ".003"},
		{"short middle", func(b string) { os.Truncate(b+".002", 1000) }, false, ".002"},
		{"short last (manifest)", func(b string) { os.Truncate(b+".004", 1000) }, true, ".004"},
		{"swapped (manifest)", func(b string) {
			os.Rename(b+".002", b+".tmp")
			os.Rename(b+".003", b+".002")
			os.Rename(b+".tmp", b+".003")
		}, true, ".002"},
		{"extra (manifest)", func(b string) { os.WriteFile(b+".005", []byte("x"), 0o644) }, true, ".005"},
		{"garbled manifest", func(b string) { os.WriteFile(b+".split", []byte(manifestMagic+"\nsize x\n"), 0o644) }, true, ".split"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := writeSet(t, t.TempDir(), want, 1<<20)
			if !tc.manifest {
				os.Remove(base + ".split")
			}
			tc.break_(base)
			_, err := Open(base + ".001")
			if err == nil {
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), "disk.img"+tc.piece) || !errors.Is(err, formats.ErrCorrupt) {
				t.Errorf("error %q does not name %s (or is not ErrCorrupt)", err, tc.piece)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(manifestMagic + "\nsize 3\npiece-size 2\npiece d.001 2 0011223344556677\npiece d.002 1 0011223344556677\n")
	f.Add(manifestMagic + "\nsize 0\npiece-size 1\npiece d.001 0 0011223344556677\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseManifest(strings.NewReader(text), "d.split", "d")
		if err != nil {
			return
		}
		var total int64
		for _, p := range m.pieces {
			total += p.size
		}
		if total != m.size || len(m.pieces) == 0 {
			t.Fatalf("accepted an inconsistent manifest: %+v", m)
		}
	})
}
