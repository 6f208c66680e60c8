//go:build linux

package mapfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// cachedFile writes n bytes of a pattern and reads them back, so that its
// pages are in the page cache.
func cachedFile(t *testing.T, n int) (*os.File, []byte) {
	t.Helper()
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.ReadAt(make([]byte, n), 0); err != nil {
		t.Fatal(err)
	}
	return f, want
}

func TestMapReadsTheFileAtAnUnalignedOffset(t *testing.T) {
	f, want := cachedFile(t, 1<<20)
	m, ok := Map(f, 12345, 300000)
	if !ok {
		t.Skip("the kernel did not keep the file's pages cached")
	}
	defer m.Close()
	if !bytes.Equal(m.Bytes(), want[12345:12345+300000]) {
		t.Fatal("mapped bytes differ from the file's")
	}
	// A private mapping: writing to it changes nothing in the file.
	m.Bytes()[0] ^= 0xff
	got := make([]byte, 1)
	if _, err := f.ReadAt(got, 12345); err != nil || got[0] != want[12345] {
		t.Fatalf("the file changed under a private mapping: %v %x", err, got)
	}
}

func TestMapRefusesPagesNotInTheCache(t *testing.T) {
	f, _ := cachedFile(t, 1<<20)
	w, err := os.OpenFile(f.Name(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	// Clean pages are dropped on request (POSIX_FADV_DONTNEED).
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Skip("fadvise:", err)
	}
	if m, ok := Map(f, 0, 1<<20); ok {
		m.Close()
		t.Skip("the kernel kept the pages (another reader?)")
	}
}

func TestGuardTurnsAFaultIntoAnError(t *testing.T) {
	f, _ := cachedFile(t, 1<<20)
	m, ok := Map(f, 0, 1<<20)
	if !ok {
		t.Skip("the kernel did not keep the file's pages cached")
	}
	defer m.Close()
	if err := os.Truncate(f.Name(), 0); err != nil {
		t.Fatal(err)
	}
	var sum byte
	err := Guard(func() {
		for _, b := range m.Bytes()[1<<19:] {
			sum += b
		}
	})
	if !errors.Is(err, ErrFault) {
		t.Fatalf("reading pages past a shrunk file's end: %v, want ErrFault", err)
	}
}

func TestGuardPassesOtherPanicsOn(t *testing.T) {
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want the function's own panic", r)
		}
	}()
	_ = Guard(func() { panic("boom") })
}

func TestMapRefusesBadRanges(t *testing.T) {
	f, _ := cachedFile(t, 4096)
	for _, r := range [][2]int64{{0, 0}, {-1, 10}, {0, -5}} {
		if m, ok := Map(f, r[0], r[1]); ok {
			m.Close()
			t.Errorf("Map(%d, %d) mapped", r[0], r[1])
		}
	}
}
