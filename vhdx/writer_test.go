package vhdx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/vdiskio/vdisk/internal/fileio"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/internal/zero"
)

// create makes a VHDX at path with the given -o options.
func create(t testing.TB, path string, size int64, opts string) *Writer {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o})
	if err != nil {
		f.Close()
		t.Fatalf("create %s: %v", opts, err)
	}
	return w
}

// pattern is a disk content with data runs, zero runs and holes.
type pattern struct {
	data  []byte
	zeros [][2]int64 // ranges to send as WriteZeroes
}

func makePattern(size int64, seed int64) pattern {
	rng := rand.New(rand.NewSource(seed))
	p := pattern{data: make([]byte, size)}
	for off := int64(0); off < size; {
		n := min(size-off, 1+rng.Int63n(3<<20))
		switch rng.Intn(4) {
		case 0, 1:
			b := byte(rng.Intn(255) + 1)
			for i := off; i < off+n; i++ {
				p.data[i] = b ^ byte(i>>9)
			}
		case 2:
			p.zeros = append(p.zeros, [2]int64{off, n})
		}
		off += n + rng.Int63n(2<<20)
	}
	return p
}

// writeConcurrently writes p.data's nonzero runs in unaligned pieces from
// several goroutines, then the zero ranges.
func writeConcurrently(t testing.TB, w formats.Writable, p pattern) {
	t.Helper()
	var pieces [][2]int64
	rng := rand.New(rand.NewSource(int64(len(p.data))))
	for off := int64(0); off < int64(len(p.data)); {
		n := min(int64(len(p.data))-off, 1+rng.Int63n(700<<10))
		if !zero.Is(p.data[off : off+n]) {
			pieces = append(pieces, [2]int64{off, n})
		}
		off += n
	}
	rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(pieces); i += 4 {
				off, n := pieces[i][0], pieces[i][1]
				if _, err := w.WriteAt(p.data[off:off+n], off); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, z := range p.zeros {
		if err := w.(formats.ZeroWriter).WriteZeroes(z[0], z[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func writeRaw(t testing.TB, data []byte) string {
	t.Helper()
	path := tempPath(t, "src.raw")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func requireVhdiinfo(t testing.TB, path string) {
	t.Helper()
	tool, err := exec.LookPath("vhdiinfo")
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatal("vhdiinfo not found")
		}
		t.Log("vhdiinfo not found; skipping that check")
		return
	}
	out, err := exec.Command(tool, path).CombinedOutput()
	if err != nil {
		t.Fatalf("vhdiinfo %s: %v\n%s", path, err, out)
	}
}

// requireVhdiContent mounts path with libvhdi's vhdimount (FUSE) and
// requires the disk it shows to equal the raw file: the content check for
// images qemu-img cannot open. Without the tool, FUSE or root it only logs
// (fails when VDISK_REQUIRE_QEMU=1).
func requireVhdiContent(t testing.TB, path, rawPath string) {
	t.Helper()
	tool, err := exec.LookPath("vhdimount")
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("not root")
	}
	if err == nil {
		_, err = os.Stat("/dev/fuse")
	}
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatalf("vhdimount: %v", err)
		}
		t.Logf("vhdimount unusable (%v); skipping that check", err)
		return
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, path, mnt).CombinedOutput(); err != nil {
		t.Fatalf("vhdimount %s: %v\n%s", path, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	}()
	// vhdi1 is the bottom of a chain, vhdiN the image itself.
	layers, _ := filepath.Glob(filepath.Join(mnt, "vhdi*"))
	got, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("vhdi%d", len(layers))))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("libvhdi reads %s differently from byte %d (sizes %d, %d)", path, i, len(got), len(want))
	}
}

// vhdiField is the value of a "Name : value" line of vhdiinfo's report on
// path ("" when the tool is missing, which fails when VDISK_REQUIRE_QEMU=1).
func vhdiField(t testing.TB, path, name string) string {
	t.Helper()
	tool, err := exec.LookPath("vhdiinfo")
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatal("vhdiinfo not found")
		}
		t.Log("vhdiinfo not found; skipping that check")
		return ""
	}
	out, err := exec.Command(tool, path).CombinedOutput()
	if err != nil {
		t.Fatalf("vhdiinfo %s: %v\n%s", path, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("vhdiinfo %s shows no %q:\n%s", path, name, out)
	return ""
}

// requireVhdiLinkage requires libvhdi to read child's parent identifier
// (parent_linkage) as parent's identifier (its DataWriteGuid), nonzero.
func requireVhdiLinkage(t testing.TB, child, parent string) {
	t.Helper()
	got := vhdiField(t, child, "Parent identifier")
	if got == "" {
		return
	}
	if want := vhdiField(t, parent, "Identifier"); got != want || strings.Trim(got, "0-") == "" {
		t.Fatalf("libvhdi reads the parent identifier of %s as %s; the parent's identifier is %s", child, got, want)
	}
}

func TestWriteInterop(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	cases := []struct {
		name string
		size int64
		opts string
	}{
		{"dynamic-default", 40 << 20, ""},
		{"dynamic-odd", 40<<20 + 3584, ""},
		{"fixed", 24 << 20, "subformat=fixed"},
		{"fixed-odd", 9<<20 + 512, "subformat=fixed,block_size=2M"},
		{"bs1M", 20 << 20, "block_size=1M"},
		{"bs1536k", 20 << 20, "block_size=1536K"},
		{"bs256M", 48 << 20, "block_size=256M"},
		{"log4M", 16 << 20, "log_size=4M"},
		{"state-zero-off", 32 << 20, "block_state_zero=off"},
		{"sector4096", 32 << 20, "logical_sector_size=4096,block_size=1M"},
		{"fixed-4096", 8 << 20, "subformat=fixed,logical_sector_size=4096"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t, "out.vhdx")
			w := create(t, path, tc.size, tc.opts)
			p := makePattern(w.Size(), int64(i))
			writeConcurrently(t, w, p)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			raw := writeRaw(t, p.data)
			if strings.Contains(tc.opts, "logical_sector_size=4096") {
				// qemu 7.2 refuses 4 KiB logical sectors (ENOTSUP); vhdiinfo and
				// vdisk's reader judge these.
				if r := qemutest.Check(t, "vhdx", path); r.Code == 0 {
					t.Logf("qemu-img now opens 4 KiB-sector VHDX: %s", r.Stdout)
				}
				requireVhdiContent(t, path, raw)
			} else {
				qemutest.RequireClean(t, "vhdx", path)
				qemutest.RequireSame(t, "vhdx", path, "raw", raw)
			}
			requireVhdiinfo(t, path)
			img := openPath(t, path, formats.OpenOptions{})
			defer img.Close()
			requireSameAsRaw(t, img, raw)
		})
	}
}

func TestBlockSizeRules(t *testing.T) {
	cases := []struct {
		opt, size int64
		want      int64
		bad       bool
	}{
		{0, 64 << 20, 8 << 20, false},
		{0, 1 << 30, 8 << 20, false},
		{0, 1<<30 + 512, 16 << 20, false},
		{0, 100 << 30, 16 << 20, false},
		{0, 100<<30 + 512, 32 << 20, false},
		{0, 32 << 40, 32 << 20, false},
		{0, 32<<40 + 512, 64 << 20, false},
		{512 << 10, 0, 1 << 20, false},
		{1536 << 10, 0, 2 << 20, false},
		{3 << 20, 0, 0, true},
		{512 << 20, 0, 256 << 20, false},
	}
	for _, c := range cases {
		got, err := blockSizeFor(c.opt, c.size)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("blockSizeFor(%d, %d) = %d, %v; want %d (error %v)", c.opt, c.size, got, err, c.want, c.bad)
		}
	}
}

func TestDifferencing(t *testing.T) {
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.vhdx")
	const size = 40 << 20
	base := create(t, basePath, size, "block_size=2M")
	bp := makePattern(size, 7)
	writeConcurrently(t, base, bp)
	if err := base.Close(); err != nil {
		t.Fatal(err)
	}

	childPath := filepath.Join(dir, "child.vhdx")
	o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx,block_size=1M")
	f, err := os.Create(childPath)
	if err != nil {
		t.Fatal(err)
	}
	child, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: childPath, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), bp.data...)
	for _, c := range []struct {
		off int64
		n   int
		b   byte
	}{{100, 5000, 0xc1}, {3<<20 + 7, 1 << 20, 0xc2}, {20 << 20, 3 << 20, 0xc3}, {size - 1000, 1000, 0xc4}} {
		buf := make([]byte, c.n)
		for i := range buf {
			buf[i] = c.b
		}
		if _, err := child.WriteAt(buf, c.off); err != nil {
			t.Fatal(err)
		}
		copy(want[c.off:], buf)
	}
	if err := child.WriteZeroes(8<<20, 2<<20+100); err != nil {
		t.Fatal(err)
	}
	clear(want[8<<20 : 10<<20+100])
	if err := child.Close(); err != nil {
		t.Fatal(err)
	}
	requireVhdiinfo(t, childPath)
	requireVhdiLinkage(t, childPath, basePath)

	img, err := formats.Open(context.Background(), childPath, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if b := img.(formats.Backer); b.Backing() == nil || b.BackingName() != "base.vhdx" {
		t.Fatalf("backing %v %q", b.Backing(), b.BackingName())
	}
	requireSameAsRaw(t, img, writeRaw(t, want))
	// (libvhdi does not judge the content here: it reads a differencing
	// disk's ZERO blocks, as the whole-block WriteZeroes above leaves, from
	// the parent; TestDifferencingOverQemuBase has none.)
	exts, err := img.Extents(0, size)
	if err != nil {
		t.Fatal(err)
	}
	var unalloc int64
	for _, e := range exts {
		if e.Kind == formats.Unallocated {
			unalloc += e.Length
		}
	}
	if unalloc == 0 {
		t.Errorf("the child claims every block: %+v", exts)
	}
}

// TestZeroAfterWrite: WriteZeroes over written data must clear it, in every
// subformat; over never-written parts of allocated blocks it writes nothing.
func TestZeroAfterWrite(t *testing.T) {
	for _, opts := range []string{"block_size=1M", "subformat=fixed,block_size=1M", "block_state_zero=off,block_size=2M"} {
		t.Run(opts, func(t *testing.T) {
			f := fileio.NewMem("z.vhdx", nil)
			o, _ := formats.ParseOptions(createOptions, opts)
			w, err := Create(context.Background(), formats.CreateRequest{File: f, Name: "z.vhdx", Size: 8 << 20, Options: o})
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 8<<20)
			copy(want[100:], filled(3<<20, 0xff))
			if _, err := w.WriteAt(want[100:100+3<<20], 100); err != nil {
				t.Fatal(err)
			}
			for _, z := range [][2]int64{{1<<20 + 17, 1 << 20}, {3<<20 + 50, 3 << 20}, {0, 10}} {
				if err := w.WriteZeroes(z[0], z[1]); err != nil {
					t.Fatal(err)
				}
				clear(want[z[0] : z[0]+z[1]])
			}
			if got := readAll(t, w); !bytes.Equal(got, want) {
				t.Fatal("content differs before close")
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			img, err := Open(context.Background(), fileio.NewMem("z.vhdx", f.Bytes()), formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, img); !bytes.Equal(got, want) {
				t.Fatal("content differs after reopening")
			}
		})
	}
}

// TestDifferencingOverQemuBase: a child made by vdisk over a base made by
// qemu-img reads as base+changes; the base is never written.
func TestDifferencingOverQemuBase(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.vhdx")
	qemutest.Img(t, "create", "-q", "-f", "vhdx", "-o", "block_size=1M", basePath, "16M")
	qemutest.IO(t, "vhdx", basePath, "write -P 0x11 0 5M", "write -P 0x12 9M 3M")
	baseSum := fileSHA(t, basePath)
	childPath := filepath.Join(dir, "child.vhdx")
	o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx,backing_fmt=vhdx")
	f, _ := os.Create(childPath)
	c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: childPath, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if c.Size() != 16<<20 || c.blockSize != diffBlockSize {
		t.Errorf("child size %d block %d: want the parent's size, 2 MiB blocks", c.Size(), c.blockSize)
	}
	if _, err := c.WriteAt(filled(100, 0x21), 4<<20+7); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteZeroes(10<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(qemutest.ToRaw(t, "vhdx", basePath))
	copy(want[4<<20+7:], filled(100, 0x21))
	clear(want[10<<20 : 11<<20])
	img := openPath(t, childPath, formats.OpenOptions{})
	defer img.Close()
	requireSameAsRaw(t, img, writeRaw(t, want))
	if fileSHA(t, basePath) != baseSum {
		t.Error("the base was modified")
	}
	requireVhdiinfo(t, childPath)
	requireVhdiLinkage(t, childPath, basePath)
	requireVhdiContent(t, childPath, writeRaw(t, want)) // libvhdi attaches the parent and reads the chain
}

// TestMeasure: the estimate equals the size of the file vdisk writes.
func TestMeasure(t *testing.T) {
	src := memImage(t, 40<<20, "block_size=1M", map[int64][]byte{0: filled(4096, 1), 5<<20 + 100: filled(3<<20, 2)})
	img, err := openBytes(src, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []string{"block_size=2M", "subformat=fixed", "log_size=3M,block_size=1M"} {
		o, _ := formats.ParseOptions(createOptions, opts)
		m, err := measure(context.Background(), formats.MeasureRequest{Source: img, Options: o})
		if err != nil {
			t.Fatal(err)
		}
		f := fileio.NewMem("m.vhdx", nil)
		w, err := Create(context.Background(), formats.CreateRequest{File: f, Name: "m.vhdx", Size: img.Size(), Options: o})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		for off := int64(0); off < img.Size(); off += int64(len(buf)) {
			img.ReadAt(buf, off)
			if !zero.Is(buf) {
				w.WriteAt(buf, off)
			}
		}
		w.Close()
		if size, _ := f.Size(); size != m.Required {
			t.Errorf("%s: measured %d, wrote %d", opts, m.Required, size)
		}
	}
}

// TestConcurrentDifferencingWrites: goroutines writing disjoint sectors of
// the same blocks of a differencing disk, while the first write of each
// block copies the parent's data in.
func TestConcurrentDifferencingWrites(t *testing.T) {
	dir := t.TempDir()
	const size = 4 << 20
	basePath := filepath.Join(dir, "base.vhdx")
	base := create(t, basePath, size, "block_size=1M")
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + 1)
	}
	if _, err := base.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := base.Close(); err != nil {
		t.Fatal(err)
	}
	o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx")
	f, _ := os.Create(filepath.Join(dir, "child.vhdx"))
	c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: filepath.Join(dir, "child.vhdx"), Options: o})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Every 8th 4 KiB sector of the first three blocks, skipping some.
			for off := int64(g) * 4096; off < 3<<20; off += 8 * 4096 {
				if (off/4096)%3 == 0 {
					continue
				}
				if _, err := c.WriteAt(filled(4096, byte(g+0x80)), off); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	for off := int64(0); off < 3<<20; off += 4096 {
		if (off/4096)%3 != 0 {
			copy(want[off:], filled(4096, byte((off/4096)%8+0x80)))
		}
	}
	if got := readAll(t, c); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPartialBlockWrites: small and unaligned writes into a differencing
// disk make PARTIALLY_PRESENT blocks (only written sectors stored, the rest
// from the parent), also when goroutines write disjoint bytes of the same
// sectors at once.
func TestPartialBlockWrites(t *testing.T) {
	for _, sector := range []string{"512", "4096"} {
		t.Run(sector, func(t *testing.T) {
			dir := t.TempDir()
			const size = 6 << 20
			basePath := filepath.Join(dir, "base.vhdx")
			base := create(t, basePath, size, "block_size=1M,logical_sector_size="+sector)
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i*13 + 5)
			}
			if _, err := base.WriteAt(want, 0); err != nil {
				t.Fatal(err)
			}
			if err := base.Close(); err != nil {
				t.Fatal(err)
			}
			childPath := filepath.Join(dir, "child.vhdx")
			o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx,logical_sector_size="+sector)
			f, _ := os.Create(childPath)
			c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: childPath, Options: o})
			if err != nil {
				t.Fatal(err)
			}
			// 8 goroutines interleave 100-byte pieces over [1 MiB, 1 MiB+64 KiB).
			var wg sync.WaitGroup
			const from, span, piece = 1<<20 + 3, 64 << 10, 100
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for off := int64(from + g*piece); off+piece <= from+span; off += 8 * piece {
						if _, err := c.WriteAt(filled(piece, byte(0xa0+g)), off); err != nil {
							t.Error(err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			for off := int64(from); off+piece <= from+span; off += piece {
				copy(want[off:], filled(piece, byte(0xa0+(off-from)/piece%8)))
			}
			// One aligned sector run and a whole block.
			if _, err := c.WriteAt(filled(8192, 0xee), 4<<20+8192); err != nil {
				t.Fatal(err)
			}
			copy(want[4<<20+8192:], filled(8192, 0xee))
			if _, err := c.WriteAt(filled(2<<20, 0xdd), 2<<20); err != nil {
				t.Fatal(err)
			}
			copy(want[2<<20:], filled(2<<20, 0xdd))
			if got := readAll(t, c); !bytes.Equal(got, want) {
				t.Fatal("content differs before close")
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			img := openPath(t, childPath, formats.OpenOptions{})
			defer img.Close()
			if got := readAll(t, img); !bytes.Equal(got, want) {
				t.Fatal("content differs after reopening")
			}
			if st := batState(img.entry(0)); st != payloadPartial {
				t.Errorf("block 0 state %d, want PARTIALLY_PRESENT", st)
			}
			if st := batState(img.entry(1)); st != payloadFull {
				t.Errorf("block 1 (written whole) state %d, want FULLY_PRESENT", st)
			}
			rep, err := img.Check(context.Background(), formats.CheckOptions{})
			if err != nil || rep.Corruptions != 0 {
				t.Fatalf("check: %+v %v", rep, err)
			}
			requireVhdiinfo(t, childPath)
		})
	}
}
