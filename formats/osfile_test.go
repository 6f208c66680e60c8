package formats_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/imageio"
	"github.com/vdiskio/vdisk/internal/sparse"
	"github.com/vdiskio/vdisk/raw"
)

// holeyFile makes a 2 MiB file with 64 KiB of data at 0 and at 1 MiB and
// holes elsewhere, and returns it with its expected content.
func holeyFile(t *testing.T) (*os.File, []byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	want := make([]byte, 2<<20)
	for _, off := range []int{0, 1 << 20} {
		copy(want[off:off+64<<10], bytes.Repeat([]byte{0x5a}, 64<<10))
	}
	if err := f.Truncate(int64(len(want))); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1 << 20} {
		if _, err := f.WriteAt(want[off:off+64<<10], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return f, want
}

// stat512 is st_blocks as coreutils stat(1) reports it.
func stat512(t *testing.T, path string) int64 {
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

// TestOSFileHoleOps runs the File capabilities and their users (extents,
// zeroing, preallocation, the raw driver) over an OS file with this OS's
// hole operations and with the portable fallback: the fallback reports
// everything as data, zeroes by writing zeros and refuses falloc by name;
// both leave the same content.
func TestOSFileHoleOps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ops   sparse.Ops
		holes bool
	}{
		{"native", sparse.Native(), runtime.GOOS == "linux"},
		{"fallback", sparse.Fallback(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			osf, want := holeyFile(t)
			f := formats.NewOSFileOps(osf, tc.ops)

			exts, err := imageio.FileExtents(f, 0, 0, int64(len(want)))
			if err != nil {
				t.Fatal(err)
			}
			zero := 0
			for _, e := range exts {
				if e.Kind == formats.Zero {
					zero++
					if !bytes.Equal(want[e.Offset:e.End()], make([]byte, e.Length)) {
						t.Errorf("zero extent %+v holds data", e)
					}
				}
			}
			if tc.holes != (zero > 0) {
				t.Errorf("extents %+v: holes found %v, want %v", exts, zero > 0, tc.holes)
			}

			// Zeroing 64 KiB of data: a punched hole, or zeros written.
			before := stat512(t, osf.Name())
			if err := fileio.ZeroRange(f, 1<<20, 64<<10); err != nil {
				t.Fatal(err)
			}
			clear(want[1<<20 : 1<<20+64<<10])
			got := make([]byte, len(want))
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("content after ZeroRange differs")
			}
			after := stat512(t, osf.Name())
			if tc.holes && before-after < 64<<10/512 {
				t.Errorf("ZeroRange punched nothing: %d -> %d blocks", before, after)
			}
			if !tc.holes && after < before {
				t.Errorf("fallback ZeroRange freed blocks (%d -> %d): it cannot punch", before, after)
			}

			err = fileio.Preallocate(context.Background(), f, 0, int64(len(want)))
			if tc.holes && err != nil {
				t.Errorf("Preallocate: %v", err)
			}
			if !tc.holes && !errors.Is(err, formats.ErrUnsupported) {
				t.Errorf("fallback Preallocate: %v, want ErrUnsupported", err)
			}

			n, err := f.(formats.AllocationSizer).AllocatedBytes()
			if err != nil {
				t.Fatal(err)
			}
			if tc.holes && n != stat512(t, osf.Name())*512 || !tc.holes && n != int64(len(want)) {
				t.Errorf("AllocatedBytes %d (stat says %d blocks, size %d)", n, stat512(t, osf.Name()), len(want))
			}

			// The raw driver over the same file: its extents and zeroing go
			// through the same capabilities.
			img, err := raw.Open(context.Background(), f, formats.OpenOptions{Writable: true})
			if err != nil {
				t.Fatal(err)
			}
			rexts, err := img.Extents(0, img.Size())
			if err != nil {
				t.Fatal(err)
			}
			if !tc.holes && (len(rexts) != 1 || rexts[0].Kind != formats.Data) {
				t.Errorf("fallback raw extents %+v, want one data extent", rexts)
			}
			if err := img.(formats.ZeroWriter).WriteZeroes(0, 4096); err != nil {
				t.Fatal(err)
			}
			clear(want[:4096])
			if _, err := img.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("content after raw WriteZeroes differs")
			}
		})
	}
}

// shrinkingOps cuts the file to half its size in the middle of Runs and
// fails as the second lseek does then (ENXIO: the offset is past the end).
type shrinkingOps struct{ sparse.Ops }

func (shrinkingOps) Runs(f *os.File, off, length int64) ([]sparse.Run, error) {
	if err := f.Truncate((off + length) / 2); err != nil {
		return nil, err
	}
	return nil, &os.PathError{Op: "seek", Path: f.Name(), Err: syscall.ENXIO}
}

// TestRunsOfAShrinkingSource: a source cut short while its holes are being
// found is reported as a changed source (ErrSourceChanged), not as the
// seek's error.
func TestRunsOfAShrinkingSource(t *testing.T) {
	f, _ := holeyFile(t)
	src, err := formats.NewSourceOSFileOps(f, shrinkingOps{sparse.Fallback()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.(formats.HoleFinder).Runs(0, 2<<20)
	if !errors.Is(err, formats.ErrSourceChanged) {
		t.Fatalf("Runs of a source cut short: %v, want ErrSourceChanged", err)
	}
}
