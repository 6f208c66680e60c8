package rescue

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/vdiskio/vdisk/ewf"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/faultfile"
	"github.com/vdiskio/vdisk/internal/fileio"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vdi"
	_ "github.com/vdiskio/vdisk/vhd"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32() | 1)
	}
	return b
}

// memTarget is a new raw image in memory (the raw driver over a memory file).
func memTarget(t *testing.T, size int64) (formats.Writable, *fileio.Mem) {
	t.Helper()
	drv, err := formats.Lookup("raw")
	if err != nil {
		t.Fatal(err)
	}
	mem := fileio.NewMem("out.raw", nil)
	opts, _ := formats.ParseOptions(drv.CreateOptions, "")
	opts.Set("size", strconv.FormatInt(size, 10))
	img, err := drv.Create(context.Background(), formats.CreateRequest{File: mem, Name: "out.raw", Size: size, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return img, mem
}

// ddrescuelog runs GNU ddrescuelog (the judge of mapfiles) or skips.
func ddrescuelog(t *testing.T, args ...string) (string, int) {
	t.Helper()
	path, err := exec.LookPath("ddrescuelog")
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatal("ddrescuelog (gddrescue) not found and VDISK_REQUIRE_QEMU=1")
		}
		t.Skip("ddrescuelog (gddrescue) not found")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// badSectorsOf lists the sector numbers ddrescuelog reads as bad in a mapfile.
func badSectorsOf(t *testing.T, mapfile string) []int64 {
	t.Helper()
	out, code := ddrescuelog(t, "-b", "512", "-l-", mapfile)
	if code != 0 {
		t.Fatalf("ddrescuelog -l- %s: exit %d: %s", mapfile, code, out)
	}
	var sectors []int64
	for _, f := range strings.Fields(out) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("ddrescuelog -l- printed %q", out)
		}
		sectors = append(sectors, n)
	}
	return sectors
}

func saveTo(t *testing.T, path string) func(*Map) error {
	return func(m *Map) error { return saveMap(path, m) }
}

// TestRescueAroundFaults: bad sectors stay zero and are listed, an
// intermittent sector is recovered by a retry, a slow sector is read; every
// good byte arrives; the mapfile ddrescuelog reads names exactly the bad
// sectors; no bad sector is read more than the phases need.
func TestRescueAroundFaults(t *testing.T) {
	const size = 6<<20 + 1536 // not a cluster multiple
	data := randomBytes(size, 1)
	badAt, badLen := int64(1<<20+1000), int64(3000) // sectors 2049..2055
	src := faultfile.New(fileio.NewMem("disk", data), 512,
		faultfile.Fault{Offset: badAt, Length: badLen, Kind: faultfile.Bad},
		faultfile.Fault{Offset: 3 << 20, Length: 512, Kind: faultfile.Intermittent, Failures: 2},
		faultfile.Fault{Offset: 4<<20 + 4096, Length: 8192, Kind: faultfile.Slow, Delay: time.Microsecond},
		faultfile.Fault{Offset: size - 512, Length: 512, Kind: faultfile.Bad}) // the last sector
	for _, reverse := range []bool{false, true} {
		t.Run("reverse="+strconv.FormatBool(reverse), func(t *testing.T) {
			dst, mem := memTarget(t, size)
			mapfile := filepath.Join(t.TempDir(), "map")
			m := NewMap(size)
			if err := Run(context.Background(), src, dst, m, Options{Retries: 2, Reverse: reverse, Save: saveTo(t, mapfile)}); err != nil {
				t.Fatal(err)
			}
			want := append([]byte(nil), data...)
			firstBad, lastBad := badAt/512, (badAt+badLen-1)/512
			clear(want[firstBad*512 : (lastBad+1)*512])
			clear(want[size-512:])
			if !bytes.Equal(mem.Bytes(), want) {
				t.Error("the output is not the source with exactly the bad sectors zeroed")
			}
			var wantSectors []int64
			for s := firstBad; s <= lastBad; s++ {
				wantSectors = append(wantSectors, s)
			}
			wantSectors = append(wantSectors, size/512-1)
			if got := badSectorsOf(t, mapfile); !slicesEqual(got, wantSectors) {
				t.Errorf("ddrescuelog lists bad sectors %v, want %v", got, wantSectors)
			}
			if out, code := ddrescuelog(t, "-t", mapfile); code != 0 || !strings.Contains(out, "finished") {
				t.Errorf("ddrescuelog -t: exit %d\n%s", code, out)
			}
			if got := m.Bad(); len(got) != 2 || got[0].Pos != firstBad*512 || got[0].Status != BadSector {
				t.Errorf("Bad() = %+v", got)
			}
			if src.Writes() != 0 {
				t.Errorf("the source was written %d times", src.Writes())
			}
		})
	}
	// Each bad sector: one cluster read (copy), at most one trim read,
	// one scrape read, one read per retry pass; per direction above.
	if n := src.Reads((badAt/512+2)*512, 512); n > 2*(1+2) {
		t.Errorf("a bad sector was read %d times", n)
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRescueSkipsAhead: a long bad area costs a few reads in the first
// pass, not one per cluster.
func TestRescueSkipsAhead(t *testing.T) {
	const size = 64 << 20
	src := faultfile.New(fileio.NewMem("disk", make([]byte, size)), 512,
		faultfile.Fault{Offset: 8 << 20, Length: 32 << 20, Kind: faultfile.Bad})
	dst, _ := memTarget(t, size)
	m := NewMap(size)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0 // first-pass reads in the bad area
	err := Run(ctx, src, dst, m, Options{Progress: func(m *Map) {
		if m.Phase == NonTried && m.Pass == 1 {
			if m.Pos >= 8<<20 && m.Pos < 40<<20 {
				calls++
			}
		} else {
			cancel() // only the first pass is measured
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	clusters := int64(32 << 20 / defaultClusterBytes)
	if calls == 0 || int64(calls) > clusters/8 {
		t.Errorf("first pass: %d reads in a bad area of %d clusters: skipping did not happen", calls, clusters)
	}
}

// TestRescueResumes: interrupted after some progress, a rescue resumed from
// its mapfile reads no good area again and ends with the same output as
// one uninterrupted run.
func TestRescueResumes(t *testing.T) {
	const size = 16 << 20
	data := randomBytes(size, 2)
	src := faultfile.New(fileio.NewMem("disk", data), 512,
		faultfile.Fault{Offset: 5 << 20, Length: 4096, Kind: faultfile.Bad},
		faultfile.Fault{Offset: 12 << 20, Length: 512, Kind: faultfile.Bad})
	dst, mem := memTarget(t, size)
	mapfile := filepath.Join(t.TempDir(), "map")
	ctx, cancel := context.WithCancel(context.Background())
	m := NewMap(size)
	err := Run(ctx, src, dst, m, Options{SaveBytes: 1 << 20, Save: saveTo(t, mapfile), Progress: func(m *Map) {
		if m.Bytes(Finished) > 9<<20 {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	f, err := os.Open(mapfile)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := ParseMap(f, mapfile, size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if saved.Done() || saved.Bytes(Finished) < 9<<20 {
		t.Fatalf("saved map: %d finished bytes", saved.Bytes(Finished))
	}
	readsBefore := map[int64]int{}
	good := saved.With(Finished)
	for _, b := range good {
		readsBefore[b.Pos] = src.Reads(b.Pos, b.Size)
	}
	if err := Run(context.Background(), src, dst, saved, Options{Save: saveTo(t, mapfile)}); err != nil {
		t.Fatal(err)
	}
	for _, b := range good {
		if n := src.Reads(b.Pos, b.Size); n != readsBefore[b.Pos] {
			t.Errorf("good area %d+%d read again on resume (%d reads, was %d)", b.Pos, b.Size, n, readsBefore[b.Pos])
		}
	}
	want := append([]byte(nil), data...)
	clear(want[5<<20 : 5<<20+4096])
	clear(want[12<<20 : 12<<20+512])
	if !bytes.Equal(mem.Bytes(), want) {
		t.Error("resumed output differs from the source with the bad sectors zeroed")
	}
	if got := badSectorsOf(t, mapfile); len(got) != 9 {
		t.Errorf("ddrescuelog lists %d bad sectors, want 9: %v", len(got), got)
	}
}

func TestRescueFill(t *testing.T) {
	const size = 1 << 20
	src := faultfile.New(fileio.NewMem("disk", bytes.Repeat([]byte{7}, size)), 512,
		faultfile.Fault{Offset: 4096, Length: 512, Kind: faultfile.Bad})
	dst, mem := memTarget(t, size)
	fill := byte(0xee)
	if err := Run(context.Background(), src, dst, NewMap(size), Options{Fill: &fill}); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{7}, size)
	copy(want[4096:4608], bytes.Repeat([]byte{0xee}, 512))
	if !bytes.Equal(mem.Bytes(), want) {
		t.Error("the unreadable sector is not filled with the fill byte")
	}
}
