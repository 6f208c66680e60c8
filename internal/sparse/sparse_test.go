package sparse_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/sparse"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// layout is the test file: data written at these ranges of a 4 MiB file, the
// rest never written (holes on a file system with sparse files).
var layout = []struct{ off, length int64 }{
	{0, 64 * kib},
	{1 * mib, 128 * kib},
	{3*mib + 4*kib, 4 * kib},
}

const fileSize = 4 * mib

// sparseFile writes layout into a new file of fileSize bytes; data bytes are
// never zero, so a range reads zeros exactly where nothing was written.
func sparseFile(t *testing.T) (*os.File, []byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(fileSize); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, fileSize)
	for i, r := range layout {
		chunk := bytes.Repeat([]byte{byte(0x11 * (i + 1))}, int(r.length))
		if _, err := f.WriteAt(chunk, r.off); err != nil {
			t.Fatal(err)
		}
		copy(want[r.off:], chunk)
	}
	return f, want
}

// ops are the implementations every test runs: this OS's and the portable
// fallback, through the same interface.
var ops = []struct {
	name  string
	ops   sparse.Ops
	holes bool // finds and punches holes on this test's file system
}{
	{"native", sparse.Native(), runtime.GOOS == "linux"},
	{"fallback", sparse.Fallback(), false},
}

// checkRuns verifies that runs tile [off, off+length) in order, that every
// hole reads as zeros in want, and that every written byte is in a data run.
func checkRuns(t *testing.T, runs []sparse.Run, want []byte, off, length int64) (holeBytes int64) {
	t.Helper()
	pos := off
	for _, r := range runs {
		if r.Offset != pos || r.Length <= 0 {
			t.Fatalf("runs %+v: run %+v does not start at %d", runs, r, pos)
		}
		pos += r.Length
		if !r.Hole {
			continue
		}
		holeBytes += r.Length
		for i := r.Offset; i < min(r.Offset+r.Length, int64(len(want))); i++ {
			if want[i] != 0 {
				t.Fatalf("hole %+v covers written byte %d", r, i)
			}
		}
	}
	if pos != off+length {
		t.Fatalf("runs %+v end at %d, want %d", runs, pos, off+length)
	}
	return holeBytes
}

func TestRuns(t *testing.T) {
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			f, want := sparseFile(t)
			for _, r := range []struct{ off, length int64 }{
				{0, fileSize},
				{32 * kib, 2 * mib},          // starts inside data, ends in a hole
				{100 * kib, 4 * kib},         // inside a hole
				{fileSize - 4*kib, 64 * kib}, // runs past EOF
				{3 * mib, 0},
			} {
				runs, err := tc.ops.Runs(f, r.off, r.length)
				if err != nil {
					t.Fatal(err)
				}
				holes := checkRuns(t, runs, want, r.off, r.length)
				if !tc.holes && holes != 0 {
					t.Errorf("Runs(%d, %d) = %+v: holes from an implementation that cannot find them", r.off, r.length, runs)
				}
				if tc.holes && r.off == 0 && r.length == fileSize {
					// Everything but the three written ranges was never
					// written: a sparse file system reports most of it.
					if holes < fileSize-2*mib {
						t.Errorf("Runs found %d hole bytes of the %d never written: %+v", holes, fileSize-(64+128+4)*kib, runs)
					}
				}
			}
		})
	}
}

// statBlocks is the file's allocated 512-byte blocks as coreutils stat(1)
// reports them (an independent reader of st_blocks).
func statBlocks(t *testing.T, path string) int64 {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%b", path).Output()
	if err != nil {
		t.Skipf("stat(1): %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readAll(t *testing.T, f *os.File) []byte {
	t.Helper()
	got := make([]byte, fileSize)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPunchHole(t *testing.T) {
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			f, want := sparseFile(t)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			before := statBlocks(t, f.Name())
			// A whole-block range in the second data run and an unaligned
			// one inside the first.
			punches := []struct{ off, length int64 }{{1 * mib, 64 * kib}, {100, 5000}}
			for _, p := range punches {
				err := tc.ops.PunchHole(f, p.off, p.length)
				if !tc.holes {
					if !errors.Is(err, errors.ErrUnsupported) {
						t.Fatalf("PunchHole: %v, want errors.ErrUnsupported", err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				clear(want[p.off : p.off+p.length])
			}
			if got := readAll(t, f); !bytes.Equal(got, want) {
				t.Error("content after PunchHole differs from the expected bytes")
			}
			if st, _ := f.Stat(); st.Size() != fileSize {
				t.Errorf("size after PunchHole %d, want %d", st.Size(), fileSize)
			}
			after := statBlocks(t, f.Name())
			switch {
			case tc.holes && before-after < 64*kib/512:
				t.Errorf("stat blocks %d -> %d: punching 64 KiB freed less", before, after)
			case !tc.holes && after != before:
				t.Errorf("stat blocks %d -> %d after a refused punch", before, after)
			}
			runs, err := tc.ops.Runs(f, 0, fileSize)
			if err != nil {
				t.Fatal(err)
			}
			checkRuns(t, runs, want, 0, fileSize)
		})
	}
}

func TestAllocate(t *testing.T) {
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			f, want := sparseFile(t)
			before := statBlocks(t, f.Name())
			err := tc.ops.Allocate(f, 0, fileSize)
			if !tc.holes {
				if !errors.Is(err, errors.ErrUnsupported) {
					t.Fatalf("Allocate: %v, want errors.ErrUnsupported", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f); !bytes.Equal(got, want) {
				t.Error("Allocate changed the file's content")
			}
			after := statBlocks(t, f.Name())
			if tc.holes && after < fileSize/512 {
				t.Errorf("stat blocks %d -> %d after Allocate of %d bytes", before, after, fileSize)
			}
			got, err := tc.ops.Allocated(f)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.holes && got != after*512:
				t.Errorf("Allocated %d, stat(1) says %d blocks of 512", got, after)
			case !tc.holes && got != fileSize:
				t.Errorf("fallback Allocated %d, want the file size %d", got, fileSize)
			}
		})
	}
}

func TestAllocatedPath(t *testing.T) {
	f, _ := sparseFile(t)
	f.Sync()
	got, err := sparse.AllocatedPath(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if want := statBlocks(t, f.Name()) * 512; runtime.GOOS == "linux" && got != want {
		t.Errorf("AllocatedPath %d, stat(1) says %d", got, want)
	}
	if _, err := sparse.AllocatedPath(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("AllocatedPath of a missing file: %v", err)
	}
}
